"""Where a login's database milliseconds go (issue 12): the CPU of one sign-in's steps
other than the hash, in process, on SQLite, for a client already known to the account (the
usual sign-in), with no server, no HTTP and no argon2 (the verify is what the bound counts;
everything else a login does on the same core is what keeps it from the bound).

    .venv-bench/bin/python bench/profile_login.py                 # best of 5 x 300
    .venv-bench/bin/python bench/profile_login.py --pyinstrument  # + pyinstrument's tree

From the bench environment (`make bench` builds it; it holds psutil, which bench/servers.py
needs). pyinstrument is in neither: `.venv-bench/bin/pip install pyinstrument` first.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/profile_login.py`: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import servers
from relatch.app import build
from relatch.core.meta import RequestMeta
from relatch.services import accounts
from relatch.settings import Settings
from relatch.storage import migrate
from relatch.storage.db import make_engine

ACCOUNTS = 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pyinstrument", action="store_true", help="print the call tree too")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="relatch-login-"))
    os.environ.update(servers.relatch_env(work, 1, f"sqlite:///{work / 'relatch.db'}"))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    servers.add_accounts(engine, "u", ACCOUNTS)
    engine.dispose()
    svc = build(settings)
    meta = RequestMeta(client_ip="127.0.0.1", user_agent="bench", request_id="0123456789abcdef")

    def one(i: int) -> None:
        """A login's steps but the verify: the look-ups and failure slot, the sign-in's
        write (slot back, known client, audit row, session record), the JWT."""
        login = f"u{i % ACCOUNTS}@example.com"
        user, guess = accounts._take_guess(svc, login, meta)
        assert user is not None
        matched = accounts.PasswordMatched(user, guess)
        signed = accounts.finish_sign_in(svc, login, matched, None, meta, new_session=True)
        accounts.issue_session(svc, signed.account, session_id=signed.session_id)

    for i in range(ACCOUNTS):  # every account signed in once: its client is known now
        one(i)
    best = float("inf")
    for _ in range(5):
        began = time.process_time()
        for i in range(300):
            one(i)
        best = min(best, (time.process_time() - began) / 300)
    print(f"a login's database steps: {best * 1e6:.0f} us of CPU (best of 5 x 300)")
    if args.pyinstrument:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        for i in range(300):
            one(i)
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    svc.close()


if __name__ == "__main__":
    main()

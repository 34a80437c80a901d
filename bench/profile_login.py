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

import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/profile_login.py`: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import in_process
from relatch.services import accounts

ACCOUNTS = in_process.ACCOUNTS


def main() -> None:
    args = in_process.arguments(__doc__ or "")
    svc = in_process.services("login")
    meta = in_process.META

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

        def loop() -> None:
            for i in range(300):
                one(i)

        print(in_process.call_tree(loop))
    svc.close()


if __name__ == "__main__":
    main()

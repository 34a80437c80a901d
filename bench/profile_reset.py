"""Where a resetPassword's database milliseconds go (issue 12): the CPU of one reset's
steps other than its two argon2 calls, in process, on SQLite, from a client unknown to the
account, with no server and no HTTP (the hashes are what the bound counts; everything else
a reset does on the same core is what keeps it from the bound).

    .venv-bench/bin/python bench/profile_reset.py                 # best of 5 x 200
    .venv-bench/bin/python bench/profile_reset.py --pyinstrument  # + pyinstrument's tree

Each reset uses a fresh code, issued before the timed steps (`issue_code`, the worker's
step, is not part of the request). From the bench environment (`make bench` builds it).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # `python bench/profile_reset.py`: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import in_process
from relatch.core import codes
from relatch.services import audit, reset, reset_requests
from relatch.storage.db import transaction
from relatch.storage.models import User

ACCOUNTS = in_process.ACCOUNTS
CODE = "ABCD2345"  # every issued code (the profile must know it)
NEW_HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$" + "A" * 43  # never verified


def main() -> None:
    args = in_process.arguments(__doc__ or "")
    svc = in_process.services("reset")
    codes.generate = lambda: CODE  # type: ignore[assignment]  # a code the profile knows
    meta = in_process.META

    def issue(i: int) -> None:
        with transaction(svc.sessions) as s:
            user = s.get(User, i % ACCOUNTS + 1)
            assert user is not None
            reset_requests.issue_code(svc, s, user)

    def one(i: int) -> None:
        """A reset's steps but its hashes: the look-ups, failure slot and counted try, the
        compare, and the transaction that uses the code up and sets the password."""
        login = f"u{i % ACCOUNTS}@example.com"
        with audit.trail(svc, audit.RESET, meta, login=login) as t:
            match = reset._count_and_match(svc, login, CODE, meta)
            t.account_id = match.user.id
            reset._consume_code(svc, match.code_id, match.user, NEW_HASH, meta, t, match.guess)

    def timed(steps: Callable[[int], None], n: int, offset: int) -> float:
        spent = 0.0
        for i in range(offset, offset + n):
            issue(i)
            began = time.process_time()
            steps(i)
            spent += time.process_time() - began
        return spent / n

    timed(one, 200, 0)  # warm up
    best = min(timed(one, 200, 200 * (k + 1)) for k in range(5))
    print(f"a reset's database steps: {best * 1e6:.0f} us of CPU (best of 5 x 200)")
    if args.pyinstrument:

        def loop() -> None:
            for i in range(200):
                issue(i)
                one(i)

        print(in_process.call_tree(loop))
    svc.close()


if __name__ == "__main__":
    main()

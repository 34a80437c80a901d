"""The password policy as the use cases apply it: core rules, then "not the current one".

The core rules (length, context words, common passwords: core/passwords.py) are pure; the
comparison with the current password needs an argon2 verify, so it is awaited here, in the
pool (infra/hashing_pool.py).
"""

from __future__ import annotations

from relatch.core import passwords
from relatch.core.errors import PasswordRejected
from relatch.services.context import Services

SAME_AS_CURRENT = (
    "Password is the same as your current one: choose a password you have not used here"
)


async def check_new_password(
    svc: Services,
    password: str,
    *,
    username: str,
    email: str,
    current_hash: str | None,
    follow_up: bool = False,
) -> str:
    """The normalised new password, or PasswordRejected saying what to change.

    Compromise recovery: a reset or change that keeps the old password would leave a thief
    who knows it signed in (ASVS 5.0 6.2.3 asks for the current password to differ).
    """
    ctx = passwords.PasswordContext(username=username, email=email)
    normalised = passwords.check(password, ctx, svc.password_rules)
    same = current_hash is not None and await svc.pool.verify(
        current_hash, normalised, follow_up=follow_up
    )
    if same:
        raise PasswordRejected(SAME_AS_CURRENT)
    return normalised

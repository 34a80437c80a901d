"""The reset use cases of the mailed link: check it (the page shows its address), reset with it.

The link's token stands for address and code: `<row id>.<256-bit secret>` (core/codes.py);
it proves the code's row, which the code and the link share (services/reset.py). Every
failure is CodeRejected, whatever its cause (wrong, forged, expired or used token).
"""

from __future__ import annotations

from dataclasses import dataclass

from anyio.to_thread import run_sync

from relatch.core import codes, keyed
from relatch.core.errors import CodeRejected
from relatch.core.meta import RequestMeta
from relatch.services import audit
from relatch.services.context import Services
from relatch.services.reset import LINK_PURPOSE, NO_ACCOUNT, use_code
from relatch.storage import accounts as accounts_repo
from relatch.storage import one_time
from relatch.storage.models import ResetCode, User


@dataclass(frozen=True)
class LinkHolder:
    """What a live link proves: its code's row and the account (the page shows its address)."""

    code_id: int
    user: User


def _match_link(svc: Services, token: str, meta: RequestMeta) -> LinkHolder:
    """The live code row the mailed link's token proves; CodeRejected on any failure.

    No try counter: the secret has 256 bits (guessing is hopeless), so strangers who use up
    the code's tries, or send wrong tokens, cannot kill the owner's link (lockout). Still
    behind the per-IP failure budget (hygiene: a flood of junk tokens is refused early).
    Enumeration and equal work: a malformed, unknown, forged, expired or used token runs the
    same lookup and a keyed compare, and gets the same CodeRejected.
    """
    now = svc.clock()
    guess = svc.limits.code_guess(meta.client_ip, now)
    row_id, secret = codes.split_link_token(token) or (0, "")
    with svc.sessions() as s:
        found, live = one_time.RESET_CODES.find(s, row_id, now)
        row: ResetCode | None = found
        account_id = row.user_id if row is not None else NO_ACCOUNT
        user = accounts_repo.by_id(s, account_id)  # (queried for a missing row too: equal work)
    stored = (row.link_digest if row is not None else None) or "0" * 64
    proven = keyed.matches(svc.keys, LINK_PURPOSE, account_id, secret, stored=stored) and bool(
        secret
    )
    if proven:
        # The right secret, even of a used or expired link, is no guess (a race, a reload).
        guess.succeeded()
    if not proven or row is None or user is None or not live:
        raise CodeRejected()
    return LinkHolder(row.id, user)


def check_link(svc: Services, token: str, meta: RequestMeta) -> str:
    """The account address of a live mailed link (the page shows it), without using it up.
    CodeRejected if the link does not work."""
    with audit.trail(svc, audit.CODE_CHECK, meta) as t:
        holder = _match_link(svc, token, meta)
        t.account_id = holder.user.id
        return holder.user.email


async def reset_with_link(svc: Services, token: str, new_password: str, meta: RequestMeta) -> None:
    """Set a password with the mailed link's token instead of address and code (the page).
    Like `reset`: database steps in worker threads, the hashes awaited between them."""
    async with audit.trail(svc, audit.RESET, meta) as t:
        holder = await run_sync(_match_link, svc, token, meta)
        t.account_id = holder.user.id
        # No try to give back if the password is refused: a link has no try counter.
        await use_code(svc, holder.code_id, holder.user, new_password, meta, t)

"""Rate limits applied by the use cases: reset requests, failed guesses, sign-ups.

Defaults and their sources: README "Limits" and settings.py. Every limit only delays, for
at most its longest window; none locks an account. What strangers spend is kept apart
from what the owner needs (OWASP Forgot Password Cheat Sheet; OWASP "Slow Down Online
Guessing Attacks with Device Cookies"):

- Passwords and second factors (`guess`): clients unknown to the account share its
  per-account budget; once that is spent, even a right password from an unknown client
  is refused until the window ends. A *known* client (services/known_clients.py: a device
  cookie or a network that signed in to, or reset, this account) spends only its own
  small per-(account, client) budget instead, which strangers cannot spend (a stranger
  inside a known network shares that network's budget: hence it is the smaller one).
- Reset codes (`code_guess`): only the per-IP budget; guessing is bounded by 5 tries per
  code and the codes per address per window (docs/security.md 6.3.1 has the bound), so
  failures made from other addresses never refuse a valid code from the mailbox.
- Reset requests (`reset_requested`): a known client has its own bucket, never the
  address's shared one, which strangers can spend.
- Activation codes (`activation_requested`): per account; only someone signed in to the
  account can spend it.
The per-IP budgets apply to unknown clients, known networks and code checks (stuffing from
one address across many accounts); a known device is one browser and skips them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from relatch.core import limits
from relatch.core.limits import Bucket, Rule
from relatch.infra import metrics
from relatch.services.ports import LimitStore
from relatch.settings import Settings

log = logging.getLogger(__name__)

PRUNE_EVERY = timedelta(minutes=1)  # between two prunes of ended windows (relatch/workers.py)


DEVICE = "device"
NETWORK = "network"


@dataclass(frozen=True)
class KnownClient:
    """A client known to one account: `kind` DEVICE or NETWORK; `subject` names the
    (account, client) pair for its own buckets (keyed again before it is stored)."""

    kind: str
    subject: str
    #: The account's credential generation when the client was found (known_clients.py).
    generation: int = 0


@dataclass(frozen=True)
class Policy:
    reset_per_address: Rule
    reset_per_ip: Rule
    failures_per_account: Rule
    failures_per_ip: Rule
    signup_per_ip: Rule
    failures_per_known_device: Rule
    failures_per_known_network: Rule
    reset_per_known_client: Rule
    activation_per_account: Rule

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        def rule(name: str) -> Rule:
            return Rule(name, limits.parse(getattr(settings, f"limit_{name}")))

        return cls(
            reset_per_address=rule("reset_per_address"),
            reset_per_ip=rule("reset_per_ip"),
            failures_per_account=rule("failures_per_account"),
            failures_per_ip=rule("failures_per_ip"),
            signup_per_ip=rule("signup_per_ip"),
            failures_per_known_device=rule("failures_per_known_device"),
            failures_per_known_network=rule("failures_per_known_network"),
            reset_per_known_client=rule("reset_per_known_client"),
            activation_per_account=rule("activation_per_account"),
        )


class Unlimited:
    """A store that never refuses (a Services built without limits)."""

    def acquire(
        self, buckets: object, filled: object = None, within: object = None
    ) -> list[Bucket]:
        return []

    def release(self, buckets: object, within: object = None) -> None:
        pass

    def prune(self, now: int) -> int:
        return 0

    def close(self) -> None:
        pass


@dataclass
class Guess:
    """A slot taken by one attempt; a success gives it back (it was not a failure)."""

    store: LimitStore
    buckets: list[Bucket]
    done: bool = False

    def succeeded(self, within: Session | None = None) -> None:
        """`within`: given back in the caller's write transaction (a database store)."""
        if not self.done and self.buckets:
            self.done = True
            self.store.release(self.buckets, within)


class Limits:
    def __init__(self, policy: Policy, store: LimitStore, secret: bytes) -> None:
        self.policy = policy
        self.store = store
        self._secret = secret

    def _buckets(self, now: datetime, *checks: tuple[Rule, str | None]) -> list[Bucket]:
        epoch = int(now.timestamp())
        out: list[Bucket] = []
        for rule, subject in checks:
            if subject is None or rule.off:
                continue  # no client IP (CLI), or the limit is off
            key = limits.key_digest(self._secret, rule.name, subject)
            out.extend(limits.buckets(rule, key, epoch))
        return out

    def _acquire(
        self,
        buckets: list[Bucket],
        now: datetime,
        what: str,
        on_refused: Callable[[list[Bucket]], None] | None = None,
        filled: list[Bucket] | None = None,
        within: Session | None = None,
    ) -> None:
        full = self.store.acquire(buckets, filled, within)
        if full:
            if on_refused is not None:
                on_refused(full)
            # Logged by rule and window only: the key is a digest, no address or IP here.
            log.info("rate limit %s: %d window(s) full", what, len(full))
            for rule in sorted({b.rule for b in full}):
                metrics.RATE_LIMIT_REFUSALS.labels(rule).inc()
            raise limits.refusal(full, int(now.timestamp()))

    @staticmethod
    def _ip(ip: str | None) -> str | None:
        return limits.ip_subject(ip) if ip else None

    def reset_requested(
        self,
        address_key: str,
        ip: str | None,
        now: datetime,
        known: KnownClient | None = None,
        within: Session | None = None,
    ) -> None:
        """Count one reset request, or raise RateLimited; nothing is counted when refused
        (`within`: counted in the caller's transaction, and taken back in it when refused,
        so the caller may still commit its other writes: a group commit).

        Mail bombing (OWASP Forgot Password CS): per target address and per client IP.
        Enumeration: `address_key` is the normalised submitted address, whether or not an
        account has it, so an unknown address trips at exactly the same count.
        Lockout: strangers can spend the address's budget; a client known to the account
        counts in its own bucket instead, so it can always ask for a code.
        """
        checks: list[tuple[Rule, str | None]]
        if known is None:
            checks = [(self.policy.reset_per_address, address_key)]
        else:
            checks = [(self.policy.reset_per_known_client, known.subject)]
        if known is None or known.kind == NETWORK:
            checks.append((self.policy.reset_per_ip, self._ip(ip)))
        self._acquire(self._buckets(now, *checks), now, "reset", within=within)

    def guess(
        self,
        account_key: str,
        ip: str | None,
        now: datetime,
        known: KnownClient | None = None,
        on_account_spent: Callable[[], None] | None = None,
    ) -> Guess:
        """Before one password or second-factor check: RateLimited once failures are over.

        Brute force and credential stuffing (ASVS 5.0 6.3.1, NIST 800-63B 5.2.2): the
        attempt takes a slot *before* it runs, atomically, so parallel guesses cannot
        exceed the budget. A failed guess keeps its slot; the caller gives it back with
        `Guess.succeeded()` when the secret was right.
        Unknown clients share the per-account budget, keyed on the submitted, normalised
        identifier, so unknown and known accounts are limited alike (enumeration); a known
        client spends only its own budget (lockout by strangers), and a known device skips
        the per-IP budget too (carrier NAT neighbours are strangers to it).
        `on_account_spent`: called when this attempt took the last slot of a window of the
        strangers' budget of the account, or was refused by it (the "someone is guessing"
        notice, services/owner_notices.py). At the last slot, not only at a refusal: a
        careful guesser who stops at each window's count is never refused.
        """
        checks: list[tuple[Rule, str | None]]
        if known is None:
            checks = [(self.policy.failures_per_account, account_key)]
        elif known.kind == DEVICE:
            checks = [(self.policy.failures_per_known_device, known.subject)]
        else:
            checks = [(self.policy.failures_per_known_network, known.subject)]
        if known is None or known.kind == NETWORK:
            checks.append((self.policy.failures_per_ip, self._ip(ip)))
        buckets = self._buckets(now, *checks)
        account_rule = self.policy.failures_per_account.name

        def spent(reached: list[Bucket]) -> None:
            if on_account_spent is not None and any(b.rule == account_rule for b in reached):
                on_account_spent()

        filled: list[Bucket] = []
        self._acquire(buckets, now, "failures", spent, filled)
        spent(filled)
        return Guess(self.store, buckets)

    def code_guess(
        self,
        ip: str | None,
        now: datetime,
        known: KnownClient | None = None,
        within: Session | None = None,
    ) -> Guess:
        """Before one reset-code check: only the per-IP failure budget (none for a known
        device, like `guess`). `within`: the slot is taken in the caller's write
        transaction (a reset's try is counted in the same one, issue 12).

        The mailbox always works: a code is guessed against 5 tries per code and the
        codes per address per window (reset_requested), which bound guessing on their
        own; a per-account budget here would let strangers refuse the owner's valid code.
        """
        checks: list[tuple[Rule, str | None]] = []
        if known is None or known.kind == NETWORK:
            checks.append((self.policy.failures_per_ip, self._ip(ip)))
        buckets = self._buckets(now, *checks)
        self._acquire(buckets, now, "failures", within=within)
        return Guess(self.store, buckets)

    def activation_requested(self, account_id: int, now: datetime) -> None:
        """Count one new activation code asked for by an account, or raise RateLimited.

        Mail bombing: whoever signed up with someone else's address could otherwise send
        that mailbox a code per request. The caller is signed in to the account, so only
        the account's holder spends this budget (and the owner has the reset instead).
        """
        checks = [(self.policy.activation_per_account, f"account:{account_id}")]
        self._acquire(self._buckets(now, *checks), now, "activation")

    def signup(self, ip: str | None, now: datetime) -> None:
        """Before createUser hashes and stores: count one sign-up from this IP.

        Mass sign-up, and enumeration through "already exists": both count (the caller
        runs this after the cheap input checks, so a person fixing a typo is not slowed).
        """
        self._acquire(self._buckets(now, (self.policy.signup_per_ip, self._ip(ip))), now, "signup")

    def prune(self, now: datetime) -> int:
        """Drop ended windows (the workers call it at most every PRUNE_EVERY)."""
        return self.store.prune(int(now.timestamp()))

    def close(self) -> None:
        self.store.close()


def unlimited() -> Limits:
    """No limits at all: for a Services built by hand (build() always sets real ones)."""
    off = Rule("off", ())
    return Limits(Policy(off, off, off, off, off, off, off, off, off), Unlimited(), b"")

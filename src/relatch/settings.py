"""Configuration: RELATCH_* environment variables and a `.env` file, via pydantic-settings."""

from __future__ import annotations

import logging
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from relatch.core import forwarding, keyed, limits

log = logging.getLogger(__name__)

# `relatch serve` refuses a shorter RELATCH_SECRET_KEY (Settings.secret_key_problem).
MIN_SECRET_KEY_BYTES = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RELATCH_", env_file=".env", extra="ignore", frozen=False
    )

    database_url: str = "sqlite:///./var/relatch.db"
    smtp_url: SecretStr | None = None
    # CA bundle for a private relay's certificate (added to the system CAs); with
    # credentials in RELATCH_SMTP_URL, TLS is required and verified (mail/transports.py).
    smtp_ca_file: Path | None = None
    mail_dir: Path = Path("./var/mail")
    mail_from: str = "Relatch <no-reply@localhost>"
    public_url: str = "http://127.0.0.1:8000"
    # Where step 3 of the reset page sends people to sign in (e.g. the app's sign-in page);
    # unset: the page only says they can sign in with the new password in their app.
    sign_in_url: str | None = None
    secret_key: SecretStr | None = None
    # Older keys still accepted when checking digests and tokens (key rotation), comma separated.
    secret_key_fallbacks: SecretStr | None = None
    secret_key_file: Path = Path("./var/secret.key")
    # OWASP ASVS 5.0 6.5.5: a recovery code lives at most 10 minutes.
    reset_code_ttl: int = Field(default=600, ge=60, le=600)
    # Wrong tries that kill a live code (brute force: 5 tries x 32^8 codes).
    reset_code_max_attempts: int = Field(default=5, ge=1, le=20)
    redis_url: str | None = None
    # Prefix of the limit counters in Redis (several deployments can share one Redis).
    redis_prefix: str = "relatch:limit:"
    trusted_proxies: str | None = None

    # Rate limits, `COUNT/WINDOW[,COUNT/WINDOW...]` or `off` (core/limits.py); why these
    # defaults: README "Limits". Mail bombing: OWASP Forgot Password CS, issue 3.
    limit_reset_per_address: str = "3/15m,10/1h"
    limit_reset_per_ip: str = "30/1h"
    # Guessing: growing delays, and at most 100 failures a day (NIST 800-63B 5.2.2 caps
    # consecutive failures at 100; ASVS 5.0 6.3.1 asks for anti-automation).
    limit_failures_per_account: str = "10/15m,30/1h,100/1d"
    limit_failures_per_ip: str = "50/15m,200/1h,500/1d"
    limit_signup_per_ip: str = "10/1h,50/1d"
    # Lockout by strangers (OWASP "Slow Down Online Guessing Attacks with Device Cookies"):
    # a client that signed in to, or reset, an account is "known" to it and has its own
    # budget instead of the per-account one that strangers share (services/known_clients.py).
    # A device cookie (pages, OAuth sign-in) is one browser; a network (/24, /64; API) may
    # be a whole office or carrier NAT, hence the smaller budget.
    limit_failures_per_known_device: str = "5/15m,20/1d"
    limit_failures_per_known_network: str = "3/15m,10/1d"
    # Reset requests of a known client: its own bucket, never the address's shared one.
    limit_reset_per_known_client: str = "3/15m,10/1d"
    # New activation codes one account asks for (requestActivationCodeCurrentUser): mail
    # bombing of the address a squatter signed up with (issue 11).
    limit_activation_per_account: str = "3/15m,10/1d"
    # How long a device cookie or a network stays known after its last success.
    known_client_days: int = Field(default=30, ge=1, le=365)

    @field_validator(
        "limit_reset_per_address",
        "limit_reset_per_ip",
        "limit_failures_per_account",
        "limit_failures_per_ip",
        "limit_signup_per_ip",
        "limit_failures_per_known_device",
        "limit_failures_per_known_network",
        "limit_reset_per_known_client",
        "limit_activation_per_account",
    )
    @classmethod
    def _limit_format(cls, value: str) -> str:
        limits.parse(value)  # a typo stops start-up instead of disabling a limit
        return value

    @field_validator("smtp_ca_file")
    @classmethod
    def _ca_file_exists(cls, value: Path | None) -> Path | None:
        # A typo must stop start-up, not turn into a TLS failure on every mail.
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_format(cls, value: str | None) -> str | None:
        forwarding.parse_networks(value)
        return value

    # argon2id: OWASP Password Storage Cheat Sheet minimum (m=19 MiB, t=2, p=1).
    # RFC 9106's low-memory profile is m=65536, t=3, p=4.
    argon2_memory_kib: int = Field(default=19456, ge=8)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_parallelism: int = Field(default=1, ge=1)
    # Bounded hashing pool: at most this many hashes in memory at once (m x workers), and
    # this many waiting (past it: 429). Unset: one worker per core but one (at least one),
    # and 64 waiting per worker (infra/hashing_pool.py default_workers, default_queue).
    hash_workers: int | None = Field(default=None, ge=1, le=64)
    hash_queue: int | None = Field(default=None, ge=0)
    # How far the hash threads' nice value is raised (0-19): where hashes and requests
    # share a core, requests run first (infra/hashing_pool.py).
    hash_nice: int = Field(default=10, ge=0, le=19)

    # PostgreSQL connections each process keeps (its pool), plus twice as many opened for
    # a burst and closed after (overflow): a `relatch serve --workers N` may hold up to
    # N x 3 x this; keep that under the server's max_connections (README, Configuration).
    db_pool_size: int = Field(default=10, ge=1, le=1000)

    jwt_ttl: int = Field(default=7 * 24 * 3600, ge=60)
    # "Sudo mode" (ASVS 5.0 7.5.1): API-key and TOTP changes need a session JWT whose sign-in
    # (iat) is at most this old; a stolen long-lived session cannot plant a credential.
    reauth_seconds: int = Field(default=900, ge=60, le=7 * 24 * 3600)
    # Lost second factor (issue 14): `relatch user mfa-reset` removes an account's TOTP
    # only this many hours after it was asked, while a mail tells the owner and "this was
    # not me" cancels it. Social engineering of the operator: an hour at least, so that a
    # caller pretending to be the owner never gets the factor removed before the owner
    # can read the mail.
    mfa_reset_wait_hours: int = Field(default=72, ge=1, le=90 * 24)
    # Audit rows older than this are pruned by the worker (issue 3; GDPR storage limitation).
    audit_retention_days: int = Field(default=365, ge=1)
    # Delivered mails (and reset requests set aside as dead letters) older than this are
    # pruned by the worker (issue 10): they keep an address in clear.
    outbox_retention_days: int = Field(default=7, ge=1)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Slow and oversized requests (issue 8; slowloris, CVE-2007-6750), enforced by
    # `relatch serve` (http/protocol.py): a request must arrive whole within this time...
    request_timeout_seconds: float = Field(default=30, gt=0, le=3600)
    # ...its request line and headers may take at most this many bytes (431 beyond)...
    max_header_bytes: int = Field(default=16 * 1024, ge=4096, le=1024 * 1024)
    # ...and one server process holds at most this many connections, this many of them from
    # one client (IPv4 address or IPv6 /64; RELATCH_TRUSTED_PROXIES are exempt).
    max_connections: int = Field(default=500, ge=2)
    max_connections_per_client: int = Field(default=50, ge=1)
    # Host header poisoning (issue 8): hosts served besides RELATCH_PUBLIC_URL's and loopback,
    # comma separated (e.g. an internal name a health check uses).
    allowed_hosts: str | None = None
    # The Swagger UI at /v1/docs (http/docs.py): off, or RELATCH_DOCS=on for a pinned version
    # checked by SRI. /v1/openapi.json is always served.
    docs: bool = False
    mail_max_attempts: int = Field(default=12, ge=1)
    # The mail worker's claim lease (mail/worker.py, storage/outbox_claims.py): a mail left
    # `sending` by a process that died is sent by another after at most this long. A send
    # must fit in it: the SMTP deadline is half of it, at most 30 s (at least 2 s: a send
    # gets at least 1 s); at most an hour, like the longest retry backoff.
    mail_claim_seconds: int = Field(default=120, ge=2, le=3600)
    worker_poll_seconds: float = Field(default=0.5, gt=0)
    # Graceful shutdown (issue 10): on SIGTERM `relatch serve` stops accepting and lets the
    # requests in flight finish for at most this long, then the workers finish their item
    # (app.WORKER_DRAIN_SECONDS): with the default the process is gone within 10 s.
    shutdown_timeout_seconds: int = Field(default=7, ge=1, le=3600)
    run_workers: bool = True
    # Operating it (README "Operating Relatch"): `json` writes one JSON object per log line
    # (infra/logs.py); `off` removes GET /metrics (http/health.py).
    log_format: Literal["text", "json"] = "text"
    # One access line per request on stdout (uvicorn's); off where a proxy logs them already.
    access_log: bool = True
    metrics: bool = True

    def secret_key_problem(self) -> str | None:
        """Why RELATCH_SECRET_KEY cannot sign for a real deployment, or None.

        Forgery: the key signs session JWTs and keys every code digest; a short one can be
        brute-forced offline from one token (RFC 7518 3.2: an HMAC-SHA256 key of at least
        256 bits). The generated key (48 random bytes, `secret`) always passes.
        """
        if self.secret_key is None:
            return None
        size = len(self.secret_key.get_secret_value().encode())
        if size < MIN_SECRET_KEY_BYTES:
            return (
                f"RELATCH_SECRET_KEY is {size} bytes long; it must be at least "
                f"{MIN_SECRET_KEY_BYTES} (generate one: python3 -c "
                "'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return None

    @cached_property
    def secret(self) -> bytes:
        """The signing key; generated once into `secret_key_file` when not configured."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.secret_key_file
        if path.exists():
            return path.read_text().strip().encode()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # issue 8: var/ was 0755
        key = secrets.token_urlsafe(48)
        # Written with 0600: the key signs sessions and keys code digests.
        path.touch(mode=0o600)
        path.write_text(key + "\n")
        log.warning("RELATCH_SECRET_KEY is not set: generated a key into %s", path)
        return key.encode()

    @cached_property
    def fallback_secrets(self) -> list[bytes]:
        if self.secret_key_fallbacks is None:
            return []
        raw = self.secret_key_fallbacks.get_secret_value()
        return [k.strip().encode() for k in raw.split(",") if k.strip()]

    @cached_property
    def keys(self) -> keyed.KeyRing:
        """The current key, then the fallbacks: every keyed digest is made and checked with it."""
        return keyed.KeyRing(self.secret, self.fallback_secrets)

    @property
    def issuer(self) -> str:
        return self.public_url.rstrip("/") + "/v1"


def get_settings() -> Settings:
    return Settings()

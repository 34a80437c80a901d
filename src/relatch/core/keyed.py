"""Keyed digests: every use of the secret key for an HMAC, and every purpose, in one place.

The idea of Django's `salted_hmac(key_salt, value, secret)`: one secret key, a key derived
per purpose, so a digest made for one use can never stand in for another (a reset-code
digest is no API-key digest, a CSRF token is no device cookie). Stored digests (reset
codes, API keys, OAuth secrets...) outlive key rotations: `matches` and `candidates` try
the current key and every fallback key (settings RELATCH_SECRET_KEY_FALLBACKS).

Two ways a purpose separates itself, each fixed by digests already stored or handed out
before this module existed (tests/unit/core/test_keyed.py holds vectors of the old code):
- DERIVED: HMAC(HMAC(secret, "relatch:" + name), message), the purpose salts the key;
- TAGGED: HMAC(secret, "relatch-" + name + sep + message), the purpose opens the message.
The two never share an HMAC input: a derived key's input starts "relatch:", a tagged
message "relatch-". The message is the parts joined by the purpose's separator; a purpose
has a fixed number of parts and no part but the last may contain the separator (checked),
so two different lists of parts never give the same message (no splicing of fields).

The secret itself is used raw only as the session JWT's HS256 key (core/tokens.py, with its
own audience); sealing (core/sealing.py) derives its AES keys by HKDF from the SEAL_* names.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload


class Scheme(enum.Enum):
    DERIVED = "derived"
    TAGGED = "tagged"


@dataclass(frozen=True)
class Purpose:
    name: str  # unique among all purposes (a test checks)
    parts: int  # how many parts a message has
    sep: str = ":"  # between parts; only the last part may contain it
    prefix: str = ""  # fixed start of the message (kept from the code before this module)
    scheme: Scheme = Scheme.DERIVED
    b64: bool = False  # text form: base64url without padding (cookies), else hex


# Every keyed digest of the service, one line each: what it keys (parts).
RESET_CODE = Purpose("reset-code", 2)  # mailed reset codes: (account id, code)
RESET_LINK = Purpose("reset-link", 2)  # the reset mail's link token: (account id, secret)
ACTIVATION_CODE = Purpose("activation-code", 2)  # mailed activation codes: (account id, code)
RECOVERY_CODE = Purpose("totp-recovery-code", 2)  # TOTP recovery codes: (account id, code)
NOT_ME_LINK = Purpose("not-me-link", 2)  # "this was not me" links: (account id, secret)
EMAIL_CHANGE_CODE = Purpose("email-change-code", 2)  # new-address codes: (account id, code)
EMAIL_UNDO_LINK = Purpose("email-undo-link", 2)  # old-address undo links: (account id, secret)
# Audit rows of an unknown login: (address or login key). "0:" is the account id 0 these
# digests were once made with (as reset codes of no account); kept so old rows are found.
AUDIT_TARGET = Purpose("audit-target", 1, prefix="0:")
API_KEY = Purpose("api-key", 1)  # API keys: (the whole key)
OAUTH_CLIENT_SECRET = Purpose("oauth-client-secret", 1)  # OAuth client secrets: (secret)
OAUTH_CODE = Purpose("oauth-code", 1)  # OAuth authorization codes: (code)
OAUTH_ACCESS = Purpose("oauth-access-token", 1)  # OAuth access tokens: (token)
OAUTH_REFRESH = Purpose("oauth-refresh-token", 1)  # OAuth refresh tokens: (token)
# OAuth sign-in cookie: ("<account id>.<generation>.<signed at>.<expires>")
OAUTH_SIGNIN = Purpose("oauth-signin-cookie", 1, b64=True)
# prompt=login proof: (account id, signed-in time, SHA-256 hex of the query string)
OAUTH_REAUTH = Purpose("oauth-reauth-proof", 3, sep=".")
CSRF = Purpose("csrf", 1)  # double-submit CSRF token of the forms: (nonce)
DEVICE_COOKIE = Purpose("device-cookie", 1, b64=True)  # device cookie: (device id)
# Known clients of an account: (kind, address key, device id or network)
KNOWN_CLIENT = Purpose("known-client", 3, sep="\x00", scheme=Scheme.TAGGED)
# Rate-limit counters: (rule, subject) (callers keep the first 40 hex characters)
RATE_LIMIT = Purpose("limit", 2, sep="\x00", scheme=Scheme.TAGGED)
# Not a digest: the Fernet key of the reset-code cookie (web/code_carry.py), `derive_key`.
CODE_CARRY = Purpose("code-carry", 0)

PURPOSES: tuple[Purpose, ...] = (
    RESET_CODE,
    RESET_LINK,
    ACTIVATION_CODE,
    RECOVERY_CODE,
    NOT_ME_LINK,
    EMAIL_CHANGE_CODE,
    EMAIL_UNDO_LINK,
    AUDIT_TARGET,
    API_KEY,
    OAUTH_CLIENT_SECRET,
    OAUTH_CODE,
    OAUTH_ACCESS,
    OAUTH_REFRESH,
    OAUTH_SIGNIN,
    OAUTH_REAUTH,
    CSRF,
    DEVICE_COOKIE,
    KNOWN_CLIENT,
    RATE_LIMIT,
    CODE_CARRY,
)

# Purposes of sealing (AES-GCM under an HKDF key, core/sealing.py): values read back.
SEAL_TOTP_SECRET = "totp-secret"  # noqa: S105 (a purpose label) TOTP keys of accounts
SEAL_OAUTH_SIGNING_KEY = "oauth-signing-key"  # private JWKs that sign ID tokens
SEAL_SENT_NOTICE = "reset-page-sent-notice"  # the address shown by the reset page
SEALS: tuple[str, ...] = (SEAL_TOTP_SECRET, SEAL_OAUTH_SIGNING_KEY, SEAL_SENT_NOTICE)


class KeyRing(Sequence[bytes]):
    """The current secret key first, then the fallback keys (rotation), built once.

    New digests, cookies and seals use `current`; checks accept any key of the ring.
    """

    __slots__ = ("_keys",)

    def __init__(self, current: bytes, fallbacks: Iterable[bytes] = ()) -> None:
        self._keys = (current, *fallbacks)

    @property
    def current(self) -> bytes:
        return self._keys[0]

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        return self._keys[index]

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._keys)

    def __repr__(self) -> str:  # never the keys themselves (logs, tracebacks)
        return f"KeyRing(<{len(self._keys)} keys>)"


Part = str | int


def _bytes(text: str) -> bytes:
    # surrogatepass: a lone surrogate from a client gives bytes no valid text gives, not a
    # UnicodeEncodeError (a 500); every other string encodes as plain UTF-8.
    return text.encode("utf-8", "surrogatepass")


def derive_key(secret: bytes, purpose: Purpose) -> bytes:
    """The 32-byte key of one purpose (DERIVED purposes; also a Fernet key's material)."""
    return hmac.new(secret, b"relatch:" + _bytes(purpose.name), hashlib.sha256).digest()


def _message(purpose: Purpose, parts: tuple[Part, ...]) -> bytes:
    if len(parts) != purpose.parts:
        raise ValueError(f"{purpose.name}: {purpose.parts} parts, got {len(parts)}")
    texts = [str(p) for p in parts]
    # Unambiguous: with a fixed count and no separator in any part but the last, the
    # message splits back into exactly these parts.
    if any(purpose.sep in t for t in texts[:-1]):
        raise ValueError(f"{purpose.name}: a part holds the separator")
    body = purpose.prefix + purpose.sep.join(texts)
    if purpose.scheme is Scheme.TAGGED:
        body = f"relatch-{purpose.name}{purpose.sep}{body}"
    return _bytes(body)


def _mac(secret: bytes, purpose: Purpose, parts: tuple[Part, ...]) -> bytes:
    message = _message(purpose, parts)
    key = secret if purpose.scheme is Scheme.TAGGED else derive_key(secret, purpose)
    return hmac.new(key, message, hashlib.sha256).digest()


def _text(purpose: Purpose, raw: bytes) -> str:
    if purpose.b64:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return raw.hex()


def digest(keys: KeyRing | bytes, purpose: Purpose, *parts: Part) -> str:
    """The digest of `parts` for `purpose` under the current key (a ring) or `keys`."""
    secret = keys.current if isinstance(keys, KeyRing) else keys
    return _text(purpose, _mac(secret, purpose, parts))


def candidates(keys: Iterable[bytes], purpose: Purpose, *parts: Part) -> list[str]:
    """The digest under every accepted key, current first: for an indexed IN lookup."""
    return [_text(purpose, _mac(k, purpose, parts)) for k in keys]


def matches(keys: Iterable[bytes], purpose: Purpose, *parts: Part, stored: str) -> bool:
    """Whether `stored` is the digest of `parts` under any accepted key.

    Timing: compare_digest on bytes (a str holding non-ASCII text would raise TypeError:
    `stored` may come from a client), every key tried, no early exit.
    """
    given = _bytes(stored)
    found = False
    for key in keys:
        found |= hmac.compare_digest(_text(purpose, _mac(key, purpose, parts)).encode(), given)
    return found

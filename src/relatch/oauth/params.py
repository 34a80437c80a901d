"""The shape of an authorization request, checked once its redirect URI is verified and
before anything stores, looks up or sends back its parameters.

- Lengths: a parameter that is stored may not exceed its column (a nonce of 257
  characters passed every check and then failed the INSERT at consent on PostgreSQL:
  a 500 after the person had signed in). The limits are read from the columns, so a
  column change moves the limit. Others get a bound of their own: `state` is echoed into
  the redirect's Location header, the rest only needs a few characters.
- Characters: no C0/C1 control characters (NUL is refused by PostgreSQL in text, a 500 on
  the nonce look-up; CR/LF have no place in any OAuth parameter; RFC 6749 A.5 limits
  state to %x20-7E, OIDC's parameters are ASCII words).
- Response mode (OAuth 2.0 Multiple Response Type Encoding Practices 2.1 and 3): a
  response that carries a token or an ID token is never encoded in the query (it would
  sit in the client's access log, the browser history and any Referer); the code flow
  answers in the query. Those are the only modes served (discovery lists both).
- max_age (OIDC Core 3.1.2.1): a count of seconds, ASCII digits only ("²".isdigit() is
  True, and int("²") fails).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sqlalchemy.orm import InstrumentedAttribute

from relatch.storage.models_oauth import OAuthClient, OAuthCode


def _column(attribute: InstrumentedAttribute[str] | InstrumentedAttribute[str | None]) -> int:
    length = getattr(attribute.property.columns[0].type, "length", None)
    assert isinstance(length, int)
    return length


LIMITS: dict[str, int] = {
    "client_id": _column(OAuthClient.client_id),
    "response_type": 64,
    "response_mode": 16,
    "redirect_uri": 2048,
    # Stored only as the subset the client may have, but never more than the column.
    "scope": _column(OAuthCode.scope),
    "state": 1024,
    "nonce": _column(OAuthCode.nonce),
    "code_challenge": _column(OAuthCode.code_challenge),
    "code_challenge_method": _column(OAuthCode.code_challenge_method),
    "prompt": 64,
    "max_age": 9,
    "display": 16,
    "login_hint": 320,
    "ui_locales": 128,
    "id_token_hint": 4096,
    "acr_values": 256,
}
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
MAX_AGE = re.compile("[0-9]{1,9}")
TOKEN_WORDS = frozenset({"token", "id_token"})


def carries_token(response_type: str | None) -> bool:
    """True when the response holds an access token or an ID token (implicit, hybrid)."""
    return bool(TOKEN_WORDS & set((response_type or "").split()))


def default_mode(response_type: str | None) -> str:
    return "fragment" if carries_token(response_type) else "query"


def bad_parameter(datalist: Mapping[str, Sequence[str]]) -> str | None:
    """The name of the first parameter over its length or holding a control character."""
    for name, limit in LIMITS.items():
        for value in datalist.get(name, ()):
            if len(value) > limit or CONTROL.search(value):
                return name
    return None


def mode_problem(data: Mapping[str, str]) -> str | None:
    """Why the response mode or max_age cannot be served, or None."""
    mode = data.get("response_mode")
    if mode and mode != default_mode(data.get("response_type")):
        if carries_token(data.get("response_type")):
            return "Tokens are never sent in the query: use response_mode=fragment"
        return "The code is sent in the query only: use response_mode=query"
    max_age = data.get("max_age")
    if max_age is not None and not MAX_AGE.fullmatch(max_age):
        return "'max_age' must be a number of seconds"
    return None

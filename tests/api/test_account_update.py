"""updateCurrentUser (`POST /v1/api/user`, issue 11): name, job title, company, time zone and
the projects' sort order change, and getCurrentUser shows them; every field is checked, with
a clear error. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.helpers.api import create_key, session_headers
from tests.helpers.audit import rows as audit_rows

ME = "/v1/api/user"


def update(client: TestClient, headers: dict[str, str], body: Any) -> Any:
    return client.post(ME, json=body, headers=headers)


def me(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    resp = client.get(ME, headers=headers)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_the_fields_change_and_get_current_user_shows_them(
    client: TestClient, make_account: Any
) -> None:
    acct: Account = make_account()
    headers = session_headers(client, acct)
    before = me(client, headers)
    assert "timezone" not in before and before["projectsSortOrder"] == "created-desc"
    body = {
        "name": "  Ada King  ",
        "jobTitle": "Analyst",
        "companyName": "Analytical Engines Ltd",
        "timezone": "Europe/London",
        "projectsSortOrder": "name-asc",
        "experiments": ["ignored"],  # the clients may send it; Relatch has none
    }
    assert update(client, headers, body).json() == {"success": True}
    after = me(client, headers)
    assert (after["name"], after["jobTitle"], after["companyName"]) == (
        "Ada King",
        "Analyst",
        "Analytical Engines Ltd",
    )
    assert (after["timezone"], after["projectsSortOrder"]) == ("Europe/London", "name-asc")
    assert after["experiments"] == []
    # Only the fields sent change; an empty title, company or zone clears it.
    assert update(client, headers, {"jobTitle": "", "timezone": ""}).json()["success"] is True
    again = me(client, headers)
    assert "jobTitle" not in again and "timezone" not in again
    assert (again["name"], again["companyName"], again["projectsSortOrder"]) == (
        "Ada King",
        "Analytical Engines Ltd",
        "name-asc",
    )
    assert update(client, headers, {}).json() == {"success": True}


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"name": "   "}, 200, "The name must not be empty"),
        ({"timezone": "Mars/Olympus_Mons"}, 200, "Unknown time zone"),
        ({"timezone": "../../etc/passwd"}, 200, "Unknown time zone"),
        ({"timezone": "europe/london"}, 200, "Unknown time zone"),  # IANA names are exact
        ({"name": "x" * 257}, 400, "Field 'name' must be at most 256 characters long"),
        ({"jobTitle": "line\nbreak"}, 400, "Field 'jobTitle' must be text without control"),
        ({"companyName": "bidi \u202e"}, 400, "Field 'companyName' must be text without"),
        ({"timezone": "UTC\x00"}, 400, "Field 'timezone' must be text without control"),
        ({"timezone": "A" * 65}, 400, "Field 'timezone' must be at most 64 characters"),
        ({"projectsSortOrder": "random"}, 400, "Field 'projectsSortOrder' must be"),
        ({"name": 5}, 400, "Field 'name' must be a valid string"),
        ({"experiments": "not a list"}, 400, "Field 'experiments' must be a valid list"),
    ],
)
def test_each_bad_field_is_refused_with_a_clear_error_and_changes_nothing(
    client: TestClient, make_account: Any, body: dict[str, Any], status: int, error: str
) -> None:
    acct: Account = make_account()
    headers = session_headers(client, acct)
    before = me(client, headers)
    # A good field beside the bad one is not applied either: all or nothing.
    resp = update(client, headers, {"companyName": "Changed", **body})
    assert resp.status_code == status, resp.text
    assert resp.json()["success"] is False and resp.json()["error"].startswith(error), resp.text
    assert me(client, headers) == before


def test_any_scheme_updates_an_unactivated_account_too(
    client: TestClient, make_account: Any
) -> None:
    # Owner side: an API key (the official clients' usual scheme) may edit the profile, and
    # an account not yet activated may update itself (issue 11: sign in, read, update).
    acct: Account = make_account()
    key = {"x-api-key": create_key(client, session_headers(client, acct))["apiKey"]}
    assert update(client, key, {"timezone": "America/New_York"}).json() == {"success": True}
    assert me(client, key)["timezone"] == "America/New_York"
    fresh: Account = make_account(activated=False)
    headers = session_headers(client, fresh)
    assert update(client, headers, {"name": "Still Pending"}).json() == {"success": True}
    assert (me(client, headers)["name"], me(client, headers)["activated"]) == (
        "Still Pending",
        False,
    )


def test_unauthenticated_update_is_401_and_updates_are_audited(
    client: TestClient, make_account: Any, svc: Any
) -> None:
    acct: Account = make_account()
    assert update(client, {}, {"name": "Nobody"}).status_code == 401
    assert update(client, {"x-jwt-token": "not.a.jwt"}, {"name": "Nobody"}).status_code == 401
    headers = session_headers(client, acct)
    update(client, headers, {"name": "Audited"})
    update(client, headers, {"timezone": "Nowhere/Else"})
    trail = [(r.event, r.outcome, r.account_id, r.subject_id) for r in audit_rows(svc)]
    assert trail[-2:] == [
        ("profile_update", "ok", acct.id, None),
        ("profile_update", "invalid_input", acct.id, None),
    ]

"""`relatch user import` (issue 13, moving users in): 1,000 generated accounts mixing every
accepted hash format with bad rows, on SQLite and PostgreSQL; each format then signs in
through HTTP and ends with Relatch's argon2id; a re-run skips what is there."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from relatch.app import cli as cli_app
from relatch.core.import_rows import parse
from relatch.services.account_import import ADDRESS_RESERVED, import_accounts
from relatch.services.context import Services
from relatch.storage.models import User
from tests.conftest import Mailbox
from tests.helpers.api import login, session_headers
from tests.helpers.email_change import UNDO_PATH, change, undo_link
from tests.helpers.hash_formats import SCHEMES, make_hash
from tests.helpers.not_me import open_page, token_of

COLUMNS = ["email", "username", "name", "password_hash", "activated"]
ROWS = 1000

# Rows that must be refused, each with (a part of) the reason the summary gives.
BAD: list[tuple[dict[str, str], str]] = [
    ({"email": "not-an-address"}, "Invalid e-mail address"),
    ({"username": "_bad_"}, "Invalid username"),
    ({"username": "ab"}, "Invalid username"),
    ({"password_hash": "md5$salt$5f4dcc3b5aa765d61d8327deb882cf99"}, "unknown hash format"),
    ({"password_hash": "$argon2d$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"}, "argon2d"),
    ({"password_hash": "$2b$31$" + "a" * 53}, "bcrypt cost 31"),
    ({"password_hash": "pbkdf2_sha256$99999999$salt$aGFzaA=="}, "iterations"),
    ({"password_hash": "scrypt$1048576$salt$8$1$" + "A" * 88}, "over the cap"),
    ({"password_hash": ""}, "password_hash is empty"),
    ({"name": "Mallory\x1b[2J"}, "name must be one line"),
    ({"activated": "maybe"}, "activated must be true or false"),
]


def password_of(i: int) -> str:
    return f"imported pass {i:04d}"


def generated(tmp_path: Path) -> tuple[Path, dict[str, int], dict[int, str]]:
    """A CSV of ROWS data lines: good rows of every format, bad rows and duplicates at
    fixed places. Returns the file, one good row index per scheme (first data line is
    index 0, on line 2), and the expected reason of each refused line."""
    rnd = random.Random(13)
    rows: list[dict[str, str]] = []
    one_of: dict[str, int] = {}
    expected: dict[int, str] = {}
    for i in range(ROWS):
        scheme = SCHEMES[i % len(SCHEMES)]
        prefix = rnd.choice(["$2a$", "$2b$", "$2y$"])
        row = {
            "email": f"Person.{i}@Example.COM",
            "username": f"person{i:04d}",
            "name": f"Person {i}",
            "password_hash": make_hash(scheme, password_of(i), prefix=prefix),
            "activated": "true" if i % 2 else "",
        }
        line = i + 2
        if i % 50 == 7:
            change, reason = BAD[(i // 50) % len(BAD)]
            row.update(change)
            expected[line] = reason
        elif i % 97 == 5 and i > 5:
            row["email"] = rows[0]["email"].upper()  # the same address as line 2
            expected[line] = "same address as line 2"
        elif i % 89 == 3 and i > 3:
            row["username"] = rows[1]["username"].upper()
            expected[line] = "same username as line 3"
        else:
            one_of.setdefault(scheme, i)
        rows.append(row)
    path = tmp_path / "users.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path, one_of, expected


def run_import(runner: CliRunner, path: Path, *args: str) -> Any:
    return runner.invoke(cli_app, ["user", "import", str(path), *args])


def stored_hash(svc: Services, username: str) -> str:
    with svc.sessions() as s:
        found = s.scalars(select(User.password_hash).where(User.username == username)).one()
    assert found is not None
    return found


def test_import_of_1000_mixed_rows_then_each_format_signs_in_and_is_upgraded(
    cli: CliRunner, client: TestClient, svc: Services, tmp_path: Path
) -> None:
    path, one_of, expected = generated(tmp_path)
    assert set(one_of) == set(SCHEMES)
    lines = path.read_text().splitlines(keepends=True)
    half = tmp_path / "half.csv"
    half.write_text("".join(lines[:501]))  # an import cut off after 500 rows

    first = run_import(cli, half, "--batch", "128")
    second = run_import(cli, path, "--batch", "128", "--errors", str(tmp_path / "errors.txt"))

    bad_in_half = sum(1 for line in expected if line <= 501)
    good_in_half = 500 - bad_in_half
    good = ROWS - len(expected)
    assert f"imported: {good_in_half}\n" in first.stdout, first.output
    assert f"imported: {good - good_in_half}\n" in second.stdout, second.output
    assert f"already there (skipped): {good_in_half}\n" in second.stdout
    reported = (tmp_path / "errors.txt").read_text().splitlines()
    assert len(reported) == len(expected)
    for report, (line, reason) in zip(reported, sorted(expected.items()), strict=True):
        assert report.startswith(f"line {line}: ") and reason in report, report
    assert second.exit_code == 1  # some rows were skipped

    with svc.sessions() as s:
        users = s.scalars(select(User).where(User.username.like("person%"))).all()
    assert len(users) == good
    by_name = {u.username: u for u in users}
    # Addresses normalised as createUser does (the domain lower-cased), flags as the row says.
    assert by_name["person0000"].email == "Person.0@example.com"
    assert by_name["person0001"].email_verified is True
    assert by_name["person0000"].email_verified is False

    for scheme, i in one_of.items():
        username = f"person{i:04d}"
        before = stored_hash(svc, username)
        assert not before.startswith("$argon2id$") or scheme == "argon2id"
        assert login(client, username, "wrong password here")["success"] is False
        assert stored_hash(svc, username) == before, scheme  # a failure changes nothing
        assert login(client, username, password_of(i))["success"] is True, scheme
        after = stored_hash(svc, username)
        assert after.startswith("$argon2id$v=19$m=1024,t=1,p=1$"), (scheme, after)
        assert login(client, username, password_of(i))["success"] is True, scheme

    again = run_import(cli, path)
    assert "imported: 0\n" in again.stdout
    assert f"already there (skipped): {good}\n" in again.stdout


def test_jsonl_rows_and_a_file_without_a_column(cli: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    good = {
        "email": "json@example.com",
        "username": "jsonuser",
        "name": "J",
        "password_hash": make_hash("bcrypt", "a long json password"),
        "activated": True,
    }
    django_argon2 = "argon2" + make_hash("argon2id", "another password")  # Django's form
    lines = [
        json.dumps(good),
        "",
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({**good, "email": "j2@example.com", "username": "jsonuser2", "name": 5}),
        json.dumps(
            {
                **good,
                "email": "j3@example.com",
                "username": "jsonu3",
                "password_hash": django_argon2,
            }
        ),
    ]
    path.write_text("\n".join(lines) + "\n")
    result = run_import(cli, path)
    assert "imported: 2\n" in result.stdout, result.output
    assert "line 3: not valid JSON" in result.stdout
    assert "line 4: not a JSON object" in result.stdout
    assert "line 5: name is missing or not text" in result.stdout

    no_hash = tmp_path / "nohash.csv"
    no_hash.write_text("email,username,name\na@example.com,aaaa,A\n")
    refused = run_import(cli, no_hash)
    assert refused.exit_code == 2
    assert "password_hash" in refused.output
    assert "a@example.com" not in refused.output  # rows are never echoed


def test_own_argon2_hashes_are_upgraded_when_the_parameters_change(
    client: TestClient, make_account: Any, svc: Services, tmp_path: Path
) -> None:
    from relatch.app import build, create_app
    from tests.helpers.app import test_settings

    acct = make_account()
    old = stored_hash(svc, acct.username)
    assert old.startswith("$argon2id$v=19$m=1024,t=1,")
    raised = build(test_settings(tmp_path, svc.settings.database_url, argon2_time_cost=2))
    try:
        with TestClient(create_app(svc=raised)) as other:
            assert login(other, acct.username, acct.password)["success"] is True
    finally:
        raised.close()
    assert stored_hash(svc, acct.username).startswith("$argon2id$v=19$m=1024,t=2,")
    assert login(client, acct.username, acct.password)["success"] is True


def test_a_password_change_replaces_an_imported_hash(
    cli: CliRunner, client: TestClient, svc: Services, tmp_path: Path
) -> None:
    path = tmp_path / "one.csv"
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    writer.writerow(["pb@example.com", "pbkdf", "P", make_hash("pbkdf2_sha1", "old pass 123"), "1"])
    path.write_text(buf.getvalue())
    assert run_import(cli, path).exit_code == 0
    token = login(client, "pbkdf", "old pass 123")["token"]
    # The sign-in already upgraded it; put a foreign hash back to test the change path alone.
    with svc.sessions.begin() as s:
        user = s.scalars(select(User).where(User.username == "pbkdf")).one()
        user.password_hash = make_hash("scrypt", "old pass 123")
    resp = client.post(
        "/v1/api/user/change-password",
        json={"currentPassword": "old pass 123", "newPassword": "amber kettle on the moor"},
        headers={"x-jwt-token": token},
    )
    assert resp.json() == {"success": True}, resp.text
    assert stored_hash(svc, "pbkdf").startswith("$argon2id$")


def test_an_imported_hash_of_a_password_nfkc_changes_still_signs_in(
    cli: CliRunner, client: TestClient, svc: Services, tmp_path: Path
) -> None:
    # The old system hashed what was typed; Relatch normalises (NFKC) its own hashes. A
    # full-width password must still match its imported hash, then move to argon2id.
    typed = "ｆｕｌｌ ｗｉｄｔｈ ｐａｓｓｗｏｒｄ"
    path = tmp_path / "users.jsonl"
    row = {
        "email": "wide@example.com",
        "username": "wideuser",
        "name": "W",
        "password_hash": make_hash("bcrypt", typed),
        "activated": True,
    }
    path.write_text(json.dumps(row) + "\n")
    assert "imported: 1\n" in run_import(cli, path).stdout
    assert login(client, "wide@example.com", typed)["success"] is True
    assert stored_hash(svc, "wideuser").startswith("$argon2id$")
    # Upgraded to Relatch's normalised form: the same password still signs in.
    assert login(client, "wide@example.com", typed)["success"] is True


def test_an_address_another_account_may_take_back_is_not_imported(
    svc: Services, client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    """Takeover, both sides: an account moved off its address (an intruder's change); for
    7 days its owner's undo link may bring it back. An import of that address is skipped
    with the reason (attacker: a squatting row cannot block the way back), and the owner's
    undo still works afterwards (owner). Through the use case, on the test's clock (the
    command line runs on the real one)."""
    acct = make_account()
    change(client, mailbox, session_headers(client, acct), "moved.away@example.org")
    raw = {
        "email": acct.email,
        "username": "squat1",
        "name": "S",
        "password_hash": make_hash("bcrypt", "a squatter's password"),
    }
    summary = import_accounts(svc, parse([(2, raw)]))
    assert (summary.imported, summary.skipped) == (0, [(2, ADDRESS_RESERVED)])
    link = undo_link(mailbox, acct.email)
    _, csrf = open_page(client, link)
    done = client.post(UNDO_PATH, data={"token": token_of(link), "csrf_token": csrf})
    assert done.status_code == 200, done.text
    with svc.sessions() as s:
        owner = s.scalars(select(User).where(User.username == acct.username)).one()
    assert owner.email == acct.email
    # An address no undo link holds is imported like any other (the one the account left).
    free = import_accounts(svc, parse([(2, {**raw, "email": "moved.away@example.org"})]))
    assert free.imported == 1

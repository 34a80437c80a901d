"""Migration 0014 (issue 11) on a database holding accounts made before it: passwords,
session JWTs and API keys keep working, nothing is staff or suspended, an account never
proven stays `activated: false`; and from then on no account id is handed out twice (on
SQLite, which rebuilds `users` as AUTOINCREMENT without losing any child row). On SQLite and
PostgreSQL, migrated for real from an empty database."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from relatch.app import build, create_app
from relatch.core import apikeys, keyed, tokens
from relatch.core.hashing import Argon2Params, Hasher
from relatch.storage import migrate
from relatch.storage.db import make_engine
from tests.conftest import FakeClock
from tests.conftest import test_settings as make_settings

PASSWORD = "a password from before"
USER = (
    "INSERT INTO users (email, email_key, username, username_key, name, password_hash, "
    "credential_generation, email_verified, created_at) VALUES "
    "(:email, :email, :username, :username, 'Old', :hash, 0, :proven, '2025-06-01 00:00:00')"
)


def test_accounts_from_before_keep_working_and_ids_are_never_reused(
    tmp_path: Path, db_url: str
) -> None:
    settings = make_settings(tmp_path, db_url)
    clock = FakeClock()
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0013_activation")
        key, prefix = apikeys.generate()
        hashed = Hasher(Argon2Params(memory_kib=1024, time_cost=1)).hash(PASSWORD)
        with engine.begin() as conn:
            for n, proven in ((1, True), (2, False)):
                conn.execute(
                    text(USER),
                    {"email": f"old{n}@example.com", "username": f"old{n}", "hash": hashed,
                     "proven": proven},
                )  # fmt: skip
            ids = dict(conn.execute(text("SELECT username, id FROM users")).all())
            conn.execute(
                text(
                    "INSERT INTO api_keys (user_id, name, prefix, digest, created_at) "
                    "VALUES (:u, 'ci', :p, :d, '2025-06-01 00:00:00')"
                ),
                {
                    "u": ids["old2"],
                    "p": prefix,
                    "d": keyed.digest(settings.keys, keyed.API_KEY, key),
                },
            )
        session = tokens.issue(
            settings.secret, settings.issuer, ids["old1"], 0, int(clock.now.timestamp()), 3600
        )
        migrate.upgrade(engine)
    finally:
        engine.dispose()

    svc = build(settings, clock=clock)
    try:
        with TestClient(create_app(svc=svc), raise_server_exceptions=False) as client:
            me = client.get("/v1/api/user", headers={"x-jwt-token": session}).json()
            assert (me["id"], me["activated"], me["suspended"]) == (ids["old1"], True, False)
            assert me["staffInfo"]["isStaff"] is False
            assert me["projectsSortOrder"] == "created-desc" and "timezone" not in me
            by_key = client.get("/v1/api/user", headers={"x-api-key": key}).json()
            # Never proven before: still not (issue 11), and it may ask for a code.
            assert (by_key["id"], by_key["activated"]) == (ids["old2"], False)
            login = client.post("/v1/api-login", json={"username": "old2", "password": PASSWORD})
            headers = {"x-jwt-token": login.json()["token"]}
            # The newest account deleted, then its address registered again: a new id.
            gone = client.request("DELETE", "/v1/api/user", json={"password": PASSWORD},
                                  headers=headers)  # fmt: skip
            assert gone.json() == {"success": True}
            assert client.get("/v1/api/user", headers={"x-api-key": key}).status_code == 401
            again = client.post(
                "/v1/api-user-create",
                json={"name": "New", "username": "old2", "email": "old2@example.com",
                      "privacyPolicy": True, "password": "a brand new password"},
            ).json()  # fmt: skip
            assert again["success"] is True and again["id"] > ids["old2"]
            assert client.get("/v1/api/user", headers=headers).status_code == 401
    finally:
        svc.close()

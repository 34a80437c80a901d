"""The accounts repository (storage/accounts.py), on SQLite and PostgreSQL: lookups by id,
login and address key; the "new password" write always bumps the credential generation;
a rehash never overwrites a password changed meanwhile."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from relatch.services.account import Account
from relatch.services.context import Services
from relatch.storage import accounts
from relatch.storage.db import transaction


def _add(svc: Services, email: str = "Ada@Example.com", username: str = "ada") -> int:
    with transaction(svc.sessions) as s:
        return accounts.add(
            s,
            email=email,
            username=username,
            name="Ada",
            password_hash="h1",
            now=svc.clock(),
            job_title=None,
            company_name=None,
        )


def test_lookups_by_id_login_and_address_key(svc: Services) -> None:
    account_id = _add(svc)
    with svc.sessions() as s:
        assert accounts.by_id(s, account_id) is not None
        for login in ("ada", "ADA", "ada@example.com", " Ada@Example.com "):
            found = accounts.by_login(s, login)
            assert found is not None and found.id == account_id
        found = accounts.by_email(s, "ADA@example.COM")
        assert found is not None and found.id == account_id
        assert accounts.by_login(s, "bob") is None
        assert accounts.by_email(s, "bob@example.com") is None
        assert accounts.by_id(s, account_id + 1) is None


def test_the_address_and_username_stay_unique(svc: Services) -> None:
    _add(svc)
    with pytest.raises(IntegrityError):
        _add(svc, email="ada@example.com", username="other")
    with pytest.raises(IntegrityError):
        _add(svc, email="other@example.com", username="Ada")


def test_a_new_password_bumps_the_generation(svc: Services) -> None:
    account_id = _add(svc)
    with transaction(svc.sessions) as s:
        accounts.set_password(s, account_id, "h2", svc.clock(), verified=True)
    with transaction(svc.sessions) as s:
        accounts.set_password(s, account_id, None, svc.clock(), verified=False)
    with svc.sessions() as s:
        user = accounts.by_id(s, account_id)
        assert user is not None
        view = Account.of(user)
    assert view.credential_generation == 2
    assert view.email_verified is True
    assert view.password_configured is False


def test_a_rehash_never_overwrites_a_changed_password(svc: Services) -> None:
    account_id = _add(svc)
    with transaction(svc.sessions) as s:
        accounts.set_password(s, account_id, "h2", svc.clock(), verified=False)
    with transaction(svc.sessions) as s:
        accounts.replace_hash(s, account_id, "h1", "h1-rehashed")  # stale: refused
        assert accounts.with_hash(s, account_id, "h1") is None
    with transaction(svc.sessions) as s:
        accounts.replace_hash(s, account_id, "h2", "h2-rehashed")
    with svc.sessions() as s:
        user = accounts.by_id(s, account_id)
        assert user is not None
        assert user.password_hash == "h2-rehashed"
        assert user.credential_generation == 1  # a rehash revokes nothing


def test_set_email_keeps_the_key_with_the_address_and_the_index_refuses_a_taken_one(
    svc: Services,
) -> None:
    """A change of address (services/email_change.py): the lookup key follows the address,
    and another account's address (any case) is refused by the unique index, which decides
    the race of two accounts confirming one address."""
    ada = _add(svc)
    bob = _add(svc, "bob@example.com", "bob")
    with transaction(svc.sessions) as s:
        accounts.set_email(s, ada, "Ada.New@Example.org", verified=True)
    with svc.sessions() as s:
        found = accounts.by_email(s, "ada.new@example.ORG")
        assert found is not None and found.id == ada and found.email_verified
        assert found.email == "Ada.New@Example.org"
        assert accounts.by_email(s, "Ada@Example.com") is None
    with pytest.raises(IntegrityError), transaction(svc.sessions) as s:
        accounts.set_email(s, bob, "ADA.NEW@example.org", verified=True)
    with svc.sessions() as s:
        unchanged = accounts.by_id(s, bob)
        assert unchanged is not None and unchanged.email == "bob@example.com"

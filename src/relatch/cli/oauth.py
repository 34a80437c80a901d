"""`relatch oauth-client create` and `relatch oauth-key rotate`."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import urlsplit

import typer

from relatch.cli.context import build
from relatch.oauth import keys
from relatch.settings import get_settings
from relatch.storage import oauth_repo as store
from relatch.storage.oauth_records import GRANT_TYPES, SCOPES

clients = typer.Typer(no_args_is_help=True, help="OAuth2 clients")
signing_keys = typer.Typer(no_args_is_help=True, help="OpenID Connect signing keys")
GRANT_HELP = "allowed grant (repeatable): " + ", ".join(GRANT_TYPES)
SCOPE_HELP = "allowed scope (repeatable): " + ", ".join(SCOPES)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@clients.command("create")
def create_client(
    name: Annotated[str, typer.Option(help="name shown on the consent page")],
    grant: Annotated[list[str], typer.Option(help=GRANT_HELP)],
    redirect_uri: Annotated[list[str] | None, typer.Option(help="exact URI (repeatable)")] = None,
    scope: Annotated[list[str] | None, typer.Option(help=SCOPE_HELP)] = None,
    public: Annotated[bool, typer.Option("--public", help="no secret (PKCE S256)")] = False,
) -> None:
    """Register a client; prints {"client_id": ..., "client_secret": ...} as JSON."""
    redirect_uri = redirect_uri or []
    scope = scope or []
    unknown = [g for g in grant if g not in GRANT_TYPES]
    if unknown:
        raise _fail(f"unknown grant {unknown[0]!r}; choose from {', '.join(GRANT_TYPES)}")
    bad_scopes = [s for s in scope if s not in SCOPES]
    if bad_scopes:
        raise _fail(f"unknown scope {bad_scopes[0]!r}; choose from {', '.join(SCOPES)}")
    for uri in redirect_uri:
        parts = urlsplit(uri)
        # Code theft through the redirect: absolute URIs without a fragment (RFC 6749 3.1.2).
        if not parts.scheme or not (parts.netloc or parts.scheme not in ("http", "https")):
            raise _fail(f"redirect URI {uri!r} must be absolute")
        if parts.fragment:
            raise _fail(f"redirect URI {uri!r} must not carry a fragment")
    if {"authorization_code", "implicit"} & set(grant) and not redirect_uri:
        raise _fail("authorization_code and implicit need at least one --redirect-uri")
    if public and "client_credentials" in grant:
        raise _fail("a public client cannot use client_credentials (it has no secret)")
    svc = build(get_settings())
    try:
        new = store.create_client(svc, name, redirect_uri, grant, scope, public)
    finally:
        svc.close()
    out: dict[str, str] = {"client_id": new.client_id}
    if new.client_secret is not None:
        out["client_secret"] = new.client_secret
    typer.echo(json.dumps(out))


@signing_keys.command("rotate")
def rotate_key() -> None:
    """Make a new ID-token signing key; older keys stay published for a while."""
    svc = build(get_settings())
    try:
        kid = keys.rotate(svc)
    finally:
        svc.close()
    typer.echo(json.dumps({"kid": kid}))

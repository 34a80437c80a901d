"""The OAuth2 and OpenID Connect provider, built on Authlib (issue 4): the integration only.

server.py   the Starlette adapter of Authlib's AuthorizationServer (no Starlette server
            integration ships with Authlib), one instance per request and transaction
grants.py   the grants and extensions Relatch allows (code + PKCE, implicit, password,
            client credentials, refresh with rotation) and OpenID Connect ID tokens
endpoints.py revocation (RFC 7009) and introspection (RFC 7662)
keys.py     ID-token signing keys: sealed at rest, rotated by CLI, published as JWKS
params.py   checks on the authorize request's parameters

Elsewhere: the rows (storage/oauth_repo.py, oauth_clients.py, oauth_code_replay.py, and
Authlib's mixins in oauth_records.py), the bearer scheme (auth/bearer.py), the authorize
page with its sign-in cookie and re-authentication proof (web/authorize_page.py,
signin.py, reauth.py), the routes (http/routes/oauth.py).
"""

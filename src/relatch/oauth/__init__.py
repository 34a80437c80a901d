"""The OAuth2 and OpenID Connect provider, built on Authlib (issue 4).

server.py   the Starlette adapter of Authlib's AuthorizationServer (no Starlette server
            integration ships with Authlib), one instance per request and transaction
grants.py   the grants and extensions Relatch allows (code + PKCE, implicit, password,
            client credentials, refresh with rotation) and OpenID Connect ID tokens
endpoints.py revocation (RFC 7009) and introspection (RFC 7662)
store.py    clients, codes, tokens, consents: the rows behind Authlib's mixins
keys.py     ID-token signing keys: sealed at rest, rotated by CLI, published as JWKS
signin.py   the sign-in cookie of the authorize page
routes.py   /v1/oauth/* and /v1/.well-known/openid-configuration
"""

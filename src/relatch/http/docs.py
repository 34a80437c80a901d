"""The Swagger UI at /v1/docs: off unless RELATCH_DOCS=on, and then pinned and checked.

Supply chain (issue 8): FastAPI's default page loads `swagger-ui-dist@5`, whatever 5.x the
CDN serves that day, without Subresource Integrity. That script runs on Relatch's origin,
where the browser sends the `jwt` cookie along with every request: a tampered release or
CDN could create API keys for anyone who opens the page while signed in. The page is not
needed to use the API (the official clients read /v1/openapi.json, which stays), so it is
off by default. When on, it loads one exact version and the browser refuses any byte that
does not match the SRI digest below.

Serving the assets from a PyPI package was considered: swagger-ui-bundle's last release is
from 2023, and the newer ones (swagger-ui-bundle-v2, fastapi-offline) are one-person
repackagings we would trust no more than a pinned digest, hence the CDN with SRI.
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

DOCS_URL = "/v1/docs"
OAUTH2_REDIRECT_URL = "/v1/docs/oauth2-redirect"

SWAGGER_UI_VERSION = "5.35.0"
CDN = f"https://cdn.jsdelivr.net/npm/swagger-ui-dist@{SWAGGER_UI_VERSION}"
# sha384 of the files in the npm package swagger-ui-dist-5.35.0.tgz, which the CDN serves
# unchanged. To upgrade: `npm pack swagger-ui-dist@X.Y.Z`, then for each file
# `openssl dgst -sha384 -binary package/FILE | openssl base64 -A`.
JS_SRI = "sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9"
CSS_SRI = "sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I"


def page(title: str, openapi_url: str) -> str:
    options = {
        "url": openapi_url,
        "dom_id": "#swagger-ui",
        "layout": "BaseLayout",
        "deepLinking": True,
    }
    # json.dumps then "<" escaped: nothing in a value can close the script element.
    config = json.dumps(options).replace("<", "\\u003c")
    redirect = json.dumps(OAUTH2_REDIRECT_URL)
    return f"""<!DOCTYPE html>
<html>
<head>
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title} - Swagger UI</title>
<link rel="stylesheet" href="{CDN}/swagger-ui.css" integrity="{CSS_SRI}"
  crossorigin="anonymous" referrerpolicy="no-referrer">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{CDN}/swagger-ui-bundle.js" integrity="{JS_SRI}"
  crossorigin="anonymous" referrerpolicy="no-referrer"></script>
<script>
const config = {config};
config.oauth2RedirectUrl = window.location.origin + {redirect};
config.presets = [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset];
SwaggerUIBundle(config);
</script>
</body>
</html>
"""


def install(app: FastAPI, openapi_url: str) -> None:
    html = page("Relatch", openapi_url)

    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(html)

    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()  # self-contained, loads nothing

    app.add_api_route(DOCS_URL, swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        OAUTH2_REDIRECT_URL, oauth2_redirect, methods=["GET"], include_in_schema=False
    )

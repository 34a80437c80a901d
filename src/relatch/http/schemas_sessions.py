"""Bodies of Relatch's own sessions, OAuth apps and address operations (issue 14; not Edge
Impulse's)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from relatch.http.schemas import _REQUEST, EiDateTime, GenericApiResponse, Login, Token


class SessionInfo(BaseModel):
    id: str = Field(description="The session's id, to end it by")
    created: EiDateTime = Field(description="When it signed in")
    lastSeen: EiDateTime = Field(description="Last request, to the minute")  # noqa: N815
    userAgent: str | None = None  # noqa: N815
    network: str | None = Field(
        default=None, description="The client's network: its IPv4 /24 or IPv6 /64"
    )
    current: bool = Field(description="Whether this is the session making the request")


class ListSessionsResponse(GenericApiResponse):
    sessions: list[SessionInfo] = Field(default_factory=list)


class OAuthAppInfo(BaseModel):
    clientId: str  # noqa: N815
    name: str
    scopes: list[str] = Field(description="Every scope it holds, consented or in a live token")
    granted: EiDateTime = Field(description="When it was first let in")


class ListOAuthAppsResponse(GenericApiResponse):
    apps: list[OAuthAppInfo] = Field(default_factory=list)


class ChangeEmailRequest(BaseModel):
    model_config = _REQUEST
    newEmail: Login = Field(description="The new address; a code is mailed to it")  # noqa: N815


class ConfirmEmailChangeRequest(BaseModel):
    model_config = _REQUEST
    code: Token = Field(description="The code mailed to the new address")

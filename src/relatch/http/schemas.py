"""Request and response bodies, named and shaped exactly as the Edge Impulse schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

# Requests are strict (a number where a string belongs is a 400, not coerced) and
# ignore fields Relatch has no use for (the official clients send them).
_REQUEST = ConfigDict(strict=True, extra="ignore")


def _iso_millis(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# A date-time as Edge Impulse writes it (JavaScript's Date.toJSON: UTC, milliseconds, `Z`).
# The npm client turns only that shape (at most 3 fraction digits) into a Date; pydantic's
# default 6 digits would reach its callers as a plain string despite its `Date` type.
EiDateTime = Annotated[
    datetime,
    PlainSerializer(_iso_millis, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class GenericApiResponse(BaseModel):
    success: bool = Field(description="Whether the operation succeeded")
    error: str | None = Field(
        default=None, description="Optional error description (set if 'success' was false)"
    )


class ResetPasswordRequest(BaseModel):
    model_config = _REQUEST
    email: str
    code: str
    newPassword: str  # noqa: N815 (Edge Impulse field name)


class RequestResetPasswordRequest(BaseModel):
    model_config = _REQUEST
    email: str


class VerifyResetPasswordRequest(BaseModel):
    model_config = _REQUEST
    email: str
    code: str


class GetJWTRequest(BaseModel):
    model_config = _REQUEST
    username: str = Field(description="Username or e-mail address")
    password: str = Field(description="Password")
    uuid: str | None = None
    ssoType: Literal["browser", "cli"] | None = None  # noqa: N815
    sessionId: str | None = None  # noqa: N815
    totpToken: str | None = None  # noqa: N815


class GetJWTResponse(GenericApiResponse):
    token: str | None = Field(default=None, description="JWT token")
    redirectUrl: str | None = None  # noqa: N815


class CreateUserRequest(BaseModel):
    model_config = _REQUEST
    name: str
    username: str
    email: str
    privacyPolicy: bool  # noqa: N815
    password: str | None = None
    projectName: str | None = None  # noqa: N815
    activationToken: str | None = None  # noqa: N815
    identityProvider: str | None = None  # noqa: N815
    jobTitle: str | None = None  # noqa: N815
    sessionId: str | None = None  # noqa: N815
    companyName: str | None = None  # noqa: N815
    utmParams: list[dict[str, Any]] | None = None  # noqa: N815
    ignoreEmailValidation: bool | None = None  # noqa: N815


class CreateUserResponse(GenericApiResponse):
    redirectUrl: str | None = None  # noqa: N815
    id: int | None = Field(default=None, description="User unique identifier")


class ChangePasswordRequest(BaseModel):
    model_config = _REQUEST
    currentPassword: str  # noqa: N815
    newPassword: str  # noqa: N815


class StaffInfo(BaseModel):
    isStaff: bool  # noqa: N815
    hasSudoRights: bool  # noqa: N815


class LastAccessedProjects(BaseModel):
    projects: list[dict[str, Any]]
    hasMoreProjects: bool  # noqa: N815


ProjectsSortOrder = Literal[
    "created-asc",
    "created-desc",
    "added-asc",
    "added-desc",
    "name-asc",
    "name-desc",
    "last-accessed-desc",
]


class GetUserResponse(GenericApiResponse):
    """Every field the Edge Impulse schema requires is required here too (no defaults),
    so the served document marks them required and the official clients parse it."""

    id: int
    username: str
    name: str
    email: str
    created: EiDateTime
    staffInfo: StaffInfo  # noqa: N815
    pending: bool
    activated: bool
    mfaConfigured: bool  # noqa: N815
    jobTitle: str | None = None  # noqa: N815
    companyName: str | None = None  # noqa: N815
    permissions: list[str] | None = None
    tier: Literal["free", "community-plus", "professional", "enterprise"]
    organizations: list[dict[str, Any]]
    projects: list[dict[str, Any]]
    experiments: list[dict[str, Any]]
    suspended: bool
    notifications: list[str]
    passwordConfigured: bool  # noqa: N815
    projectsSortOrder: ProjectsSortOrder  # noqa: N815
    hasEnterpriseFeaturesAccess: bool  # noqa: N815
    lastAccessedProjects: LastAccessedProjects  # noqa: N815
    privatePersonalProjectsUsed: int  # noqa: N815


# TOTP second factor (Edge Impulse operations userGenerateNewTotpMfaKey, userSetTotpMfaKey,
# userDeleteTotpMfaKey).
class UserGenerateNewMfaKeyResponse(GenericApiResponse):
    key: str = Field(description="Secret key (use SHA-1).")
    url: str = Field(description="URL that will be converted into a QR code that can be scanned.")


class UserSetTotpMfaKeyRequest(BaseModel):
    model_config = _REQUEST
    key: str = Field(description="Secret key obtained through `userGenerateNewMfaKey`.")
    totpToken: str = Field(  # noqa: N815
        description="TOTP token that is valid for the key (to ensure the device is "
        "configured correctly)"
    )


class UserSetTotpMfaKeyResponse(GenericApiResponse):
    recoveryCodes: list[str] = Field(  # noqa: N815
        description="10 recovery codes, which can be used in case you've lost access to your "
        "MFA TOTP app. Recovery codes are single use. Once you've used a recovery code once, "
        "it can not be used again."
    )


class UserDeleteTotpMfaKeyRequest(BaseModel):
    model_config = _REQUEST
    totpToken: str = Field(description="Valid TOTP token")  # noqa: N815


# API keys: operations of Relatch's own (not in the Edge Impulse subset), same conventions.
class ApiKeyInfo(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="Non-secret start of the key, shown in lists and logs")
    created: EiDateTime
    lastUsed: EiDateTime | None = None  # noqa: N815


class ListApiKeysResponse(GenericApiResponse):
    apiKeys: list[ApiKeyInfo] = Field(default_factory=list)  # noqa: N815


class CreateApiKeyRequest(BaseModel):
    model_config = _REQUEST
    name: str | None = Field(default=None, description="A label to recognise the key by")


class CreateApiKeyResponse(GenericApiResponse):
    id: int
    name: str
    prefix: str
    apiKey: str = Field(description="The key itself; shown only in this response")  # noqa: N815

"""Request and response bodies, named and shaped exactly as the Edge Impulse schemas."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from relatch.core import identity, passwords, text
from relatch.services.api_keys import NAME_MAX

# Requests are strict (a number where a string belongs is a 400, not coerced) and
# ignore fields Relatch has no use for (the official clients send them).
_REQUEST = ConfigDict(strict=True, extra="ignore")


def _iso_millis(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _line(value: str) -> str:
    if not text.is_line(value):
        # The message completes "Field 'x' must be ..." (http/errors.py); no input in it.
        raise PydanticCustomError("text_line", text.LINE_RULE)
    return value


def _secret(value: str) -> str:
    if not text.is_secret(value):
        raise PydanticCustomError("text_secret", text.SECRET_RULE)
    return value


# Every string a request carries is bounded and checked here, before any store or hash
# sees it (core/text.py names the threats: 500s on NUL and lone surrogates, mail and
# terminal injection through line breaks and control characters). The length is checked
# first, so no check ever scans more than the maximum.
#: An address, username, or either (login): the address column is the widest.
Login = Annotated[str, StringConstraints(max_length=identity.MAX_EMAIL), AfterValidator(_line)]
Username = Annotated[
    str, StringConstraints(max_length=identity.MAX_USERNAME), AfterValidator(_line)
]
#: Display text stored on the account (name, job title, company): its columns hold 256.
Label = Annotated[str, StringConstraints(max_length=256), AfterValidator(_line)]
#: Above the service's own limit (a handled 200 saying so), as for passwords below.
KeyName = Annotated[str, StringConstraints(max_length=2 * NAME_MAX), AfterValidator(_line)]
#: An IANA time zone name (services/profile.py checks it is one zoneinfo knows).
TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_line)]
#: Codes, TOTP tokens and keys, and the opaque values Relatch ignores (sessionId...).
Token = Annotated[str, StringConstraints(max_length=256), AfterValidator(_line)]
#: Any printable text (NIST SP 800-63B 5.1.1.2), bounded above the policy's maximum so that
#: its clearer "too long" reason still answers up to twice that length.
Password = Annotated[
    str, StringConstraints(max_length=2 * passwords.MAX_LENGTH), AfterValidator(_secret)
]


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
    email: Login
    code: Token
    newPassword: Password  # noqa: N815 (Edge Impulse field name)


class RequestResetPasswordRequest(BaseModel):
    model_config = _REQUEST
    email: Login


class VerifyResetPasswordRequest(BaseModel):
    model_config = _REQUEST
    email: Login
    code: Token


class GetJWTRequest(BaseModel):
    model_config = _REQUEST
    username: Login = Field(description="Username or e-mail address")
    password: Password = Field(description="Password")
    uuid: Token | None = None
    ssoType: Literal["browser", "cli"] | None = None  # noqa: N815
    sessionId: Token | None = None  # noqa: N815
    totpToken: Token | None = None  # noqa: N815


class GetJWTResponse(GenericApiResponse):
    token: str | None = Field(default=None, description="JWT token")
    redirectUrl: str | None = None  # noqa: N815


class CreateUserRequest(BaseModel):
    model_config = _REQUEST
    name: Label
    username: Username
    email: Login
    privacyPolicy: bool  # noqa: N815
    password: Password | None = None
    projectName: Label | None = None  # noqa: N815
    activationToken: Token | None = None  # noqa: N815
    identityProvider: Token | None = None  # noqa: N815
    jobTitle: Label | None = None  # noqa: N815
    sessionId: Token | None = None  # noqa: N815
    companyName: Label | None = None  # noqa: N815
    utmParams: list[dict[str, Any]] | None = None  # noqa: N815
    ignoreEmailValidation: bool | None = None  # noqa: N815


class CreateUserResponse(GenericApiResponse):
    redirectUrl: str | None = None  # noqa: N815
    id: int | None = Field(default=None, description="User unique identifier")


class ChangePasswordRequest(BaseModel):
    model_config = _REQUEST
    currentPassword: Password  # noqa: N815
    newPassword: Password  # noqa: N815


class ActivateUserOrVerifyEmailRequest(BaseModel):
    model_config = _REQUEST
    code: Token = Field(description="Activation or verification code (sent via email)")


class DeleteUserRequest(BaseModel):
    """deleteCurrentUser / deleteUser: the caller's current password, and their TOTP token
    when they have one (services/deletion.py)."""

    model_config = _REQUEST
    password: Password | None = Field(
        default=None,
        description="User's current password. Required if the user has a password set.",
    )
    totpToken: Token | None = Field(  # noqa: N815
        default=None,
        description="TOTP Token. Required if a user has multi-factor authentication with a "
        "TOTP token enabled. If a user has MFA enabled, but no totpToken is submitted; then an "
        'error starting with "ERR_TOTP_TOKEN IS REQUIRED" is returned. Use this to then prompt '
        "for an MFA token and re-try this request.",
    )


class StaffInfo(BaseModel):
    isStaff: bool  # noqa: N815
    hasSudoRights: bool  # noqa: N815


class LastAccessedProjects(BaseModel):
    projects: list[dict[str, Any]]
    hasMoreProjects: bool  # noqa: N815


class UserProjectsSortOrder(enum.StrEnum):
    """Named as in the Edge Impulse document (a schema of its own, referenced by the request
    and the response)."""

    created_asc = "created-asc"
    created_desc = "created-desc"
    added_asc = "added-asc"
    added_desc = "added-desc"
    name_asc = "name-asc"
    name_desc = "name-desc"
    last_accessed_desc = "last-accessed-desc"


class UpdateUserRequest(BaseModel):
    """Only fields set in this object will be updated (services/profile.py)."""

    model_config = _REQUEST
    name: Label | None = Field(default=None, description="New full name")
    jobTitle: Label | None = Field(default=None, description="New job title")  # noqa: N815
    companyName: Label | None = Field(  # noqa: N815
        default=None, description="New company name"
    )
    # Relatch has no experiments: accepted (the clients may send them) and ignored.
    experiments: Annotated[list[Token], Field(max_length=64)] | None = Field(
        default=None, description="List of user experiments"
    )
    # Not strict: a JSON string is the enum's value (strict mode wants an Enum instance).
    projectsSortOrder: UserProjectsSortOrder | None = Field(  # noqa: N815
        default=None, description="Default sort order on the projects list", strict=False
    )
    timezone: TimeZone | None = Field(default=None, description="User timezone.")


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
    # In the official clients' GetUserResponse (not in the subset spec); shown to staff only.
    suspensionReason: str | None = None  # noqa: N815
    notifications: list[str]
    passwordConfigured: bool  # noqa: N815
    projectsSortOrder: UserProjectsSortOrder  # noqa: N815
    hasEnterpriseFeaturesAccess: bool  # noqa: N815
    timezone: str | None = None
    lastAccessedProjects: LastAccessedProjects  # noqa: N815
    privatePersonalProjectsUsed: int  # noqa: N815


# TOTP second factor (Edge Impulse operations userGenerateNewTotpMfaKey, userSetTotpMfaKey,
# userDeleteTotpMfaKey).
class UserGenerateNewMfaKeyResponse(GenericApiResponse):
    key: str = Field(description="Secret key (use SHA-1).")
    url: str = Field(description="URL that will be converted into a QR code that can be scanned.")


class UserSetTotpMfaKeyRequest(BaseModel):
    model_config = _REQUEST
    key: Token = Field(description="Secret key obtained through `userGenerateNewMfaKey`.")
    totpToken: Token = Field(  # noqa: N815
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
    totpToken: Token = Field(description="Valid TOTP token")  # noqa: N815


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
    name: KeyName | None = Field(default=None, description="A label to recognise the key by")


class CreateApiKeyResponse(GenericApiResponse):
    id: int
    name: str
    prefix: str
    apiKey: str = Field(description="The key itself; shown only in this response")  # noqa: N815

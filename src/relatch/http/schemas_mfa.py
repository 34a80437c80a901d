"""Bodies of Relatch's own second-factor operations (issue 14; not Edge Impulse's)."""

from __future__ import annotations

from pydantic import Field

from relatch.http.schemas import EiDateTime, GenericApiResponse


class RecoveryCodesResponse(GenericApiResponse):
    recoveryCodes: list[str] = Field(  # noqa: N815 (Edge Impulse style)
        default_factory=list,
        description="The 10 new recovery codes, shown this once; every older one is dead",
    )


class MfaStatusResponse(GenericApiResponse):
    totpEnabled: bool = Field(description="Whether TOTP two-factor sign-in is on")  # noqa: N815
    recoveryCodesLeft: int = Field(  # noqa: N815
        description="Unused recovery codes (0 without TOTP)"
    )
    removalDue: EiDateTime | None = Field(  # noqa: N815
        default=None,
        description="When an operator's pending removal of the second factor takes effect "
        "(absent if none is pending); signing in with the factor cancels it",
    )

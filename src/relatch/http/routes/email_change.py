"""Change the signed-in account's address (issue 14; Relatch's own operations, tag
"Address"): `POST /v1/api/user/change-email` mails a code to the new address, and
`POST /v1/api/user/change-email/confirm` enters it (services/email_change.py).

Both need a recent sign-in through a session JWT (`recent_session`), as changing the
password needs a session JWT, and that sign-in must have passed the second factor when one
is set (services/email_change.py): the address is where reset codes go, so whoever moves
it takes the account for good. A stolen old session, an API key or a third party's OAuth
token is refused with 401 (auth/dependencies.py says why).
"""

from __future__ import annotations

from anyio.to_thread import run_sync
from fastapi import Depends, Request

from relatch.auth.dependencies import SessionCaller, recent_session
from relatch.auth.request import request_meta, services
from relatch.http.openapi import operations
from relatch.http.schemas import GenericApiResponse
from relatch.http.schemas_sessions import ChangeEmailRequest, ConfirmEmailChangeRequest
from relatch.services import email_change

router = operations(["Address"], recent_sign_in=True)


@router.post(
    "/api/user/change-email",
    operation_id="changeEmailCurrentUser",
    summary="Change my address",
    description=(
        "Ask to move the current user to a new e-mail address: a code is mailed to it, and "
        "nothing changes until it is entered (change-email/confirm). The answer is success "
        "whether or not the address is free. Needs a recent sign-in through a session JWT."
    ),
)
async def change_email(
    body: ChangeEmailRequest,
    request: Request,
    caller: SessionCaller = Depends(recent_session),  # noqa: B008
) -> GenericApiResponse:
    svc, meta = services(request), request_meta(request)
    await run_sync(email_change.request, svc, caller.user, caller.session, body.newEmail, meta)
    return GenericApiResponse(success=True)


@router.post(
    "/api/user/change-email/confirm",
    operation_id="confirmEmailChangeCurrentUser",
    summary="Confirm my new address",
    description=(
        "Enter the code mailed to the new address: the account moves to it, and the old "
        "address gets a notice with a link that puts it back (valid 7 days). Needs a "
        "recent sign-in through a session JWT."
    ),
)
async def confirm_email_change(
    body: ConfirmEmailChangeRequest,
    request: Request,
    caller: SessionCaller = Depends(recent_session),  # noqa: B008
) -> GenericApiResponse:
    svc, meta = services(request), request_meta(request)
    await run_sync(email_change.confirm, svc, caller.user, caller.session, body.code, meta)
    return GenericApiResponse(success=True)

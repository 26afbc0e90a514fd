"""Who may do what (SPEC §5): bearer tokens bound to one org and one role.

Order of checks, so that nothing about another org can be learned:

1. no token, or a token that is not in the file        -> 401
2. an ``{org_id}`` in the path that is not the token's -> 404, the same answer as for a contact
   that does not exist (never 403: a 403 would confirm that the org exists)
3. a write by the ``agent`` role                       -> 403
4. bad input                                           -> 422
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from read_api.state import AppState, app_state
from read_api.tokens import Principal

NOT_FOUND = "not found: no such contact, list or segment in your organization"

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A token from `engagement-monitor token create --org ORG --role ROLE`.",
)


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


async def current_principal(
    state: Annotated[AppState, Depends(app_state)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or not credentials.credentials:
        state.metrics.auth_failures.labels("missing").inc()
        raise unauthorized("missing token: send the header 'Authorization: Bearer <token>'")
    principal = state.tokens.authenticate(credentials.credentials)
    if principal is None:
        state.metrics.auth_failures.labels("unknown_token").inc()
        raise unauthorized(
            "unknown token: check it, or create one with "
            "`engagement-monitor token create --org ORG --role ROLE`"
        )
    return principal


async def org_reader(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> Principal:
    """Any role may read, but only its own org. The path's org is read raw (not validated as a
    parameter), so a malformed org id of another org is a 404 like any other, not a 422."""
    if request.path_params.get("org_id") != principal.org_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NOT_FOUND)
    return principal


async def org_writer(
    state: Annotated[AppState, Depends(app_state)],
    principal: Annotated[Principal, Depends(org_reader)],
) -> Principal:
    if not principal.may_write:
        state.metrics.auth_failures.labels("forbidden_role").inc()
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=(
                f"the {principal.role} role can only view contacts; editing, deleting, lists, "
                "unsubscribing and sending need an operator or admin token"
            ),
        )
    return principal


Reader = Annotated[Principal, Depends(org_reader)]
Writer = Annotated[Principal, Depends(org_writer)]
Caller = Annotated[Principal, Depends(current_principal)]

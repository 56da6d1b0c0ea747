"""The console's surface of `core.console`'s rule: every page goes through `read` or `change`.

- Not signed in, not an operator, or disabled: the generic 403 page, as for any page one may not see.
- An operator on an aal1 session: 403, with the way to step up (or to add a second factor).
- A change (POST): the same-origin and CSRF checks first, then a second factor or passkey proved within
  the re-authentication window, else the step-up page, which comes back to `back`.

The operator is named in every audit event a change causes (`RequestContext.actor`, `console:<id>`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from threshold.core.console import ConsoleNeedsSecondFactor
from threshold.core.errors import Forbidden, InvalidRequest, ReauthenticationRequired, ThresholdError
from threshold.core.i18n import N_
from threshold.core.models import RequestContext, SessionRecord, User
from threshold.core.orgs.service import Actor
from threshold.services import Services
from threshold.web.deps import get_services, optional_session, request_context
from threshold.web.errors import headers_for, status_for
from threshold.web.pages.common import read_form, redirect
from threshold.web.pages.render import error_page, render

NO_ACCESS = N_("You don't have access to this page.")

DONE = {
    "disabled": N_("The account is disabled and every session and token of it has ended."),
    "enabled": N_("The account is enabled again."),
    "sessions_ended": N_("Every session and token of the account has ended."),
    "session_ended": N_("The session has ended."),
    "mfa_required": N_("The account must now have a second factor."),
    "mfa_optional": N_("The account no longer has to have a second factor."),
    "recovery_started": N_("Recovery started: the account's factors are reset after the waiting period."),
    "recovery_cancelled": N_("The pending recovery is cancelled."),
    "client_updated": N_("The client is saved."),
    "client_deleted": N_("The client is deleted and its tokens revoked."),
    "keys_rotated": N_("The signing keys are rotated."),
    "keys_unchanged": N_("Another process rotated the keys first; nothing changed."),
    "org_created": N_("The organization is created."),
    "domain_added": N_("The domain is claimed: publish the TXT record below, then verify it."),
    "domain_verified": N_("The domain is verified."),
    "connection_removed": N_("The connection is removed."),
    "scim_token_revoked": "The SCIM token is revoked.",
}
"""The notices a change redirects with (`?done=<key>`): fixed texts, never from the request."""


@dataclass(frozen=True, slots=True)
class Operator:
    """An operator admitted to the console, and what their changes carry into the audit trail."""

    user: User
    session: SessionRecord
    context: RequestContext

    @property
    def actor(self) -> Actor:
        """Operator-level for organizations (no organization role), named in their audit events."""
        return Actor(f"console:{self.user.id}")


async def admitted(request: Request) -> Operator | Response:
    """The operator, or the refusal page (the rule of core.console)."""
    return await _admitted(request, get_services(request))


async def _admitted(request: Request, services: Services) -> Operator | Response:
    auth = await optional_session(request)
    if auth is None:
        return await error_page(request, 403, NO_ACCESS)
    try:
        await services.console.admit(auth.user, auth.session)
    except ConsoleNeedsSecondFactor as refused:
        return await render(
            request,
            "console/aal2_required.html",
            status=403,
            message=refused.page_detail,
            can_step_up=await services.stepup.has_second_factor(auth.user),
            next=request.url.path,
        )
    except Forbidden:
        return await error_page(request, 403, NO_ACCESS)
    context = request_context(request)
    return Operator(
        user=auth.user,
        session=auth.session,
        context=RequestContext(
            ip=context.ip,
            user_agent=context.user_agent,
            device=context.device,
            actor=f"console:{auth.user.id}",
        ),
    )


async def page(
    request: Request, template: str, operator: Operator, *, section: str, **context: Any
) -> Response:
    """A console page: `section` marks its place in the navigation; the notice of the change that led
    here, if any, is shown."""
    done = request.query_params.get("done")
    return await render(
        request, template, operator=operator.user, notice=DONE.get(done or ""), section=section, **context
    )


def check_text(values: Iterable[str]) -> None:
    """Raises InvalidRequest for a NUL anywhere: never stored, and PostgreSQL refuses it in text."""
    if any("\x00" in value for value in values):
        raise InvalidRequest(N_("The request holds a character that is not allowed."))


def _check_request(request: Request) -> None:
    check_text([request.url.path, *request.query_params.values()])


async def read(request: Request, work: Callable[[Operator], Awaitable[Response]]) -> Response:
    """A page that reads: admitted operators only."""
    services = get_services(request)
    admitted = await _admitted(request, services)
    if isinstance(admitted, Response):
        return admitted
    try:
        _check_request(request)
        return await work(admitted)
    except ReauthenticationRequired:
        return step_up(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    except ThresholdError as error:
        return await error_page(request, status_for(error), error.page_detail, headers=headers_for(error))


def step_up(back: str) -> Response:
    """To the step-up page (a second factor or passkey), and back to `back` afterwards."""
    return redirect("/reauthenticate?" + urlencode({"next": back, "factor": "1"}))


async def fresh(request: Request, operator: Operator) -> None:
    """Raises ReauthenticationRequired unless the operator stepped up within the window."""
    await get_services(request).console.require_fresh(operator.user, operator.session)


Change = Callable[[Operator, FormData], Awaitable[Response]]


async def change(
    request: Request,
    work: Change,
    *,
    back: str,
    on_error: Callable[[Operator, ThresholdError], Awaitable[Response]] | None = None,
) -> Response:
    """A form's POST: admitted operators only, the CSRF check, a recent second factor, then `work`.
    Its errors show on `on_error`'s page (the form again), or on the error page."""
    services = get_services(request)
    admitted = await _admitted(request, services)
    if isinstance(admitted, Response):
        return admitted
    try:
        _check_request(request)
        form = await read_form(request)
        check_text(value for value in form.values() if isinstance(value, str))
    except ThresholdError as error:  # before the work: its error page would read with the same input
        return await error_page(request, status_for(error), error.page_detail, headers=headers_for(error))
    try:
        await fresh(request, admitted)
        return await work(admitted, form)
    except ReauthenticationRequired:
        return step_up(back)
    except ThresholdError as error:
        if on_error is not None and not isinstance(error, Forbidden):
            return await on_error(admitted, error)
        return await error_page(request, status_for(error), error.page_detail, headers=headers_for(error))


def done(target: str, what: str, params: Mapping[str, str] | None = None) -> Response:
    """After a change: back to `target` with the notice `what` (a key of DONE)."""
    assert what in DONE
    query = urlencode({**(params or {}), "done": what})
    return redirect(f"{target}?{query}")

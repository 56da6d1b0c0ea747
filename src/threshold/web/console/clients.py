"""The console's OAuth clients (register, edit, rotate the secret, delete) and signing keys (rotate).

Every change goes through the same registration rules as the CLI and the admin API
(`oidc.registration`); a secret is shown once, on the page that answers the change, never again.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from threshold.core.errors import NotFound, ThresholdError
from threshold.core.i18n import N_
from threshold.oidc.errors import InvalidRequest
from threshold.oidc.models import client_summary, key_summary
from threshold.oidc.registration import IssuedClient
from threshold.web.console.access import Operator, change, done, page, read
from threshold.web.deps import get_services
from threshold.web.errors import status_for
from threshold.web.pages.common import field

router = APIRouter(prefix="/admin", include_in_schema=False)

MAX_URIS = 20
NO_STORE = {"Cache-Control": "no-store"}


def uris(form: FormData, name: str) -> list[str]:
    """A textarea of URIs, one per line (blank lines ignored)."""
    found = [line.strip() for line in field(form, name).splitlines() if line.strip()]
    if len(found) > MAX_URIS:
        raise InvalidRequest(f"At most {MAX_URIS} URIs.")
    return found


async def _secret_page(
    request: Request, operator: Operator, issued: IssuedClient, *, created: bool
) -> Response:
    """The page that shows a client's secret, once (never stored by the browser)."""
    return await page(
        request,
        "console/client_secret.html",
        operator,
        section="clients",
        client=client_summary(issued.client),
        secret=issued.secret,
        created=created,
        headers=NO_STORE,
    )


@router.get("/clients")
async def clients(request: Request) -> Response:
    async def work(operator: Operator) -> Response:
        listed = await get_services(request).provider.list_clients()
        return await page(
            request,
            "console/clients.html",
            operator,
            section="clients",
            clients=[client_summary(c) for c in sorted(listed, key=lambda c: c.name.casefold())],
        )

    return await read(request, work)


@router.post("/clients")
async def create_client(request: Request) -> Response:
    async def work(operator: Operator, form: FormData) -> Response:
        public = field(form, "kind") == "public"
        try:
            issued = await get_services(request).provider.create_client(
                name=field(form, "name").strip(),
                redirect_uris=uris(form, "redirect_uris"),
                post_logout_redirect_uris=uris(form, "post_logout_redirect_uris"),
                public=public,
                first_party=field(form, "first_party") == "on",
                backchannel_logout_uri=field(form, "backchannel_logout_uri").strip() or None,
                deletion_event_uri=field(form, "deletion_event_uri").strip() or None,
                context=operator.context,
            )
        except ValueError as error:
            raise InvalidRequest(str(error)) from None
        return await _secret_page(request, operator, issued, created=True)

    async def on_error(operator: Operator, error: ThresholdError) -> Response:
        listed = await get_services(request).provider.list_clients()
        return await page(
            request,
            "console/clients.html",
            operator,
            section="clients",
            clients=[client_summary(c) for c in listed],
            error=error.page_detail,
            status=status_for(error),
        )

    return await change(request, work, back="/admin/clients", on_error=on_error)


async def _client_page(request: Request, operator: Operator, client_id: str, **extra: Any) -> Response:
    client = await get_services(request).provider.get_client(client_id[:64])
    if client is None:
        raise NotFound(N_("No such client."))
    summary = client_summary(client)
    return await page(
        request,
        "console/client.html",
        operator,
        section="clients",
        client=summary,
        redirect_text="\n".join(summary["redirect_uris"]),
        post_logout_text="\n".join(summary["post_logout_redirect_uris"]),
        **extra,
    )


@router.get("/clients/{client_id}")
async def client_detail(request: Request, client_id: str) -> Response:
    async def work(operator: Operator) -> Response:
        return await _client_page(request, operator, client_id)

    return await read(request, work)


@router.post("/clients/{client_id}")
async def update_client(request: Request, client_id: str) -> Response:
    target = f"/admin/clients/{client_id[:64]}"

    async def work(operator: Operator, form: FormData) -> Response:
        updated = await get_services(request).provider.update_client(
            client_id[:64],
            name=field(form, "name").strip() or None,
            redirect_uris=uris(form, "redirect_uris"),
            post_logout_redirect_uris=uris(form, "post_logout_redirect_uris"),
            first_party=field(form, "first_party") == "on",
            backchannel_logout_uri=field(form, "backchannel_logout_uri").strip(),
            deletion_event_uri=field(form, "deletion_event_uri").strip(),
            context=operator.context,
        )
        if updated is None:
            raise NotFound(N_("No such client."))
        return done(target, "client_updated")

    async def on_error(operator: Operator, error: ThresholdError) -> Response:
        return await _client_page(
            request, operator, client_id, error=error.page_detail, status=status_for(error)
        )

    return await change(request, work, back=target, on_error=on_error)


@router.post("/clients/{client_id}/secret")
async def rotate_secret(request: Request, client_id: str) -> Response:
    async def work(operator: Operator, form: FormData) -> Response:
        rotated = await get_services(request).provider.update_client(
            client_id[:64], rotate_secret=True, context=operator.context
        )
        if rotated is None:
            raise NotFound(N_("No such client."))
        if rotated.secret is None:
            raise InvalidRequest(N_("A public client has no secret."))
        return await _secret_page(request, operator, rotated, created=False)

    return await change(request, work, back=f"/admin/clients/{client_id[:64]}")


@router.post("/clients/{client_id}/delete")
async def delete_client(request: Request, client_id: str) -> Response:
    async def work(operator: Operator, form: FormData) -> Response:
        if not await get_services(request).provider.delete_client(client_id[:64], context=operator.context):
            raise NotFound(N_("No such client."))
        return done("/admin/clients", "client_deleted")

    return await change(request, work, back=f"/admin/clients/{client_id[:64]}")


@router.get("/keys")
async def keys(request: Request) -> Response:
    async def work(operator: Operator) -> Response:
        ring = await get_services(request).provider.keys.keys()
        return await page(
            request,
            "console/keys.html",
            operator,
            section="keys",
            keys=[key_summary(k) for k in ring],
        )

    return await read(request, work)


@router.post("/keys/rotate")
async def rotate_keys(request: Request) -> Response:
    async def work(operator: Operator, form: FormData) -> Response:
        promoted = await get_services(request).provider.rotate_keys(context=operator.context)
        return done("/admin/keys", "keys_rotated" if promoted else "keys_unchanged")

    return await change(request, work, back="/admin/keys")

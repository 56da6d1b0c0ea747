"""The operators' console at /admin/: server-rendered pages on the hosted pages' session machinery
(`access` holds who gets in; the other modules are its sections)."""

from fastapi import APIRouter
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from threshold.core.i18n import N_
from threshold.web.console import audit, clients, orgs, users
from threshold.web.console.access import admitted
from threshold.web.pages.render import error_page

router = APIRouter()
for section in (users, clients, orgs, audit):
    router.include_router(section.router)

EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@router.api_route("/admin/{rest:path}", methods=EVERY_METHOD, include_in_schema=False)
async def elsewhere(request: Request, rest: str) -> Response:
    """Any other path or method under /admin/: the refusal first, so a stranger learns nothing of which
    paths exist; an operator is told it is not there. The JSON API (/admin/v1) keeps its own answers."""
    if rest == "v1" or rest.startswith("v1/"):
        raise HTTPException(404)
    refused = await admitted(request)
    if isinstance(refused, Response):
        return refused
    return await error_page(request, 404, N_("There is no such page in the console."))


__all__ = ["router"]

"""The operators' console at /admin/: server-rendered pages on the hosted pages' session machinery
(`access` holds who gets in; the other modules are its sections)."""

from fastapi import APIRouter

from threshold.web.console import audit, clients, orgs, users

router = APIRouter()
for section in (users, clients, orgs, audit):
    router.include_router(section.router)

__all__ = ["router"]

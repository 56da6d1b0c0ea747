"""A person's own data, as one JSON document (GET /api/v1/account/export, the account page's button).

Everything Threshold keeps about the person that is theirs to see: the profile, each way of signing
in (what it is and when it was used, never the secret: no password hash, TOTP seed, recovery-code or
session digest, passkey key or credential id), the live sessions, the browsers and networks it
recognises, the applications they allowed and the organizations they belong to, linked identity
providers, pending recoveries, and their audit events. It is read under the account's strongest
recent proof (core.flows.stepup), counted against a daily budget (core.ratelimit) and audited.

It composes the core services and the OIDC provider's consents, so it sits beside the composition
root rather than in either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from threshold.core.audit import Auditor
from threshold.core.clock import Clock, iso
from threshold.core.flows.recovery import Recovery
from threshold.core.flows.stepup import StepUp
from threshold.core.models import AuditKind, RequestContext, SessionRecord, User
from threshold.core.orgs.service import Organizations
from threshold.core.ports import FactorRepo, UserRepo
from threshold.core.ratelimit import LoginThrottle
from threshold.core.sessions import SessionService
from threshold.core.sso.ports import ConnectionRepo
from threshold.oidc.models import Client, Consent

FORMAT = "threshold.account-export/1"
ListConsents = Callable[[User], Awaitable[Sequence[tuple[Consent, Client | None]]]]
MAX_AUDIT_EVENTS = 10_000
"""The newest events go in; an account with more says so (`audit_events_truncated`)."""


def _when(at: float | None) -> str | None:
    return iso(at) if at is not None else None


class AccountExport:
    def __init__(
        self,
        *,
        users: UserRepo,
        factors: FactorRepo,
        sessions: SessionService,
        consents: ListConsents,
        orgs: Organizations,
        connections: ConnectionRepo,
        recovery: Recovery,
        stepup: StepUp,
        throttle: LoginThrottle,
        auditor: Auditor,
        clock: Clock,
    ) -> None:
        self._users = users
        self._factors = factors
        self._sessions = sessions
        self._consents = consents
        self._orgs = orgs
        self._connections = connections
        self._recovery = recovery
        self._stepup = stepup
        self._throttle = throttle
        self._audit = auditor
        self._clock = clock

    async def export(self, user: User, session: SessionRecord, *, context: RequestContext) -> dict[str, Any]:
        """The document; audited.

        Raises:
            ReauthenticationRequired: no recent enough proof with the account's strongest factor.
            RateLimited: past the day's downloads (Settings `rate_limit.export_per_day`).
        """
        await self._stepup.require_strongest(user, session)
        await self._throttle.check_export(user_id=user.id)
        document = await self._document(user, session)
        await self._audit.record(AuditKind.ACCOUNT_EXPORTED, user_id=user.id, context=context)
        return document

    async def _document(self, user: User, current: SessionRecord) -> dict[str, Any]:
        events = await self._audit.events_for(user.id, limit=MAX_AUDIT_EVENTS + 1)
        return {
            "format": FORMAT,
            "generated_at": iso(self._clock.now()),
            "profile": {
                "id": user.id,
                "email": user.email,
                "email_verified": user.email_verified,
                "created_at": iso(user.created_at),
                "disabled": user.disabled,
                "second_factor_required": user.mfa_required,
            },
            "sign_in_methods": await self._methods(user),
            "sessions": [self._session(s, current) for s in await self._sessions.list_sessions(user.id)],
            "recognised_browsers_and_networks": await self._sightings(user),
            "applications": await self._applications(user),
            "organizations": [
                {
                    "id": org.id,
                    "slug": org.slug,
                    "name": org.name,
                    "role": membership.role.value,
                    "member_since": iso(membership.created_at),
                }
                for membership, org in await self._orgs.memberships_with_orgs(user)
            ],
            "pending_recoveries": [
                {
                    "id": r.id,
                    "requested_by": r.requested_by,
                    "requested_at": iso(r.requested_at),
                    "factors_reset_at": iso(r.execute_after),
                }
                for r in await self._recovery.pending_recovery(user)
            ],
            "audit_events": [
                {
                    "at": iso(e.at),
                    "kind": e.kind.value,
                    "ip": e.ip,
                    "user_agent": e.user_agent,
                    "detail": dict(e.detail),
                }
                for e in events[:MAX_AUDIT_EVENTS]
            ],
            "audit_events_truncated": len(events) > MAX_AUDIT_EVENTS,
        }

    async def _methods(self, user: User) -> dict[str, Any]:
        password = await self._users.get_password(user.id)
        totp = await self._factors.get_totp(user.id)
        passkeys = await self._factors.list_passkeys(user.id)
        return {
            "password": {
                "set": password is not None,
                "changed_at": _when(password.updated_at if password else None),
            },
            "passkeys": [
                {
                    "id": p.id,
                    "name": p.name,
                    "created_at": iso(p.created_at),
                    "last_used_at": _when(p.last_used_at),
                    "authenticator_model": p.aaguid,
                    "synced": p.backup_eligible,
                    "transports": list(p.transports),
                }
                for p in passkeys
            ],
            "authenticator_app": (
                {"confirmed": totp.confirmed, "created_at": iso(totp.created_at)}
                if totp is not None
                else None
            ),
            "recovery_codes_left": await self._factors.count_recovery_codes(user.id),
            "identity_providers": [
                {
                    "connection": link.connection_id,
                    "subject": link.subject,
                    "email": link.email,
                    "linked_at": iso(link.created_at),
                    "last_used_at": iso(link.last_seen_at),
                }
                for link in await self._connections.links_of(user.id)
            ],
        }

    @staticmethod
    def _session(record: SessionRecord, current: SessionRecord) -> dict[str, Any]:
        return {
            "id": record.public_id,
            "current": record.public_id == current.public_id,
            "device": record.device_label,
            "ip": record.ip,
            "user_agent": record.user_agent,
            "created_at": iso(record.created_at),
            "last_seen_at": iso(record.last_seen_at),
            "signed_in_at": iso(record.auth_time),
            "assurance": record.aal.value,
            "methods": [m.value for m in record.amr],
            "organization": record.org_id,
            "expires_at": iso(min(record.idle_expires_at, record.absolute_expires_at)),
        }

    async def _sightings(self, user: User) -> dict[str, Any]:
        seen = await self._users.sightings(user.id)
        return {
            "browsers": [
                {"first_seen_at": iso(first), "last_seen_at": iso(last)} for first, last in seen.devices
            ],
            "networks": [{"network": network, "last_sign_in_at": iso(at)} for network, at in seen.networks],
        }

    async def _applications(self, user: User) -> Sequence[dict[str, Any]]:
        return [
            {
                "client_id": consent.client_id,
                "name": client.name if client else None,
                "scopes": sorted(consent.scopes),
                "allowed_at": iso(consent.granted_at),
            }
            for consent, client in await self._consents(user)
        ]

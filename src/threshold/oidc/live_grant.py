"""The one check that a grant still stands: for every grant the token endpoint makes or extends, and
for every access token introspection, userinfo or the admin API is shown.

A token is worth no more than what it rests on. RFC 7009 section 2.1: revoking a refresh token SHOULD
invalidate "all access tokens based on the same authorization grant"; RFC 7662 section 2.2: `active`
is false for a token that "has been revoked ... or otherwise invalidated"; RFC 9700 section 4.14.2:
reuse of a refresh token revokes the grant. So a user's grant stands only while it is unrevoked, its
session live, its user enabled and its client registered, and, when it was issued for an organization
(the `organization` scope, oidc.organization), while its user is still a member there; a client's own
grant (client_credentials) only while the client is registered.

Every input is read from a store shared by all processes (the grant, by primary key) or from a
per-process cache that the invalidation feed keeps exact on every process (the session and its user:
core.session_cache; the client: oidc.client_cache). A grant ended on any process is therefore refused
on every process at once, at O(1) per check: one grant read, one session lookup, one client lookup,
and for a grant issued for an organization the membership, read from the shared store (a removed member's
tokens for that organization fail at once, on every process, whoever removed them and however).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from threshold.core.clock import Clock
from threshold.core.models import SessionRecord, User
from threshold.core.ports import SessionStore, UserRepo
from threshold.oidc.models import Client
from threshold.oidc.organization import Memberships, SelectedOrganization
from threshold.oidc.ports import ClientRepo, RefreshTokenRepo
from threshold.oidc.tokens import GRANT_CLAIM

SessionLookup = Callable[[str], Awaitable[tuple[SessionRecord, User] | None]]
"""A live session by digest, with its enabled user (see core.session_cache.SessionCheck.lookup)."""

MAX_GRANT_ID = 64


def stored_sessions(*, sessions: SessionStore, users: UserRepo, clock: Clock) -> SessionLookup:
    """A SessionLookup that reads the stores on every call (for a provider built without a session cache)."""

    async def lookup(session_digest: str) -> tuple[SessionRecord, User] | None:
        record = await sessions.get(session_digest)
        if record is None or record.expires_at <= clock.now():
            return None
        user = await users.get(record.user_id)
        return (record, user) if user is not None and not user.disabled else None

    return lookup


@dataclass(frozen=True, slots=True)
class LiveGrant:
    """Proved just now: the client is registered and, for a user's grant, the grant is unrevoked, its
    session live and its user enabled (`session` and `user` are then set), and for a grant issued for
    an organization, its user a member there (`org`, with the role as it is now)."""

    client: Client
    session: SessionRecord | None = None
    user: User | None = None
    org: SelectedOrganization | None = None


class GrantCheck:
    def __init__(
        self,
        *,
        clients: ClientRepo,
        grants: RefreshTokenRepo,
        sessions: SessionLookup,
        memberships: Memberships | None = None,
    ) -> None:
        self._clients = clients
        self._grants = grants
        self._sessions = sessions
        self._memberships = memberships or Memberships()

    async def client_grant(self, client_id: str) -> LiveGrant | None:
        """A client's own grant (client_credentials): the client is still registered."""
        client = await self._clients.get(client_id)
        return LiveGrant(client) if client is not None else None

    async def user_grant(
        self,
        *,
        client_id: str,
        user_id: str,
        session_digest: str,
        revoked: bool = False,
        org_id: str | None = None,
    ) -> LiveGrant | None:
        """A user's grant (a code, a refresh token, or a stored grant): unrevoked, its client registered,
        its session live and the user's, its user enabled, and with `org_id` (a grant issued for an
        organization) its user a member of that organization.

        Returns:
            What was proved, or None when any of it no longer holds.
        """
        if revoked:
            return None
        client = await self.client_grant(client_id)
        if client is None:
            return None
        found = await self._sessions(session_digest)
        if found is None:
            return None
        session, user = found
        if session.user_id != user_id or user.id != user_id or user.disabled:
            return None
        org = None
        if org_id is not None:
            org = await self._memberships.membership(org_id=org_id, user_id=user_id)
            if org is None:  # the membership ended: so did everything issued for the organization
                return None
        return LiveGrant(client.client, session, user, org)

    async def access_token_grant(self, claims: Mapping[str, Any]) -> LiveGrant | None:
        """The grant an access token of ours was issued under, checked now.

        A user's token names its grant (`grant_id`); a token without one is a client's own and stands
        while its client does. A user's token that names no grant (or a grant of another user or
        client) is refused: it proves nothing about its session.
        """
        client_id, subject, grant_id = claims.get("client_id"), claims.get("sub"), claims.get(GRANT_CLAIM)
        if not isinstance(client_id, str) or not isinstance(subject, str):
            return None
        if grant_id is None:
            return await self.client_grant(client_id) if subject == client_id else None
        if not isinstance(grant_id, str) or not grant_id or len(grant_id) > MAX_GRANT_ID:
            return None
        grant = await self._grants.get_grant(grant_id)
        if grant is None or grant.client_id != client_id or grant.user_id != subject:
            return None
        return await self.user_grant(
            client_id=grant.client_id,
            user_id=grant.user_id,
            session_digest=grant.session_digest,
            revoked=grant.revoked_at is not None,
            org_id=grant.org_id,
        )

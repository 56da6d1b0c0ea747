"""oidc.live_grant.GrantCheck against in-memory stores: each thing a grant rests on, taken away alone."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from threshold.core.models import Aal, Amr, SessionRecord, User
from threshold.core.orgs.models import Membership, Organization, OrgRole
from threshold.oidc.live_grant import GrantCheck
from threshold.oidc.models import AuthMethod, Client, Grant, GrantType
from threshold.oidc.organization import Memberships, SelectedOrganization

USER = User(
    id="u1",
    email="a@example.com",
    email_normalized="a@example.com",
    email_verified=True,
    disabled=False,
    created_at=1.0,
)
SESSION = SessionRecord(
    digest="d" * 64,
    public_id="s1",
    user_id="u1",
    created_at=1.0,
    last_seen_at=1.0,
    idle_expires_at=1e12,
    absolute_expires_at=1e12,
    aal=Aal.AAL1,
    amr=(Amr.PASSWORD,),
    ip="192.0.2.1",
    user_agent="test",
    device_label="test",
)
CLIENT = Client(
    client_id="c1",
    name="RP",
    secret_digest=None,
    public=False,
    first_party=True,
    redirect_uris=("https://rp.example/cb",),
    post_logout_redirect_uris=(),
    grant_types=(GrantType.AUTHORIZATION_CODE,),
    scopes=("openid",),
    token_endpoint_auth_method=AuthMethod.CLIENT_SECRET_BASIC,
    jwks=None,
    access_token_lifetime=300,
    signing_alg="Ed25519",
    created_at=1.0,
)
GRANT = Grant(id="g1", client_id="c1", user_id="u1", session_digest="d" * 64, created_at=1.0, expires_at=1e12)


class Stores:
    def __init__(self) -> None:
        self.clients: dict[str, Client] = {"c1": CLIENT}
        self.grants: dict[str, Grant] = {"g1": GRANT}
        self.sessions: dict[str, tuple[SessionRecord, User]] = {SESSION.digest: (SESSION, USER)}

    async def get(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    async def get_grant(self, grant_id: str) -> Grant | None:
        return self.grants.get(grant_id)

    async def session(self, digest: str) -> tuple[SessionRecord, User] | None:
        return self.sessions.get(digest)

    def check(self) -> GrantCheck:
        return GrantCheck(clients=self, grants=self, sessions=self.session)  # type: ignore[arg-type]


USER_CLAIMS: dict[str, Any] = {"sub": "u1", "client_id": "c1", "grant_id": "g1"}


async def test_a_users_token_stands_on_its_grant_session_user_and_client() -> None:
    live = await Stores().check().access_token_grant(USER_CLAIMS)

    assert live is not None and live.client == CLIENT and live.session == SESSION and live.user == USER


@pytest.mark.parametrize(
    "take_away",
    ["grant revoked", "grant gone", "client deleted", "session ended", "user disabled", "session of another"],
)
async def test_a_users_token_falls_with_anything_it_rests_on(take_away: str) -> None:
    stores = Stores()
    if take_away == "grant revoked":
        stores.grants["g1"] = replace(GRANT, revoked_at=5.0)
    elif take_away == "grant gone":
        del stores.grants["g1"]
    elif take_away == "client deleted":
        del stores.clients["c1"]
    elif take_away == "session ended":
        del stores.sessions[SESSION.digest]
    elif take_away == "user disabled":
        stores.sessions[SESSION.digest] = (SESSION, replace(USER, disabled=True))
    else:
        other = replace(USER, id="u2")
        stores.sessions[SESSION.digest] = (replace(SESSION, user_id="u2"), other)

    assert await stores.check().access_token_grant(USER_CLAIMS) is None


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "u1", "client_id": "c1"},  # a user's token naming no grant proves nothing
        {"sub": "u2", "client_id": "c1", "grant_id": "g1"},  # the grant of another user
        {"sub": "u1", "client_id": "c2", "grant_id": "g1"},  # the grant of another client
        {"sub": "u1", "client_id": "c1", "grant_id": 7},
        {"sub": "u1", "client_id": "c1", "grant_id": ""},
        {"sub": "u1", "client_id": "c1", "grant_id": "g" * 65},
        {"sub": None, "client_id": "c1", "grant_id": "g1"},
        {"sub": "u1", "grant_id": "g1"},
    ],
)
async def test_claims_that_do_not_name_their_own_grant_are_refused(claims: dict[str, Any]) -> None:
    assert (
        await Stores().check().access_token_grant({k: v for k, v in claims.items() if v is not None}) is None
    )


async def test_a_clients_own_token_stands_while_the_client_does() -> None:
    stores = Stores()
    claims = {"sub": "c1", "client_id": "c1"}
    assert await stores.check().access_token_grant(claims) is not None

    del stores.clients["c1"]

    assert await stores.check().access_token_grant(claims) is None


async def test_a_grant_being_made_is_checked_the_same_way() -> None:
    check = Stores().check()

    assert await check.user_grant(client_id="c1", user_id="u1", session_digest="d" * 64) is not None
    assert await check.user_grant(client_id="c1", user_id="u1", session_digest="d" * 64, revoked=True) is None
    assert await check.user_grant(client_id="c1", user_id="u2", session_digest="d" * 64) is None
    assert await check.user_grant(client_id="c9", user_id="u1", session_digest="d" * 64) is None


class OrgStore:
    """The two reads of core.orgs.ports.OrgRepo that oidc.organization.Memberships makes."""

    def __init__(self) -> None:
        self.orgs = {"o1": Organization(id="o1", slug="acme", name="Acme", created_at=1.0)}
        self.members = {("o1", "u1"): OrgRole.ADMIN}

    async def get(self, org_id: str) -> Organization | None:
        return self.orgs.get(org_id)

    async def memberships_of(self, user_id: str) -> list[Membership]:
        return [Membership(o, u, role, 1.0) for (o, u), role in self.members.items() if u == user_id]


def org_check(stores: Stores, orgs: OrgStore | None) -> GrantCheck:
    memberships = Memberships(orgs)  # type: ignore[arg-type]
    return GrantCheck(clients=stores, grants=stores, sessions=stores.session, memberships=memberships)  # type: ignore[arg-type]


async def test_a_grant_for_an_organization_stands_while_its_user_is_a_member_with_the_role_now() -> None:
    stores, orgs = Stores(), OrgStore()
    stores.grants["g1"] = replace(GRANT, org_id="o1")

    live = await org_check(stores, orgs).access_token_grant(USER_CLAIMS)
    assert live is not None and live.org == SelectedOrganization("o1", "acme", OrgRole.ADMIN)

    orgs.members[("o1", "u1")] = OrgRole.MEMBER
    live = await org_check(stores, orgs).access_token_grant(USER_CLAIMS)
    assert live is not None and live.org is not None and live.org.role is OrgRole.MEMBER

    del orgs.members[("o1", "u1")]
    assert await org_check(stores, orgs).access_token_grant(USER_CLAIMS) is None
    assert await org_check(stores, None).access_token_grant(USER_CLAIMS) is None  # nothing to read: refused


async def test_a_grant_for_no_organization_reads_no_membership() -> None:
    live = await org_check(Stores(), None).access_token_grant(USER_CLAIMS)

    assert live is not None and live.org is None

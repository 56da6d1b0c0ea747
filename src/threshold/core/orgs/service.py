"""Organizations: create them, add and remove members with a role, claim and verify domains, and select
one in a session.

A domain is verified by a DNS TXT record the organization publishes at `_threshold-challenge.<domain>`
(the value shown when the domain is added), or asserted by the operator (`trust`). A domain belongs to
one organization only: whoever claims it first holds the claim, and only verification makes it count.

An organization is administered by the operator (CLI, admin token) or by its own admins and owners (an
org-admin token, web.admin.org_access): who acted is an `Actor`, recorded in the audit trail. Only
owners (and the operator) add, change or remove owners, and only the operator trusts a domain on its word.
An organization's admins add an account without its consent only at one of the organization's verified
domains (which it controls); anyone else joins by accepting an invitation, and whether an address has an
account elsewhere is not revealed to them.

Removing a member ends at once what the person holds for the organization: the sessions that selected it
and the grants issued for it, with their refresh and access tokens. Their sessions and tokens for other
organizations, or for none, stay.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.emails import normalize_email
from threshold.core.errors import EmailInvalid, Forbidden, InvalidRequest, NotAuthenticated, UserNotFound
from threshold.core.i18n import N_
from threshold.core.models import AuditKind, OutgoingMail, RequestContext, SessionRecord, User
from threshold.core.orgs.errors import (
    DomainNotFound,
    DomainNotVerified,
    InvitationInvalid,
    MemberNotFound,
    OrgNotFound,
)
from threshold.core.orgs.models import Invitation, Membership, Organization, OrgDomain, OrgRole
from threshold.core.orgs.ports import OrgRepo
from threshold.core.ports import MailQueue, TxtResolver, UserRepo
from threshold.core.revocation import AccessRevoker, Cause, Reach
from threshold.core.secrets import digest, equal, new_id, new_token
from threshold.core.sessions import IssuedSession, SessionService

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
TXT_PREFIX = "threshold-domain-verification="


def slug_of(name: str) -> str:
    """A slug from a name: lower case letters, digits and single hyphens."""
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9]+", "-", name.lower())).strip("-")[:63].strip("-")


def normalize_domain(domain: str) -> str:
    """The domain in lower-case ASCII (IDNA for international names), without a trailing dot.

    Raises:
        InvalidRequest: not a host name of at least two labels (no wildcards, IP addresses or ports).
    """
    text = domain.strip().rstrip(".").lower()
    try:
        ascii_name = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidRequest(N_("Give a domain name such as example.com.")) from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or len(labels) < 2 or not all(LABEL.match(label) for label in labels):
        raise InvalidRequest(N_("Give a domain name such as example.com."))
    if labels[-1].isdigit():
        raise InvalidRequest(N_("Give a domain name, not an address."))
    return ascii_name


INVITATION_LIFETIME = 7 * 86400
MANAGING_ROLES = frozenset({OrgRole.OWNER, OrgRole.ADMIN})


class OwnerRequired(Forbidden):
    code = "owner_required"
    message = N_("Only an owner of the organization can add, change or remove an owner.")


class InvitationRequired(Forbidden):
    code = "invitation_required"
    message = N_(
        "Invite this person instead: an organization's admins add an account directly only when its "
        "address is at one of the organization's verified domains; anyone else joins by accepting."
    )


class OperatorRequired(Forbidden):
    code = "operator_required"
    message = N_("Only the operator can do this; publish the domain's TXT record and verify it by DNS.")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who administers an organization: the operator (`role` None), or one of the organization's admins
    or owners acting with an org-admin token. `principal` is what the audit trail records of them."""

    principal: str
    role: OrgRole | None = None

    @property
    def is_operator(self) -> bool:
        return self.role is None

    def audit(self) -> dict[str, str]:
        return {"actor": self.principal[:200]}


OPERATOR_ACTOR = Actor("operator")
"""The operator at the command line (the admin API names its client: `Actor("client:<id>")`)."""


def check_may_manage(actor: Actor, *, current: OrgRole | None = None, new: OrgRole | None = None) -> None:
    """An admin or owner manages members, invitations and domains; only an owner (or the operator) makes,
    changes or removes an owner (`current`: the member's role now, `new`: the role given).

    Raises:
        Forbidden: the actor is not an admin or owner; OwnerRequired: an admin touching an owner.
    """
    if actor.is_operator:
        return
    if actor.role not in MANAGING_ROLES:
        raise Forbidden(N_("Only an admin or owner of the organization can do this."))
    if actor.role is not OrgRole.OWNER and OrgRole.OWNER in (current, new):
        raise OwnerRequired()


def _role(role: str) -> OrgRole:
    try:
        return OrgRole(role)
    except ValueError:
        raise InvalidRequest(N_("role must be owner, admin or member.")) from None


class Organizations:
    def __init__(
        self,
        *,
        orgs: OrgRepo,
        users: UserRepo,
        resolver: TxtResolver,
        mail: MailQueue,
        auditor: Auditor,
        clock: Clock,
        issuer: str,
        sessions: SessionService,
        revoker: AccessRevoker,
    ) -> None:
        self._orgs = orgs
        self._users = users
        self._resolver = resolver
        self._mail = mail
        self._audit = auditor
        self._clock = clock
        self._issuer = issuer
        self._sessions = sessions
        self._revoker = revoker

    async def create(self, *, name: str, slug: str | None = None, context: RequestContext) -> Organization:
        """Raises InvalidRequest (name or slug), SlugTaken."""
        name = " ".join(name.split())
        if not name or len(name) > 200 or not name.isprintable():
            raise InvalidRequest(N_("Give the organization a name of 1 to 200 printable characters."))
        chosen = (slug or slug_of(name)).lower()
        if not SLUG.match(chosen) or len(chosen) < 2:
            raise InvalidRequest(N_("A slug is 2 to 63 lower-case letters, digits and hyphens."))
        org = Organization(id=new_id(), slug=chosen, name=name, created_at=self._clock.now())
        await self._orgs.add(org)
        await self._audit.record(
            AuditKind.ORG_CREATED, user_id=None, context=context, org=org.id, slug=org.slug
        )
        return org

    async def find(self, ref: str) -> Organization:
        """By id or slug. Raises OrgNotFound."""
        ref = ref.strip()[:64]
        org = await self._orgs.get(ref) or await self._orgs.get_by_slug(ref.lower())
        if org is None:
            raise OrgNotFound()
        return org

    async def list_orgs(self) -> Sequence[Organization]:
        return await self._orgs.list()

    # --- members --------------------------------------------------------------------------------------

    async def _user(self, email: str) -> User:
        try:
            user = await self._users.get_by_email(normalize_email(email).normalized)
        except EmailInvalid:
            user = None
        if user is None:
            raise UserNotFound()
        return user

    async def membership(self, org_id: str, user_id: str) -> Membership | None:
        """The user's membership of the organization as it stands now."""
        return next((m for m in await self._orgs.memberships_of(user_id) if m.org_id == org_id), None)

    async def controls_address(self, org: Organization, email: str) -> bool:
        """Whether the address is at one of the organization's verified domains."""
        try:
            domain = normalize_domain(normalize_email(email).normalized.rpartition("@")[2])
        except (EmailInvalid, InvalidRequest):
            return False
        claim = await self._orgs.get_domain(domain)
        return claim is not None and claim.org_id == org.id and claim.verified

    async def add_member(
        self,
        org: Organization,
        *,
        email: str,
        role: str,
        context: RequestContext,
        actor: Actor = OPERATOR_ACTOR,
    ) -> Membership:
        """Add an existing account (or change its role).

        Raises:
            UserNotFound; InvalidRequest: the role; OwnerRequired: an admin making, changing or
            demoting an owner; InvitationRequired: an admin adding someone who is not a member, at an
            address outside the organization's verified domains (whether or not it has an account);
            Forbidden: the actor does not manage the organization.
        """
        chosen = _role(role)
        check_may_manage(actor, new=chosen)
        try:
            user: User | None = await self._user(email)
        except UserNotFound:
            user = None
        current = await self.membership(org.id, user.id) if user is not None else None
        if current is None and not actor.is_operator and not await self.controls_address(org, email):
            raise InvitationRequired()
        if user is None:
            raise UserNotFound()
        return await self._put_member(org, user, current, chosen, context=context, actor=actor)

    async def set_member(
        self,
        org: Organization,
        user: User,
        *,
        role: OrgRole | None = None,
        context: RequestContext,
        actor: Actor = OPERATOR_ACTOR,
        new_account: bool = False,
    ) -> Membership:
        """Make an account already at hand a member with `role` (None: the role it has, or member);
        nothing is written when that is already so. For a provisioning authority (SCIM) that vouched for
        the account: no invitation rule applies. `new_account`: the caller has just created the account,
        which has no membership to read.

        Raises:
            OwnerRequired, Forbidden: as add_member.
        """
        current = None if new_account else await self.membership(org.id, user.id)
        chosen = role or (current.role if current else OrgRole.MEMBER)
        if current is not None and current.role is chosen:
            return current
        return await self._put_member(org, user, current, chosen, context=context, actor=actor)

    async def _put_member(
        self,
        org: Organization,
        user: User,
        current: Membership | None,
        chosen: OrgRole,
        *,
        context: RequestContext,
        actor: Actor,
    ) -> Membership:
        check_may_manage(actor, current=current.role if current else None, new=chosen)
        membership = Membership(
            org_id=org.id,
            user_id=user.id,
            role=chosen,
            created_at=current.created_at if current else self._clock.now(),
        )
        await self._orgs.put_member(membership)
        await self._audit.record(
            AuditKind.ORG_MEMBER_ADDED,
            user_id=user.id,
            context=context,
            org=org.id,
            role=chosen.value,
            **actor.audit(),
        )
        return membership

    async def remove_member(
        self, org: Organization, *, email: str, context: RequestContext, actor: Actor = OPERATOR_ACTOR
    ) -> User:
        """Remove the person, and end at once the sessions that selected the organization and the grants
        issued for it (their refresh tokens, and the access tokens issued under them); the person's
        sessions and tokens for other organizations, or for none, stay. Audited with the counts.

        Raises:
            UserNotFound, MemberNotFound; OwnerRequired: an admin removing an owner; Forbidden: the
            actor does not manage the organization.
        """
        check_may_manage(actor)
        try:
            user = await self._user(email)
        except UserNotFound:
            if actor.is_operator:
                raise
            raise MemberNotFound() from None  # nothing said to an organization about other accounts
        current = await self.membership(org.id, user.id)
        if current is None:
            raise MemberNotFound()
        check_may_manage(actor, current=current.role)
        if not await self._orgs.remove_member(org.id, user.id):
            raise MemberNotFound()
        # After the membership is gone: a session or grant made meanwhile for the organization fails
        # its live membership check (oidc.live_grant), and these end what was made before.
        ended = await self._revoker.end_access(
            Reach.organization(user.id, org.id), cause=Cause.MEMBERSHIP_REMOVED, context=context
        )
        await self._audit.record(
            AuditKind.ORG_MEMBER_REMOVED,
            user_id=user.id,
            context=context,
            org=org.id,
            role=current.role.value,
            sessions_ended=str(len(ended.sessions)),
            refresh_tokens_revoked=str(ended.refresh_tokens),
            **actor.audit(),
        )
        return user

    async def members(self, org: Organization) -> list[tuple[Membership, User]]:
        found: list[tuple[Membership, User]] = []
        for membership in await self._orgs.members(org.id):
            user = await self._users.get(membership.user_id)
            if user is not None:
                found.append((membership, user))
        return found

    async def memberships(self, user: User) -> Sequence[Membership]:
        return await self._orgs.memberships_of(user.id)

    # --- the organization selected in a session --------------------------------------------------------

    async def memberships_with_orgs(self, user: User) -> list[tuple[Membership, Organization]]:
        """The person's memberships with their organizations, in the order joined (the first is the one
        a new session selects)."""
        found: list[tuple[Membership, Organization]] = []
        for membership in sorted(
            await self._orgs.memberships_of(user.id), key=lambda m: (m.created_at, m.org_id)
        ):
            org = await self._orgs.get(membership.org_id)
            if org is not None:
                found.append((membership, org))
        return found

    async def select(
        self, session: SessionRecord, *, user: User, org: str
    ) -> tuple[IssuedSession, Organization, Membership]:
        """Select another organization in the session: the same sign-in under a new session id (a change
        of privilege), the old id ended. Only an organization the person belongs to.

        Args:
            org: the organization's id or slug.

        Raises:
            OrgNotFound: no such organization, or the person is not a member (the same answer).
            NotAuthenticated: the session ended meanwhile (of two concurrent switches, one wins).
        """
        if session.user_id != user.id:
            raise NotAuthenticated()
        found = await self.find(org)
        membership = await self.membership(found.id, user.id)
        if membership is None:
            raise OrgNotFound()
        issued = await self._sessions.reissue(session, org_id=found.id)
        if issued is None:
            raise NotAuthenticated(N_("Your session ended meanwhile: sign in again."))
        return issued, found, membership

    # --- invitations -----------------------------------------------------------------------------------

    async def invite(
        self,
        org: Organization,
        *,
        email: str,
        role: str,
        invited_by: str,
        context: RequestContext,
        actor: Actor = OPERATOR_ACTOR,
    ) -> Invitation:
        """Email an invitation (a single-use link for this address only).

        Raises:
            InvalidRequest: the role; EmailInvalid: the address; OwnerRequired: an admin inviting an
            owner; Forbidden: the actor does not manage the organization.
        """
        chosen = _role(role)
        check_may_manage(actor, new=chosen)
        address = normalize_email(email)
        token = new_token()
        now = self._clock.now()
        invitation = Invitation(
            id=new_id(),
            org_id=org.id,
            email_normalized=address.normalized,
            role=chosen,
            digest=digest("invitation:" + token),
            invited_by=invited_by[:200],
            created_at=now,
            expires_at=now + INVITATION_LIFETIME,
        )
        await self._orgs.add_invitation(invitation)
        await self._mail.enqueue(
            OutgoingMail(
                kind="org_invitation",
                to=address.display,
                context={
                    "org": org.name,
                    "role": chosen.value,
                    "inviter": invitation.invited_by,
                    "days": str(INVITATION_LIFETIME // 86400),
                    "link": f"{self._issuer}/invitations/accept?{urlencode({'token': token})}",
                },
            )
        )
        await self._audit.record(
            AuditKind.ORG_INVITATION_SENT,
            user_id=None,
            context=context,
            org=org.id,
            role=chosen.value,
            **actor.audit(),
        )
        return invitation

    async def invitation(self, token: str) -> tuple[Invitation, Organization]:
        """The usable invitation behind an emailed token. Raises InvitationInvalid."""
        found = await self._orgs.invitation_by_digest(digest("invitation:" + token[:128])) if token else None
        if found is None or found.accepted_at is not None or found.expires_at <= self._clock.now():
            raise InvitationInvalid()
        org = await self._orgs.get(found.org_id)
        if org is None:
            raise InvitationInvalid()
        return found, org

    async def accept(self, token: str, *, user: User, context: RequestContext) -> Membership:
        """Join as the invitation says: only the account with the invited address, only once.

        Raises:
            InvitationInvalid: unknown, used, expired, or for another address.
        """
        invitation, org = await self.invitation(token)
        if not equal(invitation.email_normalized, user.email_normalized):
            raise InvitationInvalid()
        if not await self._orgs.accept_invitation(invitation.id, at=self._clock.now()):
            raise InvitationInvalid()  # accepted meanwhile (or it expired): single use
        membership = Membership(
            org_id=org.id, user_id=user.id, role=invitation.role, created_at=self._clock.now()
        )
        await self._orgs.put_member(membership)
        await self._audit.record(
            AuditKind.ORG_MEMBER_ADDED,
            user_id=user.id,
            context=context,
            org=org.id,
            role=invitation.role.value,
        )
        return membership

    # --- domains --------------------------------------------------------------------------------------

    async def add_domain(
        self, org: Organization, domain: str, *, context: RequestContext, actor: Actor = OPERATOR_ACTOR
    ) -> OrgDomain:
        """Claim a domain (again: the same claim and TXT value). Raises InvalidRequest, DomainTaken,
        Forbidden (the actor does not manage the organization)."""
        check_may_manage(actor)
        claim = OrgDomain(
            domain=normalize_domain(domain),
            org_id=org.id,
            txt_value=TXT_PREFIX + secrets.token_urlsafe(24),
            created_at=self._clock.now(),
        )
        stored = await self._orgs.add_domain(claim)
        if stored.txt_value == claim.txt_value:
            await self._audit.record(
                AuditKind.ORG_DOMAIN_ADDED,
                user_id=None,
                context=context,
                org=org.id,
                domain=stored.domain,
                **actor.audit(),
            )
        return stored

    async def domains(self, org: Organization) -> Sequence[OrgDomain]:
        return await self._orgs.domains(org.id)

    async def verify_domain(
        self,
        org: Organization,
        domain: str,
        *,
        trust: bool = False,
        context: RequestContext,
        actor: Actor = OPERATOR_ACTOR,
    ) -> OrgDomain:
        """Verify the claim by its DNS TXT record, or on the operator's word (`trust`).

        Raises:
            DomainNotFound: this organization has not claimed the domain.
            DomainNotVerified: the record is not there (yet).
            DependencyUnavailable: DNS could not be asked.
            OperatorRequired: `trust` from anyone but the operator (an organization's word about a
                domain is worth nothing: a verified domain routes and links its addresses' accounts).
            Forbidden: the actor does not manage the organization.
        """
        check_may_manage(actor)
        if trust and not actor.is_operator:
            raise OperatorRequired()
        name = normalize_domain(domain)
        claim = await self._orgs.get_domain(name)
        if claim is None or claim.org_id != org.id:
            raise DomainNotFound()
        if not trust:
            published = await self._resolver.txt_records(claim.txt_name)
            if not any(equal(value.strip(), claim.txt_value) for value in published):
                raise DomainNotVerified()
        now = self._clock.now()
        await self._orgs.mark_verified(name, at=now, trusted=trust)
        await self._audit.record(
            AuditKind.ORG_DOMAIN_VERIFIED,
            user_id=None,
            context=context,
            org=org.id,
            domain=name,
            by="operator" if trust else "dns",
            **actor.audit(),
        )
        return replace(claim, verified_at=now, trusted=trust)


def domain_summary(domain: OrgDomain) -> dict[str, object]:
    """The public shape of a domain claim (CLI --json and the admin API)."""
    return {
        "domain": domain.domain,
        "verified": domain.verified,
        "txt_name": domain.txt_name,
        "txt_value": domain.txt_value,
        "trusted": domain.trusted,
    }


def org_summary(org: Organization) -> dict[str, object]:
    return {"id": org.id, "slug": org.slug, "name": org.name}


def membership_summary(membership: Membership, email: str) -> dict[str, object]:
    """The public shape of a membership or an invitation's (CLI --json and the admin API)."""
    return {
        "org_id": membership.org_id,
        "user_id": membership.user_id,
        "email": email,
        "role": membership.role.value,
    }


def invitation_summary(invitation: Invitation, email: str) -> dict[str, object]:
    return {"id": invitation.id, "org_id": invitation.org_id, "email": email, "role": invitation.role.value}

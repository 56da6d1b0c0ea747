"""What a SCIM User of an organization means for a Threshold account.

The security rule: an organization's SCIM client provisions, changes and deprovisions only addresses at
the domains that organization has *verified* (`Organizations.controls_address`). Its identity provider
is then authoritative for those addresses, as its SSO connection is (core.sso.signin): a SCIM User with
any other address is refused (400 `invalidValue`), so a SCIM token can never reach an account at an
address its organization does not control.

- Provisioning binds the User to the account with that address, or creates a passwordless account with
  the address verified (the organization vouches for it); either way the account becomes a member (role
  member unless a mapped group says otherwise). An existing account whose address was never verified is
  claimed first, by the rule the organization's IdP applies at its first sign-in (core.provisioning):
  whoever made it never proved the address.
- Deactivation (`active: false`) disables the account, ending every session and token through the one
  revocation operation (core.revocation, cause `scim_deactivated`); reactivation enables it again.
- Deletion does the same (cause `scim_deleted`) and removes the membership; a later provisioning of the
  same address binds the same account again and enables it.
- An account the organization does not manage (its address moved off the organization's verified domains
  since) is never disabled or renamed from here: it only loses its membership.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from threshold.core.accounts import Accounts
from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.emails import NormalizedEmail, normalize_email
from threshold.core.errors import EmailInvalid, InvalidRequest, UserNotFound
from threshold.core.models import AuditKind, RequestContext, User
from threshold.core.orgs.errors import MemberNotFound
from threshold.core.orgs.models import Organization, OrgRole, highest_role
from threshold.core.orgs.service import Actor, Organizations
from threshold.core.ports import UserRepo
from threshold.core.provisioning import Provisioning
from threshold.core.revocation import Cause
from threshold.core.sso.connections import Connections


class AddressNotManaged(InvalidRequest):
    code = "address_not_managed"
    message = (
        "Only addresses at one of the organization's verified domains can be provisioned: give the "
        'person\'s work address (emails[type eq "work"] or a userName that is an address) at such a domain.'
    )


class AddressMissing(InvalidRequest):
    code = "address_missing"
    message = (
        "A User needs an email address at one of the organization's verified domains: in emails "
        "(work or primary) or as its userName."
    )


@dataclass(frozen=True, slots=True)
class ProvisionedAccount:
    """The account a SCIM User was bound to, and whether it was created for it."""

    user: User
    created: bool


class ScimAccounts:
    def __init__(
        self,
        *,
        users: UserRepo,
        orgs: Organizations,
        accounts: Accounts,
        connections: Connections,
        provisioning: Provisioning,
        auditor: Auditor,
        clock: Clock,
    ) -> None:
        self._users = users
        self._orgs = orgs
        self._accounts = accounts
        self._connections = connections
        self._provisioning = provisioning
        self._audit = auditor
        self._clock = clock

    async def managed_address(self, org: Organization, address: str) -> NormalizedEmail:
        """The address, if the organization may provision it (the rule of the module docstring).

        Raises:
            AddressNotManaged: not a valid address, or not at one of the organization's verified domains.
        """
        try:
            normalized = normalize_email(address)
        except EmailInvalid:
            raise AddressNotManaged() from None
        if not await self._orgs.controls_address(org, normalized.normalized):
            raise AddressNotManaged()
        return normalized

    async def _manages(self, org: Organization, user: User) -> bool:
        return await self._orgs.controls_address(org, user.email_normalized)

    async def _user(self, user_id: str) -> User:
        user = await self._users.get(user_id)
        if user is None:
            raise UserNotFound()
        return user

    async def provision(
        self, org: Organization, *, address: str, context: RequestContext, actor: Actor
    ) -> ProvisionedAccount:
        """Bind a new SCIM User to its account (created, or claimed if never verified), enabled and a
        member of the organization.

        Raises:
            AddressNotManaged: the address is not at one of the organization's verified domains.
        """
        normalized = await self.managed_address(org, address)
        user, created = await self._provisioning.account_for(
            normalized, claimant=f"scim:{org.id}", context=context
        )
        if user.disabled:
            await self._accounts.set_disabled(user, disabled=False, context=context)
        await self.ensure_member(org, user, context=context, actor=actor)
        return await self._provisioned(org, user, created=created, context=context, actor=actor)

    async def unclaimed(self, org: Organization, address: str) -> NormalizedEmail | None:
        """The address, if the organization may provision it and no account has it yet: what
        `provision_new` takes (the common case of an initial sync).

        Raises:
            AddressNotManaged: as provision.
        """
        normalized = await self.managed_address(org, address)
        return None if await self._users.get_by_email(normalized.normalized) else normalized

    async def provision_new(
        self, org: Organization, address: NormalizedEmail, *, context: RequestContext, actor: Actor
    ) -> ProvisionedAccount:
        """`provision` for an address no account has (`unclaimed`): a new account, made a member. Only
        writes, so that the caller can make them one transaction with its own.

        Raises:
            EmailUnavailable: an account has the address after all (made meanwhile): `provision` then.
        """
        user = await self._provisioning.new_account(address)
        await self._orgs.set_member(org, user, context=context, actor=actor, new_account=True)
        return await self._provisioned(org, user, created=True, context=context, actor=actor)

    async def _provisioned(
        self, org: Organization, user: User, *, created: bool, context: RequestContext, actor: Actor
    ) -> ProvisionedAccount:
        await self._audit.record(
            AuditKind.SCIM_USER_PROVISIONED,
            user_id=user.id,
            context=context,
            org=org.id,
            created=str(created).lower(),
            **actor.audit(),
        )
        return ProvisionedAccount(user=user, created=created)

    async def ensure_member(
        self,
        org: Organization,
        user: User,
        *,
        context: RequestContext,
        actor: Actor,
        role: OrgRole | None = None,
    ) -> None:
        """Make the account a member (role member, or `role`), or set its role when `role` is given."""
        await self._orgs.set_member(org, user, role=role, context=context, actor=actor)

    async def deactivate(
        self, org: Organization, user_id: str, *, context: RequestContext, actor: Actor
    ) -> None:
        """`active: false`: disable the account (every session and token ends) if the organization
        manages it; otherwise only its membership ends."""
        user = await self._user(user_id)
        if await self._manages(org, user):
            if not user.disabled:
                await self._accounts.set_disabled(
                    user, disabled=True, context=context, cause=Cause.SCIM_DEACTIVATED
                )
        else:
            await self._leave(org, user, context=context, actor=actor)
        await self._audit.record(
            AuditKind.SCIM_USER_DEACTIVATED, user_id=user.id, context=context, org=org.id, **actor.audit()
        )

    async def reactivate(
        self, org: Organization, user_id: str, *, context: RequestContext, actor: Actor
    ) -> None:
        """`active: true` after a deactivation: enable the account again (if the organization manages it)
        and make sure it is a member."""
        user = await self._user(user_id)
        if await self._manages(org, user) and user.disabled:
            await self._accounts.set_disabled(user, disabled=False, context=context)
        await self.ensure_member(org, user, context=context, actor=actor)
        await self._audit.record(
            AuditKind.SCIM_USER_REACTIVATED, user_id=user.id, context=context, org=org.id, **actor.audit()
        )

    async def deprovision(
        self, org: Organization, user_id: str, *, context: RequestContext, actor: Actor
    ) -> None:
        """DELETE: as a deactivation (cause `scim_deleted`), and the membership is removed."""
        user = await self._users.get(user_id)
        if user is None:
            return
        if await self._manages(org, user) and not user.disabled:
            await self._accounts.set_disabled(user, disabled=True, context=context, cause=Cause.SCIM_DELETED)
        await self._leave(org, user, context=context, actor=actor)
        await self._audit.record(
            AuditKind.SCIM_USER_DELETED, user_id=user.id, context=context, org=org.id, **actor.audit()
        )

    async def _leave(self, org: Organization, user: User, *, context: RequestContext, actor: Actor) -> None:
        """End the membership (and with it what the person holds for the organization), as the
        operator would: `actor` is operator-level, named `scim:<token id>` in the audit trail."""
        with contextlib.suppress(MemberNotFound, UserNotFound):
            await self._orgs.remove_member(org, email=user.email_normalized, context=context, actor=actor)

    async def change_address(
        self, org: Organization, user_id: str, *, address: str, context: RequestContext, actor: Actor
    ) -> None:
        """A User's address changed: the account's address follows, only for an account the organization
        manages and only to another address at its verified domains.

        Raises:
            AddressNotManaged: the new address is not at one of the organization's verified domains.
            EmailUnavailable: another account has the new address.
        """
        normalized = await self.managed_address(org, address)
        user = await self._user(user_id)
        if user.email_normalized == normalized.normalized and user.email == normalized.display:
            return
        if not await self._manages(org, user):
            return
        await self._users.change_email(
            user.id, email=normalized.display, email_normalized=normalized.normalized
        )
        await self._audit.record(
            AuditKind.SCIM_USER_UPDATED,
            user_id=user.id,
            context=context,
            org=org.id,
            changed="email",
            **actor.audit(),
        )

    async def group_roles(self, org: Organization) -> dict[str, OrgRole]:
        """Group display name (casefolded) -> organization role, from the role-group mappings of the
        organization's SSO connections (the most privileged wins when two connections disagree)."""
        mapped: dict[str, OrgRole] = {}
        for connection in await self._connections.of_org(org):
            for group, role in connection.policy.role_groups.items():
                key = group.casefold()
                mapped[key] = highest_role([OrgRole(role), *([mapped[key]] if key in mapped else [])])
        return mapped

    async def set_role(
        self, org: Organization, user_id: str, role: OrgRole, *, context: RequestContext, actor: Actor
    ) -> None:
        """The role the account's mapped groups give it (a member of the organization only)."""
        user = await self._users.get(user_id)
        if user is None:
            return
        current = await self._orgs.membership(org.id, user.id)
        if current is None or current.role is role:
            return
        await self.ensure_member(org, user, context=context, actor=actor, role=role)

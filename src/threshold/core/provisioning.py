"""Accounts an authority over an address provisions: an organization's identity provider at a verified
domain, whether it signs a person in (SSO, core.sso.signin) or provisions them (SCIM, core.scim).

The one rule, for both: the account with the address is the person's, and a new one is made (passwordless,
its address verified: the authority vouches for it) when there is none. An existing account whose address
was never verified is *claimed* first: whoever made it never proved the address (it may be a squatter
waiting for the owner's first SSO sign-in), so what they set up goes. Its password and factors are
removed, its sessions and tokens ended (core.revocation, cause `account_claimed`), the credential epoch
moved on (no sign-in begun before completes), and the address marked verified.
"""

from __future__ import annotations

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.emails import NormalizedEmail
from threshold.core.errors import EmailUnavailable, UserNotFound
from threshold.core.models import AuditKind, RequestContext, User
from threshold.core.ports import FactorRepo, UserRepo
from threshold.core.revocation import AccessRevoker, Cause, Reach
from threshold.core.secrets import new_id


class Provisioning:
    def __init__(
        self, *, users: UserRepo, factors: FactorRepo, revoker: AccessRevoker, auditor: Auditor, clock: Clock
    ) -> None:
        self._users = users
        self._factors = factors
        self._revoker = revoker
        self._audit = auditor
        self._clock = clock

    async def new_account(self, address: NormalizedEmail) -> User:
        """A new passwordless account with the address verified.

        Raises:
            EmailUnavailable: an account has the address (made meanwhile, by a concurrent sign-up,
            sign-in or provisioning).
        """
        user = User(
            id=new_id(),
            email=address.display,
            email_normalized=address.normalized,
            email_verified=True,
            disabled=False,
            created_at=self._clock.now(),
        )
        await self._users.add(user, None)
        return user

    async def create_verified(self, address: NormalizedEmail) -> User | None:
        """As `new_account`; None when an account has the address."""
        try:
            return await self.new_account(address)
        except EmailUnavailable:
            return None

    async def account_for(
        self, address: NormalizedEmail, *, claimant: str, context: RequestContext
    ) -> tuple[User, bool]:
        """The account at the address for an authority over it (`claimant`: who, in the audit trail):
        the existing one (claimed if never verified) or a new one; and whether it was created.

        Raises:
            UserNotFound: the account was deleted while it was being claimed.
        """
        existing = await self._users.get_by_email(address.normalized)
        if existing is None:
            created = await self.create_verified(address)
            if created is not None:
                return created, True
            existing = await self._users.get_by_email(address.normalized)
            if existing is None:
                raise UserNotFound()
        if not existing.email_verified:
            existing = await self.claim_unverified(existing, claimant=claimant, context=context)
        return existing, False

    async def claim_unverified(self, user: User, *, claimant: str, context: RequestContext) -> User:
        """Claim an account whose address was never verified (the module docstring): the account as it
        is now. `claimant` names the authority in the audit trail (a connection id, `scim:<org id>`).

        Raises:
            UserNotFound: the account was deleted meanwhile.
        """
        await self._users.delete_password(user.id)
        await self._factors.delete_all_factors(user.id)
        await self._users.bump_credential_epoch(user.id)
        ended = await self._revoker.end_access(
            Reach.everything(user.id), cause=Cause.ACCOUNT_CLAIMED, context=context, connection=claimant
        )
        await self._users.set_email_verified(user.id, user.email_normalized)
        await self._audit.record(
            AuditKind.SSO_ACCOUNT_CLAIMED,
            user_id=user.id,
            context=context,
            connection=claimant,
            sessions_ended=str(len(ended.sessions)),
            refresh_tokens_revoked=str(ended.refresh_tokens),
        )
        claimed = await self._users.get(user.id)
        if claimed is None:
            raise UserNotFound()
        return claimed

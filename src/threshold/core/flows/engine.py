"""The sign-in engine assembled from its ports: methods (prove) and flows (decide), built once."""

from __future__ import annotations

from dataclasses import dataclass

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.crypto import SecretBox
from threshold.core.flows.closing import SequentialSignInWrites
from threshold.core.flows.factors import Factors
from threshold.core.flows.inventory import Inventory
from threshold.core.flows.pending import PendingLogins
from threshold.core.flows.proving import Proving
from threshold.core.flows.recovery import Recovery
from threshold.core.flows.signin import SignIn
from threshold.core.flows.stepup import StepUp
from threshold.core.lock import SignInLock
from threshold.core.methods.passkey import PasskeyMethod
from threshold.core.methods.password import PasswordMethod
from threshold.core.methods.recovery_codes import RecoveryCodeMethod
from threshold.core.methods.totp import TotpMethod
from threshold.core.orgs.ports import OrgRepo
from threshold.core.passwords import PasswordHasher
from threshold.core.ports import EphemeralStore, FactorRepo, RateLimitStore, SignInWrites, UserRepo
from threshold.core.ratelimit import LoginThrottle
from threshold.core.revocation import AccessRevoker
from threshold.core.sessions import SessionService
from threshold.settings import Settings


@dataclass(frozen=True, slots=True)
class Engine:
    throttle: LoginThrottle
    password: PasswordMethod
    passkey: PasskeyMethod
    signin: SignIn
    stepup: StepUp
    factors: Factors
    recovery: Recovery
    lock: SignInLock


def build_engine(
    *,
    settings: Settings,
    users: UserRepo,
    factor_repo: FactorRepo,
    ephemeral: EphemeralStore,
    rate_limits: RateLimitStore,
    sessions: SessionService,
    hasher: PasswordHasher,
    auditor: Auditor,
    clock: Clock,
    box: SecretBox,
    revoker: AccessRevoker,
    orgs: OrgRepo | None = None,
    closing: SignInWrites | None = None,
) -> Engine:
    """`closing`: the sign-in's closing writes batched by the storage (adapters.sql.repos.SqlSignInWrites);
    by default the same one port call at a time (core.flows.closing)."""
    throttle = LoginThrottle(rate_limits, users, clock, settings.rate_limit, settings.mfa)
    lock = SignInLock()
    password = PasswordMethod(users=users, hasher=hasher, auditor=auditor, clock=clock)
    proving = Proving(
        throttle=throttle,
        password=password,
        totp=TotpMethod(factors=factor_repo, box=box, clock=clock),
        recovery_codes=RecoveryCodeMethod(factors=factor_repo, auditor=auditor, clock=clock),
        auditor=auditor,
    )
    passkey = PasskeyMethod(
        users=users,
        factors=factor_repo,
        ephemeral=ephemeral,
        auditor=auditor,
        clock=clock,
        rp_id=settings.webauthn_rp_id,
        rp_name=settings.theme.product_name,
        origins=settings.webauthn_origins,
        challenge_lifetime=settings.webauthn.challenge_lifetime,
        lock=lock,
    )
    inventory = Inventory(users=users, factors=factor_repo, settings=settings.mfa)
    stepup = StepUp(
        users=users,
        proving=proving,
        passkey=passkey,
        inventory=inventory,
        sessions=sessions,
        ephemeral=ephemeral,
        auditor=auditor,
        clock=clock,
        settings=settings.mfa,
    )
    signin = SignIn(
        users=users,
        sessions=sessions,
        throttle=throttle,
        proving=proving,
        passkey=passkey,
        inventory=inventory,
        pending=PendingLogins(ephemeral, clock, lifetime=settings.session.pending_login_lifetime),
        stepup=stepup,
        auditor=auditor,
        closing=closing or SequentialSignInWrites(users, auditor),
        lock=lock,
        orgs=orgs,
        notify_new_device=settings.email.notify_new_device,
    )
    factors = Factors(
        users=users,
        factors=factor_repo,
        proving=proving,
        passkey=passkey,
        stepup=stepup,
        auditor=auditor,
        clock=clock,
        settings=settings.mfa,
    )
    recovery = Recovery(
        users=users,
        factors=factor_repo,
        sessions=sessions,
        auditor=auditor,
        clock=clock,
        settings=settings.mfa,
        revoker=revoker,
    )
    return Engine(
        throttle=throttle,
        password=password,
        passkey=passkey,
        signin=signin,
        stepup=stepup,
        factors=factors,
        recovery=recovery,
        lock=lock,
    )

"""`threshold init --profile P`: a commented configuration file for one architecture of the framework.

Each profile is the framework's answer for one kind of application, written as the settings that answer
needs (session and token lifetimes, which sign-in methods are on, the passkey prompt), each with the
reason beside it, and the commands that come next (the clients to register, the pieces to run). The file
is an ordinary `--config` file: every key in it is a Settings field, and environment variables still win.
"""

from __future__ import annotations

import json
import shlex
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from threshold.cli.exits import EXIT_CONFIG

DAY = 86400


@dataclass(frozen=True, slots=True)
class Choice:
    key: str
    value: bool | int | str | list[str]
    why: str


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    title: str
    framework: str
    """The decision framework's answer for this architecture, as the file's header says it."""
    top: tuple[Choice, ...]
    sections: tuple[tuple[str, tuple[Choice, ...]], ...]
    next_steps: tuple[str, ...]
    """Shell lines; {config}, {issuer} and {app} are filled in."""
    demo: str
    """Which `make demo` application shows this architecture."""


def _lines(text: str) -> list[str]:
    return [f"# {line}".rstrip() for paragraph in text.splitlines() for line in textwrap.wrap(paragraph, 98)]


SIGNUP = Choice(
    "signup_enabled", True, "Anyone may create an account (false: invitations, SSO or SCIM only)."
)
MFA_OFFERED = Choice("required", False, "A second factor is offered, not required.")
PASSKEY_PROMPT = Choice(
    "passkey_prompt_snooze",
    30 * DAY,
    "After a password sign-in, passkeys are offered as the upgrade; 'Not now' hides the offer this long.",
)
NO_GRACE = Choice(
    "refresh_reuse_grace",
    0,
    "Refresh tokens rotate on every use; a reused one revokes its whole family and raises an alert.",
)
FIVE_MINUTES = Choice(
    "access_token_lifetime",
    300,
    "Access tokens are JWTs signed with asymmetric keys, valid 5 minutes: short enough that a revoked "
    "person is refused by every API within minutes without a call back to Threshold.",
)


def rotating_tokens(days: int, why: str, *more: Choice) -> tuple[str, tuple[Choice, ...]]:
    """The [oidc] section of a profile whose clients hold refresh tokens: 5-minute access tokens, refresh
    tokens that live `days` without use (`why`), rotated on every use with no grace."""
    return ("oidc", (FIVE_MINUTES, Choice("refresh_token_lifetime", days * DAY, why), NO_GRACE, *more))


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            name="monolith",
            title="Monolith or server-rendered application",
            framework=(
                "Server-side sessions: the browser holds an httpOnly, Secure, SameSite=Lax cookie and the\n"
                "application asks Threshold about it on every request (threshold.client's\n"
                "ThresholdAuthMiddleware), so a revocation (sign out everywhere, offboarding) takes effect\n"
                "at once. Serve Threshold and the application on one origin (a reverse proxy routes\n"
                "/login, /api/v1, /oauth2 and /.well-known to Threshold) so that the cookie reaches both."
            ),
            top=(SIGNUP,),
            sections=(
                (
                    "session",
                    (
                        Choice("idle_timeout", 3 * DAY, "Three days without a visit end the session."),
                        Choice("absolute_lifetime", 30 * DAY, "Everyone signs in again at least monthly."),
                    ),
                ),
                (
                    "email",
                    (
                        Choice("verification", "optional", "Sign in at once; the address is verified later."),
                        Choice("login_enabled", True, "Emailed sign-in links and codes (and recovery)."),
                    ),
                ),
                (
                    "mfa",
                    (MFA_OFFERED, PASSKEY_PROMPT),
                ),
            ),
            next_steps=(
                "threshold --config {config} migrate",
                "threshold --config {config} serve",
                "# in the application (Starlette/FastAPI), on the same origin as Threshold:",
                "#   auth = ThresholdAuth(TokenVerifier(issuer='{issuer}', audience='{issuer}'),",
                "#                        session_url='{issuer}/api/v1/session')",
                "#   app.add_middleware(ThresholdAuthMiddleware, auth=auth)",
            ),
            demo="the server-rendered app (1)",
        ),
        Profile(
            name="spa",
            title="Single-page application",
            framework=(
                "Don't store tokens in localStorage: a backend-for-frontend (threshold-bff) signs in as a\n"
                "confidential OpenID Connect client, keeps the tokens server-side and gives the browser one\n"
                "httpOnly __Host- cookie; the SPA calls its API through the BFF with X-CSRF: 1."
            ),
            top=(SIGNUP,),
            sections=(
                rotating_tokens(
                    14, "The BFF refreshes before each expiry; two weeks without use ends the grant."
                ),
                (
                    "session",
                    (Choice("idle_timeout", 7 * DAY, "Threshold's own session."),),
                ),
                (
                    "mfa",
                    (MFA_OFFERED, PASSKEY_PROMPT),
                ),
            ),
            next_steps=(
                "threshold --config {config} migrate",
                "threshold --config {config} serve",
                "threshold --config {config} clients create --name 'My SPA' --first-party "
                "--redirect-uri {app}/bff/callback --post-logout-redirect-uri {app}/ "
                "--backchannel-logout-uri {app}/bff/backchannel --json",
                "# with the client_id and client_secret it printed:",
                'THRESHOLD_BFF_CLIENT_SECRET="$CLIENT_SECRET" threshold-bff --issuer {issuer} '
                '--client-id "$CLIENT_ID" --upstream http://127.0.0.1:9000 --public-url {app} --static dist/',
            ),
            demo="the SPA behind the BFF (2)",
        ),
        Profile(
            name="api",
            title="API platform and services",
            framework=(
                "Short-lived JWT access tokens (5 minutes, asymmetric signatures, an audience per API),\n"
                "verified by each API with threshold.client's TokenVerifier against the published JWKS;\n"
                "refresh tokens rotated on every use; services call each other with client_credentials."
            ),
            top=(SIGNUP,),
            sections=(
                rotating_tokens(
                    30,
                    "A month without use ends the grant.",
                    Choice(
                        "audiences",
                        ["{app}"],
                        "The APIs clients may ask tokens for (RFC 8707 resource); each API checks aud.",
                    ),
                    Choice("default_audience", "{app}", "The audience when a client names no resource."),
                ),
            ),
            next_steps=(
                "threshold --config {config} migrate",
                "threshold --config {config} serve",
                "threshold --config {config} clients create --name 'Orders service' "
                "--grant-type client_credentials --scope orders:read --json",
                "# in the API: TokenVerifier(issuer='{issuer}', audience='{app}')",
            ),
            demo="the API and the service calling it (3)",
        ),
        Profile(
            name="b2b",
            title="B2B SaaS with organizations",
            framework=(
                "Sessions plus SSO: each customer organization signs in through its own identity provider\n"
                "(OpenID Connect or SAML), is provisioned by SCIM, and offboarding ends every session,\n"
                "token and application session at once (back-channel logout to every application)."
            ),
            top=(
                Choice(
                    "signup_enabled",
                    True,
                    "Self sign-up for trials; organization members arrive by SSO, SCIM or invitation.",
                ),
            ),
            sections=(
                (
                    "session",
                    (
                        Choice("idle_timeout", DAY // 2, "Twelve idle hours end a session (a working day)."),
                        Choice("absolute_lifetime", 7 * DAY, "Security teams expect a weekly sign-in."),
                    ),
                ),
                (
                    "email",
                    (
                        Choice(
                            "verification",
                            "required",
                            "A verified address before any session: it decides organization membership.",
                        ),
                    ),
                ),
                (
                    "mfa",
                    (
                        Choice(
                            "required",
                            False,
                            "The customer's IdP enforces its MFA; require it per account with "
                            "`threshold users require-mfa`, or set true for everyone.",
                        ),
                        Choice("reauthentication_window", 600, "Sensitive actions ask for a fresh proof."),
                    ),
                ),
                ("oidc", (FIVE_MINUTES, NO_GRACE)),
            ),
            next_steps=(
                "threshold --config {config} migrate",
                "threshold --config {config} serve",
                "threshold --config {config} orgs create --name 'Acme' --slug acme --json",
                "threshold --config {config} orgs domains add acme acme.example --json",
                "# publish the TXT record it printed, then:",
                "threshold --config {config} orgs domains verify acme acme.example",
                "threshold --config {config} orgs connections add acme --type oidc "
                '--issuer https://idp.acme.example --client-id "$IDP_CLIENT_ID" '
                '--client-secret "$IDP_CLIENT_SECRET"',
                "threshold --config {config} orgs scim-token acme --json",
                "threshold --config {config} clients create --name 'My B2B app' "
                "--redirect-uri {app}/callback --backchannel-logout-uri {app}/backchannel --json",
            ),
            demo="the organization signing in through its IdP (6)",
        ),
        Profile(
            name="mobile",
            title="Consumer mobile or desktop app",
            framework=(
                "Passkeys first, with a password-plus-MFA fallback: the app is a public client (no secret,\n"
                "PKCE required) that signs in through the system browser and comes back on a private-use\n"
                "scheme, a claimed https link or a loopback port (RFC 8252); refresh tokens rotate on\n"
                "every use."
            ),
            top=(SIGNUP,),
            sections=(
                rotating_tokens(
                    90, "People stay signed in to an app for months; each use rotates the token."
                ),
                (
                    "session",
                    (
                        Choice(
                            "absolute_lifetime",
                            90 * DAY,
                            "Refresh tokens never outlive the session they came from.",
                        ),
                    ),
                ),
                (
                    "mfa",
                    (
                        MFA_OFFERED,
                        Choice(
                            "passkey_prompt_snooze",
                            7 * DAY,
                            "Passkeys are the goal here: the upgrade offer comes back after a week.",
                        ),
                    ),
                ),
                ("email", (Choice("login_enabled", True, "Emailed links and codes: the recovery path."),)),
            ),
            next_steps=(
                "threshold --config {config} migrate",
                "threshold --config {config} serve",
                "threshold --config {config} clients create --name 'My app' --public --first-party "
                "--redirect-uri com.example.app:/oauth2redirect "
                "--redirect-uri http://127.0.0.1/callback --json",
            ),
            demo="the native-style client (5)",
        ),
    )
}


def _toml(value: bool | int | str | list[str]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)  # a JSON string or list of strings is also TOML


def render(profile: Profile, *, issuer: str, app: str, data_dir: Path) -> str:
    """The configuration file's text."""

    def fill(value: bool | int | str | list[str]) -> bool | int | str | list[str]:
        if isinstance(value, str):
            return value.replace("{app}", app)
        if isinstance(value, list):
            return [v.replace("{app}", app) for v in value]
        return value

    out = [
        f"# Threshold configuration: {profile.title} (threshold init --profile {profile.name}).",
        "#",
        *_lines(profile.framework),
        "#",
        "# Every key is documented in `threshold config-reference`; THRESHOLD_* environment variables",
        "# override this file (THRESHOLD_SESSION__IDLE_TIMEOUT for [session] idle_timeout).",
        "",
        "# The public URL people and applications reach Threshold at.",
        f"issuer = {_toml(issuer)}",
        "# The embedded database (SQLite) and the generated keys live here (beside this file, whatever",
        "# directory threshold runs in); set database_url and redis_url to run several processes.",
        f"data_dir = {_toml(str(data_dir))}",
    ]
    for choice in profile.top:
        out += [*_lines(choice.why), f"{choice.key} = {_toml(fill(choice.value))}"]
    for section, choices in profile.sections:
        out += ["", f"[{section}]"]
        for choice in choices:
            out += [*_lines(choice.why), f"{choice.key} = {_toml(fill(choice.value))}"]
    return "\n".join(out) + "\n"


def next_steps(profile: Profile, *, config: str, issuer: str, app: str) -> list[str]:
    return [line.format(config=config, issuer=issuer, app=app) for line in profile.next_steps]


def init_command(profile_name: str, *, output: str, issuer: str, app: str, force: bool) -> int:
    profile = PROFILES[profile_name]
    path = Path(output)
    if path.exists() and not force:
        print(f"threshold: {path} exists (--force replaces it)", file=sys.stderr)
        return EXIT_CONFIG
    data_dir = path.resolve().parent / "var"
    path.write_text(render(profile, issuer=issuer.rstrip("/"), app=app.rstrip("/"), data_dir=data_dir))
    print(f"wrote {path}: {profile.title}")
    print(f"demo: `make demo`, {profile.demo}")
    print("next:")
    config = shlex.quote(str(path))
    for line in next_steps(profile, config=config, issuer=issuer.rstrip("/"), app=app.rstrip("/")):
        print(f"  {line}")
    return 0

"""Mail rendering: one themable layout (HTML and plain text) and a few lines of copy per message kind."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from threshold.core.i18n import N_, Phrase
from threshold.core.models import OutgoingMail
from threshold.i18n import Language, fill, parse_instant
from threshold.settings import ThemeSettings

FOOTER = N_(
    "You receive this because of your {product} account. If something here surprises you, sign in and check "
    "your account page."
)


@dataclass(frozen=True, slots=True)
class Copy:
    subject: str
    title: str
    paragraphs: tuple[str, ...]
    action_label: str = ""
    action: str = ""
    """Context key holding the action URL."""


INSTANTS = frozenset({"when", "erase_at"})
"""Context values that are ISO 8601 instants: written for a person in the mail's language (Language.moment)."""

COPY: dict[str, Copy] = {
    "verify_email": Copy(
        N_("Confirm your email address"),
        N_("Confirm your email address"),
        (N_("Open the link below to confirm this address for your {product} account."),),
        N_("Confirm my address"),
        "link",
    ),
    "signup_existing": Copy(
        N_("Someone tried to sign up with your address"),
        N_("You already have an account"),
        (
            N_(
                "Someone (perhaps you) tried to create a {product} account with this address, which already has one. "
                "Nothing was changed."
            ),
            N_("If it was you, sign in instead, or reset your password if you forgot it: {reset}"),
        ),
        N_("Sign in"),
        "link",
    ),
    "reset_password": Copy(
        N_("Reset your password"),
        N_("Reset your password"),
        (
            N_(
                "Someone asked to reset the password of your {product} account. The link works once, for {minutes} "
                "minutes."
            ),
            N_("If it wasn't you, ignore this message: your password stays as it is."),
        ),
        N_("Choose a new password"),
        "link",
    ),
    "email_login": Copy(
        N_("Your sign-in link"),
        N_("Sign in to {product}"),
        (
            N_(
                "Use the button on this device, or type the code in the browser where you asked for it. Both work once, "
                "for {minutes} minutes."
            ),
            N_("Requested from {ip}. If it wasn't you, ignore this message."),
        ),
        N_("Sign in"),
        "link",
    ),
    "org_invitation": Copy(
        N_("You are invited to join {org}"),
        N_("Join {org} on {product}"),
        (
            N_(
                "{inviter} invited this address to the organization {org} as {role}. The link works once, for "
                "{days} days, and only for an account with this address: sign in with it (or sign up) to accept."
            ),
            N_("If you did not expect this, ignore this message."),
        ),
        N_("Accept the invitation"),
        "link",
    ),
    "change_email": Copy(
        N_("Confirm your new email address"),
        N_("Confirm your new email address"),
        (N_("Open the link below to make this address the one of your {product} account."),),
        N_("Confirm the change"),
        "link",
    ),
    "notice_email_change_requested": Copy(
        N_("Your email address is being changed"),
        N_("Your email address is being changed"),
        (
            N_(
                "Someone signed in to your {product} account asked to change its address to {new_email}. It changes "
                "only once the new address is confirmed."
            ),
            N_("If it wasn't you, sign in and change your password now."),
        ),
    ),
    "notice_email_changed": Copy(
        N_("Your email address was changed"),
        N_("Your email address was changed"),
        (
            N_(
                "The address of your {product} account is now {new_email}. This address will not receive further "
                "mail about it."
            ),
            N_("If it wasn't you, contact your administrator at once."),
        ),
    ),
    "notice_password_changed": Copy(
        N_("Your password was changed"),
        N_("Your password was changed"),
        (
            N_(
                "The password of your {product} account was changed at {when} from {ip}. Other sessions were signed out."
            ),
            N_("If it wasn't you, reset your password now and check your account page."),
        ),
        N_("Review your account"),
        "account",
    ),
    "notice_factor_added": Copy(
        N_("A sign-in method was added"),
        N_("A sign-in method was added"),
        (N_("A passkey or authenticator app was added to your {product} account at {when} from {ip}."),),
        N_("Review your sign-in methods"),
        "account",
    ),
    "notice_factor_removed": Copy(
        N_("A sign-in method was removed"),
        N_("A sign-in method was removed"),
        (N_("A passkey or authenticator app was removed from your {product} account at {when} from {ip}."),),
        N_("Review your sign-in methods"),
        "account",
    ),
    "notice_token_reuse": Copy(
        N_("We stopped a possible token theft"),
        N_("We stopped a possible token theft"),
        (
            N_(
                "An application's refresh token for your {product} account was used twice at {when}, which happens when "
                "a token is stolen. We signed that application out and ended its session."
            ),
            N_("If this repeats, change your password and sign out everywhere else."),
        ),
        N_("Review your account"),
        "account",
    ),
    "notice_recovery": Copy(
        N_("Account recovery requested"),
        N_("Account recovery requested"),
        (
            N_(
                "An administrator approved resetting the passkeys, authenticator app and recovery codes of your "
                "{product} account. It happens after a waiting period unless you cancel it from your account page."
            ),
        ),
        N_("Review or cancel"),
        "account",
    ),
    "notice_recovery_completed": Copy(
        N_("Your sign-in methods were reset"),
        N_("Your sign-in methods were reset"),
        (
            N_(
                "The approved account recovery was carried out at {when}: your passkeys, authenticator app and recovery "
                "codes were removed and every session ended. Sign in with your password and set them up again."
            ),
        ),
        N_("Sign in"),
        "account",
    ),
    "notice_account_deletion": Copy(
        N_("Your account will be deleted"),
        N_("Your account will be deleted"),
        (
            N_(
                "Deleting your {product} account was requested at {when} from {ip}. You were signed out everywhere, and "
                "your data is erased at {erase_at}."
            ),
            N_(
                "To keep your account, sign in before then and confirm. If you did not ask for this, sign in, keep "
                "the account and change your password."
            ),
        ),
        N_("Keep my account"),
        "account",
    ),
    "notice_new_device": Copy(
        N_("New sign-in to your account"),
        N_("New sign-in from {device}"),
        (
            N_(
                "Your {product} account was signed in to from a browser or device we had not seen before ({device}, "
                "{ip}) at {when}."
            ),
            N_(
                "If it was you, there is nothing to do. If not, sign out that session and change your password."
            ),
        ),
        N_("Review your sessions"),
        "account",
    ),
    "notice_passkey_blocked": Copy(
        N_("A passkey was blocked"),
        N_("A passkey was blocked"),
        (
            N_(
                "One of your passkeys reported a signature counter that went backwards at {when}, a sign of a copied "
                "authenticator. We blocked it."
            ),
            N_("Remove it from your account page and add a new one."),
        ),
        N_("Review your passkeys"),
        "account",
    ),
}


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    text: str
    html: str


@cache
def _environment(autoescape: bool, language: Language) -> Environment:
    env = Environment(
        loader=PackageLoader("threshold.adapters.mail", "templates"),
        autoescape=select_autoescape(default=autoescape, default_for_string=autoescape),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(language.translations, newstyle=True)  # type: ignore[attr-defined]
    return env


def render_mail(mail: OutgoingMail, theme: ThemeSettings, language: Language) -> RenderedMail:
    """The message in `language`: its copy from the catalogue, the values filled in afterwards (so a
    value never passes through a translation)."""
    copy = COPY[mail.kind]

    def shown(key: str, value: str) -> str:
        if isinstance(value, Phrase):
            return language.gettext(value)
        moment = parse_instant(value) if key in INSTANTS and value else None
        return language.moment(moment) if moment is not None else value

    values = {
        "product": theme.product_name,
        **{key: shown(key, value) for key, value in mail.context.items()},
    }

    def filled(text: str) -> str:
        return fill(language.gettext(text), text, values)

    context = {
        "subject": filled(copy.subject),
        "title": filled(copy.title),
        "paragraphs": [filled(p) for p in copy.paragraphs],
        "code": mail.context.get("code", ""),
        "action_url": mail.context.get(copy.action, "") if copy.action else "",
        "action_label": language.gettext(copy.action_label) if copy.action_label else "",
        "product": theme.product_name,
        "accent": theme.accent_color,
        "logo_url": theme.logo_url if theme.logo_url and theme.logo_url.startswith("https://") else "",
        "footer": filled(FOOTER),
        "lang": language.tag,
        "text_dir": language.direction,
    }
    return RenderedMail(
        subject=f"{context['subject']} · {theme.product_name}",
        text=_environment(False, language).get_template("message.txt").render(**context),
        html=_environment(True, language).get_template("message.html").render(**context),
    )

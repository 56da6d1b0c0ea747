"""Mail rendering: one themable layout (HTML and plain text) and a few lines of copy per message kind."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from threshold.core.models import OutgoingMail
from threshold.settings import ThemeSettings

FOOTER = "You receive this because of your {product} account. If something here surprises you, sign in and check your account page."


@dataclass(frozen=True, slots=True)
class Copy:
    subject: str
    title: str
    paragraphs: tuple[str, ...]
    action_label: str = ""
    action: str = ""
    """Context key holding the action URL."""


COPY: dict[str, Copy] = {
    "verify_email": Copy(
        "Confirm your email address",
        "Confirm your email address",
        ("Open the link below to confirm this address for your {product} account.",),
        "Confirm my address",
        "link",
    ),
    "signup_existing": Copy(
        "Someone tried to sign up with your address",
        "You already have an account",
        (
            "Someone (perhaps you) tried to create a {product} account with this address, which already has one. "
            "Nothing was changed.",
            "If it was you, sign in instead, or reset your password if you forgot it: {reset}",
        ),
        "Sign in",
        "link",
    ),
    "reset_password": Copy(
        "Reset your password",
        "Reset your password",
        (
            "Someone asked to reset the password of your {product} account. The link works once, for {minutes} "
            "minutes.",
            "If it wasn't you, ignore this message: your password stays as it is.",
        ),
        "Choose a new password",
        "link",
    ),
    "email_login": Copy(
        "Your sign-in link",
        "Sign in to {product}",
        (
            "Use the button on this device, or type the code in the browser where you asked for it. Both work once, "
            "for {minutes} minutes.",
            "Requested from {ip}. If it wasn't you, ignore this message.",
        ),
        "Sign in",
        "link",
    ),
    "org_invitation": Copy(
        "You are invited to join {org}",
        "Join {org} on {product}",
        (
            "{inviter} invited this address to the organization {org} as {role}. The link works once, for "
            "{days} days, and only for an account with this address: sign in with it (or sign up) to accept.",
            "If you did not expect this, ignore this message.",
        ),
        "Accept the invitation",
        "link",
    ),
    "change_email": Copy(
        "Confirm your new email address",
        "Confirm your new email address",
        ("Open the link below to make this address the one of your {product} account.",),
        "Confirm the change",
        "link",
    ),
    "notice_email_change_requested": Copy(
        "Your email address is being changed",
        "Your email address is being changed",
        (
            "Someone signed in to your {product} account asked to change its address to {new_email}. It changes "
            "only once the new address is confirmed.",
            "If it wasn't you, sign in and change your password now.",
        ),
    ),
    "notice_email_changed": Copy(
        "Your email address was changed",
        "Your email address was changed",
        (
            "The address of your {product} account is now {new_email}. This address will not receive further "
            "mail about it.",
            "If it wasn't you, contact your administrator at once.",
        ),
    ),
    "notice_password_changed": Copy(
        "Your password was changed",
        "Your password was changed",
        (
            "The password of your {product} account was changed at {when} from {ip}. Other sessions were signed out.",
            "If it wasn't you, reset your password now and check your account page.",
        ),
        "Review your account",
        "account",
    ),
    "notice_factor_added": Copy(
        "A sign-in method was added",
        "A sign-in method was added",
        ("A passkey or authenticator app was added to your {product} account at {when} from {ip}.",),
        "Review your sign-in methods",
        "account",
    ),
    "notice_factor_removed": Copy(
        "A sign-in method was removed",
        "A sign-in method was removed",
        ("A passkey or authenticator app was removed from your {product} account at {when} from {ip}.",),
        "Review your sign-in methods",
        "account",
    ),
    "notice_token_reuse": Copy(
        "We stopped a possible token theft",
        "We stopped a possible token theft",
        (
            "An application's refresh token for your {product} account was used twice at {when}, which happens when "
            "a token is stolen. We signed that application out and ended its session.",
            "If this repeats, change your password and sign out everywhere else.",
        ),
        "Review your account",
        "account",
    ),
    "notice_recovery": Copy(
        "Account recovery requested",
        "Account recovery requested",
        (
            "An administrator approved resetting the passkeys, authenticator app and recovery codes of your "
            "{product} account. It happens after a waiting period unless you cancel it from your account page.",
        ),
        "Review or cancel",
        "account",
    ),
    "notice_recovery_completed": Copy(
        "Your sign-in methods were reset",
        "Your sign-in methods were reset",
        (
            "The approved account recovery was carried out at {when}: your passkeys, authenticator app and recovery "
            "codes were removed and every session ended. Sign in with your password and set them up again.",
        ),
        "Sign in",
        "account",
    ),
    "notice_account_deletion": Copy(
        "Your account will be deleted",
        "Your account will be deleted",
        (
            "Deleting your {product} account was requested at {when} from {ip}. You were signed out everywhere, and "
            "your data is erased at {erase_at}.",
            "To keep your account, sign in before then and confirm. If you did not ask for this, sign in, keep "
            "the account and change your password.",
        ),
        "Keep my account",
        "account",
    ),
    "notice_new_device": Copy(
        "New sign-in to your account",
        "New sign-in from {device}",
        (
            "Your {product} account was signed in to from a browser or device we had not seen before ({device}, "
            "{ip}) at {when}.",
            "If it was you, there is nothing to do. If not, sign out that session and change your password.",
        ),
        "Review your sessions",
        "account",
    ),
    "notice_passkey_blocked": Copy(
        "A passkey was blocked",
        "A passkey was blocked",
        (
            "One of your passkeys reported a signature counter that went backwards at {when}, a sign of a copied "
            "authenticator. We blocked it.",
            "Remove it from your account page and add a new one.",
        ),
        "Review your passkeys",
        "account",
    ),
}


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    text: str
    html: str


@cache
def _environment(autoescape: bool) -> Environment:
    return Environment(
        loader=PackageLoader("threshold.adapters.mail", "templates"),
        autoescape=select_autoescape(default=autoescape, default_for_string=autoescape),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def render_mail(mail: OutgoingMail, theme: ThemeSettings) -> RenderedMail:
    copy = COPY[mail.kind]
    values = {"product": theme.product_name, **mail.context}

    def fill(text: str) -> str:
        return text.format(**values)

    context = {
        "subject": fill(copy.subject),
        "title": fill(copy.title),
        "paragraphs": [fill(p) for p in copy.paragraphs],
        "code": mail.context.get("code", ""),
        "action_url": mail.context.get(copy.action, "") if copy.action else "",
        "action_label": copy.action_label,
        "product": theme.product_name,
        "accent": theme.accent_color,
        "logo_url": theme.logo_url if theme.logo_url and theme.logo_url.startswith("https://") else "",
        "footer": FOOTER.format(product=theme.product_name),
    }
    return RenderedMail(
        subject=f"{context['subject']} · {theme.product_name}",
        text=_environment(False).get_template("message.txt").render(**context),
        html=_environment(True).get_template("message.html").render(**context),
    )

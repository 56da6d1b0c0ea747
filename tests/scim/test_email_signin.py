"""A person the organization's IdP provisioned over SCIM, in an organization with no SSO connection,
signs in by the emailed link (their account has no password): the provisioned account, not another."""

from __future__ import annotations

from tests.conftest import csrf
from tests.email.conftest import MailApp, mail, mail_factory, smtp
from tests.email.helpers import token_of
from tests.scim.conftest import make_scim_org

__all__ = ["mail", "mail_factory", "smtp"]  # fixtures of the email suite

SIGN_IN = "Your sign-in link"


async def test_a_provisioned_person_signs_in_by_the_emailed_link(mail: MailApp) -> None:
    scim = await make_scim_org(mail.client, mail.services)
    assert await scim.services.sso.connections.of_org(scim.org) == []
    created = await scim.create_user()
    address = created["userName"]
    account = await mail.services.users.get_by_email(address)
    assert account is not None and account.email_verified
    assert await mail.services.users.get_password(account.id) is None

    browser = mail.browser()
    await csrf(browser)
    response = await browser.post("/api/v1/login/email", json={"email": address})
    assert response.status_code == 202, response.text
    message = await mail.last(address, SIGN_IN)
    verified = await browser.post(
        "/api/v1/login/email/verify", json={"token": token_of(message.link("/login/email/verify"))}
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["user"]["id"] == account.id
    assert (await browser.get("/api/v1/session")).json()["user"]["id"] == account.id

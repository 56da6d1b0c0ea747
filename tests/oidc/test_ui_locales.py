"""OIDC `ui_locales`: the authorization request's languages carry through the sign-in page it leads to
and the consent page, ahead of the browser's Accept-Language; discovery lists what is offered."""

from __future__ import annotations

import re
from html import unescape

from tests.oidc.helpers import OP, pkce
from threshold.i18n import Catalogues

LANG = re.compile(r'<html lang="([^"]+)" dir="(ltr|rtl)">')


async def test_discovery_lists_the_languages_offered(op: OP) -> None:
    document = (await op.browser.get("/.well-known/openid-configuration")).json()
    assert {"en", "de", "es", "fr", "ar"} <= set(document["ui_locales_supported"])


async def test_ui_locales_choose_the_sign_in_and_consent_pages_language(op: OP) -> None:
    rp = await op.register(first_party=False)
    _, challenge = pkce()
    params = op.authorize_params(rp, challenge, ui_locales="xx ar-EG fr")
    headers = {"accept-language": "de", "accept": "text/html"}

    to_login = await op.browser.get("/oauth2/authorize", params=params, headers=headers)
    assert to_login.status_code in (302, 303), to_login.text[:200]
    login_page = await op.browser.get(to_login.headers["location"], headers=headers)
    found = LANG.search(login_page.text)
    assert found and found.groups() == ("ar", "rtl")
    arabic = Catalogues().get("ar")
    assert arabic.gettext("Forgot your password?") in unescape(login_page.text)

    await op.sign_up()
    consent = await op.browser.get("/oauth2/authorize", params=params, headers=headers)
    assert consent.status_code == 200 and 'action="/consent"' in consent.text
    found = LANG.search(consent.text)
    assert found and found.group(1) == "ar"
    without = {key: value for key, value in params.items() if key != "ui_locales"}
    german = await op.browser.get("/oauth2/authorize", params=without, headers=headers)
    found = LANG.search(german.text)
    assert found and found.group(1) == "de"  # no ui_locales: the browser's Accept-Language

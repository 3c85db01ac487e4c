"""SAML step-up: a login whose AuthnContextClassRef maps below what the credential the
application asks for needs is sent back to the IdP once, with ForceAuthn and a
RequestedAuthnContext naming the stronger contexts the provider's levels map (strongest
first), audited `federation.step_up`; a stronger answer reaches the consent page, a second
weak one the login page naming the step-up (never a third round trip)."""

from __future__ import annotations

import base64
import hashlib
import html

import pytest

from tests.integration import test_saml as saml_suite
from tests.integration.csc_http import SHA
from tests.integration.test_saml import Flow, events
from tests.saml_peers import MFA, PPT, SMARTCARD

provider_extra = saml_suite.provider_extra
pysaml, sp_keys = saml_suite.pysaml, saml_suite.sp_keys
settings_env, world = saml_suite.settings_env, saml_suite.world


def credential_flow(w) -> Flow:
    digest = hashlib.sha256(b"a document").digest()
    return Flow(
        w,
        scope="credential",
        credentialID=w["credential"],
        numSignatures="1",
        hashes=base64.urlsafe_b64encode(digest).decode().rstrip("="),
        hashAlgorithmOID=SHA["sha256"],
    )


def test_a_low_context_is_asked_again_once_for_a_stronger_one(world):
    idp = world["idp"]
    idp.answer.context = PPT  # low, for a credential under the qualified policy
    flow = credential_flow(world)
    again = flow.post(flow.idp_form())
    assert again.status_code == 303, again.text[:2000]
    assert again.headers["Location"].startswith(idp.url + "/sso?")  # back at the IdP
    second = flow.browser.session.get(again.headers["Location"], timeout=30)
    request = idp.requests[-1]
    asked = [r.text for r in request.requested_authn_context.authn_context_class_ref]
    assert asked == [SMARTCARD, MFA] and request.force_authn == "true"
    (step,) = events(world["services"], "federation.step_up")
    assert step[1]["contexts"] == [SMARTCARD, MFA] and step[1]["protocol"] == "saml"
    # still low: the login page naming the step-up, and no third round trip
    page = flow.post(saml_suite.posted_form(second.text))
    text = html.unescape(page.text)
    assert page.status_code == 400 and "Step up" in text and "qualified" in text, text[:2000]
    assert len(events(world["services"], "federation.step_up")) == 1
    # asked again, she logs in with the stronger context: the consent page
    flow = credential_flow(world)
    again = flow.post(flow.idp_form())
    idp.answer.context = MFA
    second = flow.browser.session.get(again.headers["Location"], timeout=30)
    consent = flow.post(saml_suite.posted_form(second.text))
    assert consent.status_code == 200 and "Approve" in consent.text, consent.text[:2000]


@pytest.mark.parametrize("provider_extra", [{"step_up": False}])
def test_without_step_up_the_login_page_names_it(world):
    world["idp"].answer.context = PPT
    flow = credential_flow(world)
    page = flow.post(flow.idp_form())
    assert page.status_code == 400 and "Step up" in html.unescape(page.text), page.text[:2000]
    assert events(world["services"], "federation.step_up") == []

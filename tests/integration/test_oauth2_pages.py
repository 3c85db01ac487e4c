"""Signet's login pages in a real browser (Debian's headless Chromium through chromium-driver):
a person logs in, approves and types the mailed code with no script on the pages and nothing
blocked by their Content-Security-Policy; the login, consent and second-factor pages are
saved as screenshots under the test's directory."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import shutil
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.integrations.requests_client import OAuth2Session
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.integration.csc_http import PASSWORD, SHA
from tests.integration.oauth2_browser import (
    REDIRECT_URI,
    application_callback,
    mail_keys,
    newest_code,
)
from tests.integration.test_oauth2 import b64url, world  # noqa: F401

ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1000,1100",
)


@pytest.fixture
def callback():
    with application_callback():
        yield


@pytest.fixture
def chromium(tmp_path):
    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        pytest.fail("chromium-driver is not installed: run `make deps-test`")
    options = webdriver.ChromeOptions()
    for argument in ARGUMENTS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # no speculative connections: an idle one holds the one-request-at-a-time test server
    options.add_experimental_option("prefs", {"net.network_prediction_options": 2})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    with contextlib.suppress(Exception):  # the test may have quit it already
        driver.quit()


def shown(chromium, css, text):
    """The element once the page that has it with this text is shown (a click returns before
    the next page has loaded)."""
    # an element read while the next page replaces it raises: try again until it settles
    WebDriverWait(chromium, 60, ignored_exceptions=(WebDriverException,)).until(
        lambda c: any(text in e.text for e in c.find_elements(By.CSS_SELECTOR, css))
    )
    return chromium.find_element(By.CSS_SELECTOR, css)


def shot(chromium, path):
    chromium.save_screenshot(str(path))
    assert path.stat().st_size > 5000, path  # a rendered page, not an empty image
    return path


def test_a_person_signs_in_through_the_pages(world, callback, chromium, tmp_path):  # noqa: F811
    w = world
    # a loaded machine may take its time between the pages; the code's minute is not the point
    w["services"].settings.oauth2.code_lifetime_seconds = 600
    digests = [hashlib.sha256(b"page %d" % i).digest() for i in range(2)]
    client = OAuth2Session(
        w["public"],
        scope="credential",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier = secrets.token_urlsafe(48)
    address, state = client.create_authorization_url(
        f"{w['url']}/oauth2/authorize",
        code_verifier=verifier,
        credentialID=w["credential"],
        numSignatures="2",
        hashes=",".join(b64url(d) for d in digests),
        hashAlgorithmOID=SHA["sha256"],
    )
    maildir = w["services"].settings.notify.maildir
    seen = mail_keys(maildir)

    chromium.get(address)
    assert shown(chromium, "label[for=username]", "User name").text == "User name"
    shot(chromium, tmp_path / "login.png")
    chromium.find_element(By.ID, "username").send_keys("alice")
    chromium.find_element(By.ID, "password").send_keys(PASSWORD)
    chromium.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    shown(chromium, "h1", "Approve this request?")
    assert "Pocket Sign" in chromium.page_source
    shot(chromium, tmp_path / "consent.png")
    chromium.find_element(By.CSS_SELECTOR, "button[value=approve]").click()

    assert shown(chromium, "label[for=code]", "One-time code").text == "One-time code"
    shot(chromium, tmp_path / "factor.png")
    chromium.find_element(By.ID, "code").send_keys(newest_code(maildir, seen))
    chromium.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    # the browser went on to the client's redirect URI
    shown(chromium, "body", "back at the application")
    back = urlsplit(chromium.current_url)
    assert chromium.current_url.startswith(REDIRECT_URI), chromium.current_url
    params = parse_qs(back.query)
    assert params["state"] == [state] and params["code"]
    blocked = [
        entry["message"]
        for entry in chromium.get_log("browser")
        if "Content Security Policy" in entry["message"]
    ]
    assert not blocked, blocked
    back_at = chromium.current_url
    # Chromium keeps idle preconnected sockets to the one-request-at-a-time test server, which
    # would hold the token request up until they time out: the browser is done, close it.
    chromium.quit()
    token = client.fetch_token(
        f"{w['url']}/oauth2/token", authorization_response=back_at, code_verifier=verifier
    )
    assert token["scope"] == "credential"

"""/docs in a real browser (Debian's headless Chromium through chromium-driver): Swagger UI
renders the operations from the package's assets alone, the page's Content-Security-Policy
blocks nothing it needs, and a developer can try info and auth/login and read the answers."""

from __future__ import annotations

import shutil

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from tests.helpers import app_in_thread

PASSWORD = "a developer's password"

WAIT = 30  # seconds; a 2-core machine under load renders Swagger UI in about two


@pytest.fixture
def browser():
    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        pytest.fail("chromium-driver is not installed: run `make deps-test`")
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1800"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


def operation_block(browser, path: str) -> WebElement:
    """The operation's block, opened, with "Try it out" pressed."""
    selector = f"//span[@data-path='{path}']/ancestor::div[contains(@class, 'opblock ')][1]"
    block = browser.find_element(By.XPATH, selector)
    block.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    WebDriverWait(block, WAIT).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".try-out__btn"))[
        0
    ].click()
    return block


def execute(block: WebElement) -> tuple[str, str]:
    """Press Execute; the status and body Swagger UI shows."""
    WebDriverWait(block, WAIT).until(lambda b: b.find_elements(By.CSS_SELECTOR, "button.execute"))[
        0
    ].click()
    status = WebDriverWait(block, WAIT).until(
        lambda b: b.find_elements(
            By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_status"
        )
    )[0]
    body = block.find_element(
        By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_description"
    )
    return status.text.strip(), body.text


def test_docs_explorer_runs_info_and_login(app, services, browser, tmp_path):
    from signet.signing import admin

    admin.add_user(
        services, "alice", password=PASSWORD, display_name="Alice", email=None, actor="test"
    )
    with app_in_thread(app) as url:
        browser.get(f"{url}/docs")
        WebDriverWait(browser, WAIT).until(
            ready.presence_of_all_elements_located((By.CSS_SELECTOR, ".opblock"))
        )
        blocks = browser.find_elements(By.CSS_SELECTOR, ".opblock")
        paths = {b.find_element(By.CSS_SELECTOR, ".opblock-summary-path").text for b in blocks}
        assert {"/csc/v2/info", "/csc/v2/auth/login", "/csc/v1/signatures/signHash"} <= {
            p.replace("\u200b", "") for p in paths
        }, paths
        assert "Signet remote signing API" in browser.find_element(By.CSS_SELECTOR, ".info").text

        info = operation_block(browser, "/csc/v2/info")
        status, body = execute(info)
        assert status == "200", body
        assert '"specs": "2.0.0.2"' in body and "signatures/signHash" in body

        # HTTP Basic through the explorer's Authorize dialog, then auth/login
        browser.find_element(By.CSS_SELECTOR, ".auth-wrapper .authorize").click()
        dialog = WebDriverWait(browser, WAIT).until(
            ready.visibility_of_element_located((By.CSS_SELECTOR, ".modal-ux"))
        )
        basic = dialog.find_element(
            By.XPATH, ".//h4[contains(., 'basic')]/ancestor::div[contains(@class,'auth-container')]"
        )
        basic.find_element(By.CSS_SELECTOR, "input[type=text]").send_keys("alice")
        basic.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(PASSWORD)
        basic.find_element(By.CSS_SELECTOR, "button.authorize").click()
        dialog.find_element(By.CSS_SELECTOR, "button.btn-done").click()

        login = operation_block(browser, "/csc/v2/auth/login")
        status, body = execute(login)
        assert status == "200", body
        assert '"access_token"' in body and '"expires_in"' in body

        shot = tmp_path / "signet-docs.png"
        browser.execute_script("arguments[0].scrollIntoView()", info)
        assert browser.save_screenshot(str(shot))
        print(f"screenshot: {shot}")
        assert shot.stat().st_size > 20_000  # a rendered page, not a blank one

    blocked = [
        entry["message"]
        for entry in browser.get_log("browser")
        if "Content Security Policy" in entry["message"] or entry["level"] == "SEVERE"
    ]
    assert not blocked, blocked

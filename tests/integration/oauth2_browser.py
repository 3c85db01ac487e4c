"""A person at Signet's login pages, played over HTTP for the OAuth 2.0 tests: requests
keeps the cookies, each page's one form is read from its HTML and sent as a browser would
(no JavaScript), and the application's redirect URI served for real browsers to land on."""

from __future__ import annotations

import mailbox
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

REDIRECT_URI = "http://127.0.0.1:56849/callback"


@contextmanager
def application_callback(redirect_uri: str = REDIRECT_URI) -> Iterator[None]:
    """The signature application's redirect URI: a page that says the browser is back."""

    class Back(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"back at the application")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", urlsplit(redirect_uri).port), Back)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action"), "fields": {}, "buttons": []})
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1]["fields"][attrs["name"]] = attrs.get("value") or ""
        elif tag == "button" and self.forms and attrs.get("name"):
            self.forms[-1]["buttons"].append((attrs["name"], attrs.get("value")))


class Browser:
    """One browser: a cookie jar, the page it shows, its form."""

    def __init__(self, url: str):
        self.url, self.session = url, requests.Session()
        self.page: requests.Response | None = None

    def open(self, address: str) -> requests.Response:
        self.page = self.session.get(address, allow_redirects=False, timeout=60)
        return self.page

    @property
    def text(self) -> str:
        assert self.page is not None
        return self.page.text

    def form(self) -> dict:
        parser = _Forms()
        parser.feed(self.text)
        assert parser.forms, f"no form on the page:\n{self.text[:2000]}"
        return parser.forms[0]

    def submit(self, **fields: str) -> requests.Response:
        form = self.form()
        data = {**form["fields"], **fields}
        self.page = self.session.post(
            urljoin(self.url, form["action"]), data=data, allow_redirects=False, timeout=60
        )
        return self.page

    def redirected_to(self) -> dict[str, str]:
        """The parameters the page sent the browser back to the client with."""
        assert self.page is not None
        assert self.page.status_code in (302, 303), (self.page.status_code, self.page.text[:2000])
        location = self.page.headers["Location"]
        assert location.startswith(REDIRECT_URI), location
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

    def location(self) -> str:
        assert self.page is not None
        return self.page.headers["Location"]


def newest_code(maildir: str, seen: set[str]) -> str:
    """The one-time code in the newest mail not in `seen`."""
    box = mailbox.Maildir(maildir, create=False)
    (newest,) = [box[key] for key in box.iterkeys() if key not in seen]
    return re.search(r"^\s+(\d{6,8})\s*$", newest.get_payload(), re.M).group(1)


def mail_keys(maildir: str) -> set[str]:
    return set(mailbox.Maildir(maildir, create=True).keys())


@contextmanager
def client_world(
    app: Any, services: Any, ports: range, confidential_name: str, public_name: str
) -> Iterator[dict[str, Any]]:
    """The OAuth tests' world: alice with one P-256 credential, a confidential and a public
    client registered for REDIRECT_URI, and the app served on one of `ports`."""
    from signet.signing.oauth2_clients import add_client
    from tests.helpers import app_in_thread
    from tests.integration.csc_http import enrol_alice

    (credential_id,) = enrol_alice(services, "ec-p256")
    confidential, secret = add_client(
        services, confidential_name, [REDIRECT_URI], public=False, actor="t"
    )
    public, _ = add_client(services, public_name, [REDIRECT_URI], public=True, actor="t")
    with app_in_thread(app, ports) as url:
        yield {
            "url": url,
            "services": services,
            "credential": credential_id,
            "confidential": confidential.client_id,
            "secret": secret,
            "public": public.client_id,
        }

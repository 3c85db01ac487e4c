"""Fixtures of the CSC integration tests: a gunicorn on the test's database and token
(``live_client``; the root conftest's ``client`` stays Flask's test client), and a CSC client
speaking to it."""

import pytest

from tests.helpers import signet_server
from tests.integration.csc_http import Csc, LiveClient


@pytest.fixture
def live_client(settings_env, services):
    """gunicorn serving the same database and token as the test's `services`."""
    with signet_server(workers=1) as url:
        yield LiveClient(url)


@pytest.fixture
def csc(live_client, services):
    return Csc(live_client, services)

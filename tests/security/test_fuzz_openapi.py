"""An independent fuzzer (schemathesis) reads /openapi.json and sends what the schemas allow
(positive) and what they refuse (negative) to a live server; every answer must be documented,
match its schema, and never be a 5xx. Seeded and bounded: a regression test, not a campaign."""

from __future__ import annotations

import os

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import app_in_thread
from tests.security.conftest import PASSWORD

OPERATIONS = os.environ.get(
    "SIGNET_FUZZ_OPERATIONS",
    "info auth/login credentials/list credentials/info credentials/authorize signatures/signHash",
).split()
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# per operation and version; SIGNET_FUZZ_EXAMPLES and SIGNET_FUZZ_SEED for a longer campaign
EXAMPLES = int(os.environ.get("SIGNET_FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("SIGNET_FUZZ_SEED", "20261203"))


@pytest.fixture
def live(app, alice):
    with app_in_thread(app) as url:
        login = requests.post(f"{url}/csc/v2/auth/login", auth=("alice", PASSWORD), timeout=30)
        assert login.status_code == 200, login.text
        yield url, login.json()["access_token"], alice


def fuzzer(operation, bearer: dict[str, str], credential_id: str, seen: dict[int, int]):
    """A seeded hypothesis test of one operation: positive and negative cases, half of the
    positive ones naming the caller's real credential so that they get past its lookup."""
    modes = st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def fuzz(data) -> None:
        mode = data.draw(modes)
        case = data.draw(operation.as_strategy(generation_mode=mode))
        if (
            mode is GenerationMode.POSITIVE
            and isinstance(case.body, dict)
            and "credentialID" in case.body
            and data.draw(st.booleans())
        ):
            case.body["credentialID"] = credential_id
        response = case.call_and_validate(headers=bearer, checks=CHECKS, timeout=30)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1

    return fuzz


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_fuzzed_requests_get_documented_answers(live, version):
    url, token, credential_id = live
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    seen: dict[int, int] = {}
    failures = []
    for method in OPERATIONS:
        if version == "v1" and method == "signatures/signDoc":
            continue
        operation = schema[f"/csc/{version}/{method}"]["POST"]
        bearer = {} if method in ("info", "auth/login") else {"Authorization": f"Bearer {token}"}
        try:
            fuzzer(operation, bearer, credential_id, seen)()
        except (Exception, BaseExceptionGroup) as exc:  # every operation fuzzed, all reported
            failures.append(f"{method}: {exc}")
    print(f"{version}: statuses answered {sorted(seen.items())}")
    assert not failures, "\n\n".join(failures)
    assert any(200 <= status < 300 for status in seen), seen  # it reached real answers
    assert any(400 <= status < 500 for status in seen), seen

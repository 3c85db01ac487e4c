"""The passkey endpoints under an independent fuzzer (schemathesis, seeded and bounded, as
test_fuzz_openapi does for the CSC operations): every answer documented, matching its schema,
never a 5xx, and what the schemas refuse is refused."""

import pytest
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

from signet.signing import admin
from tests.helpers import app_in_thread
from tests.integration.test_passkeys_api import PASSWORD

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
OPERATIONS = (
    "/passkey/v1/register/options",
    "/passkey/v1/register",
    "/passkey/v1/approve/{request_id}",
)


@pytest.fixture
def live(app, services):
    admin.add_user(
        services, "alice", password=PASSWORD, display_name="A", email="a@x.test", actor="t"
    )
    credential_id = admin.create_credential(
        services, "alice", key="ec-p256", actor="t", activation="passkey"
    ).credential_id
    with app_in_thread(app, range(56750, 56800)) as url:
        yield url, credential_id


def fuzzer(operation, credential_id: str, seen: dict[int, int]):
    modes = st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

    @seed(20261204)
    @settings(
        max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
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
        response = case.call_and_validate(checks=CHECKS, timeout=30)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1

    return fuzz


def test_fuzzed_passkey_calls_get_documented_answers(live):
    url, credential_id = live
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    seen: dict[int, int] = {}
    failures = []
    for path in OPERATIONS:
        try:
            fuzzer(schema[path]["POST"], credential_id, seen)()
        except (Exception, BaseExceptionGroup) as exc:  # every operation fuzzed, all reported
            failures.append(f"{path}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert any(400 <= status < 500 for status in seen), seen

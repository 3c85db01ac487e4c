"""`/metrics` of `signet serve` (gunicorn, two workers) after real signatures and refusals,
parsed with prometheus_client's own parser: per-endpoint requests, refusals and latency summed
over the workers, and the cluster's counts read from the database."""

from __future__ import annotations

import hashlib

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import signet_server
from tests.integration.csc_http import Csc, LiveClient, enrol_alice

AUTHORIZE = "/csc/v2/credentials/authorize"
SIGN_HASH = "/csc/v2/signatures/signHash"


@pytest.fixture
def alice(services):
    (credential_id,) = enrol_alice(services, "ec-p256")
    return credential_id


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(url + "/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_after_real_signatures(settings_env, services, alice, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with signet_server(workers=2) as url:
        csc = Csc(LiveClient(url), services)
        csc.login()
        digests = [hashlib.sha256(bytes([n])).digest() for n in range(3)]
        authorized = csc.authorize(alice, digests)
        assert authorized.status_code == 200, authorized.json
        signed = csc.sign(alice, authorized.json["SAD"], digests, "1.2.840.10045.4.3.2")
        assert signed.status_code == 200, signed.json
        for _ in range(2):
            refused = csc.authorize(alice, digests, otp="000000")
            assert refused.status_code == 400 and refused.json["error"] == "invalid_otp"

        # whichever worker answers, the same sums (requests spread over both workers)
        scrapes = [scrape(url) for _ in range(6)]
        bad = requests.post(url + "/metrics", timeout=30)

    first = scrapes[0]
    for later in scrapes[1:]:
        for key in (
            (
                "signet_http_requests_total",
                (("endpoint", SIGN_HASH), ("method", "POST"), ("status", "200")),
            ),
            (
                "signet_http_requests_total",
                (("endpoint", AUTHORIZE), ("method", "POST"), ("status", "400")),
            ),
        ):
            assert later[key] == first[key]

    assert first[("signet_signatures_made_total", (("operation", "signHash"),))] == 3
    assert first[("signet_authorizations_refused_total", ())] == 2
    assert first[("signet_credentials_locked", ())] == 0
    requests_key = "signet_http_requests_total"
    assert (
        first[(requests_key, (("endpoint", SIGN_HASH), ("method", "POST"), ("status", "200")))] == 1
    )
    assert (
        first[(requests_key, (("endpoint", AUTHORIZE), ("method", "POST"), ("status", "200")))] == 1
    )
    assert (
        first[(requests_key, (("endpoint", AUTHORIZE), ("method", "POST"), ("status", "400")))] == 2
    )
    assert (
        first[("signet_http_refusals_total", (("endpoint", AUTHORIZE), ("error", "invalid_otp")))]
        == 2
    )
    # one signHash observed in the histogram, its buckets cumulative up to +Inf
    histogram = "signet_http_request_duration_seconds"
    assert first[(histogram + "_count", (("endpoint", SIGN_HASH),))] == 1
    assert first[(histogram + "_bucket", (("endpoint", SIGN_HASH), ("le", "+Inf")))] == 1
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in first.items()
        if name == histogram + "_bucket" and dict(labels)["endpoint"] == SIGN_HASH
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert 0 < first[(histogram + "_sum", (("endpoint", SIGN_HASH),))] < 60
    # a request /metrics does not take is a CSC error, not a 500
    assert bad.status_code == 405
    assert bad.json()["error"] == "invalid_request"

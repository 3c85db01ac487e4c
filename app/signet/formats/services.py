"""Clients for the services a long-term signature needs: TSA (RFC 3161), OCSP and CRL fetching."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from asn1crypto import cms, crl, ocsp
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.timestamps.requests_client import RequestsHTTPTimeStamper
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError
from pyhanko_certvalidator.fetchers.api import FetcherBackend, Fetchers, FetchLimits
from pyhanko_certvalidator.fetchers.common_utils import FetchBudget
from pyhanko_certvalidator.fetchers.requests_fetchers import (
    RequestsCertificateFetcher,
    RequestsCRLFetcher,
    RequestsOCSPFetcher,
)

from signet.formats.errors import FormatError, ServiceError
from signet.formats.keys import RemoteKey, as_certificate, unique_by_der, unique_certificates


@dataclass(frozen=True)
class TsaConfig:
    """An RFC 3161 time-stamping service.

    Authentication: HTTP Basic with ``username``/``password``, or ``bearer_token``.
    ``retries`` counts the attempts after the first; a failed TSA is a ServiceError.
    """

    url: str
    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    timeout: float = 10.0
    retries: int = 2
    retry_backoff: float = 0.5


@dataclass(frozen=True)
class RevocationConfig:
    """How OCSP responses and CRLs are fetched for B-LT / B-LTA validation data."""

    ocsp_timeout: float = 10.0
    crl_timeout: float = 20.0
    retries: int = 2
    retry_backoff: float = 0.5
    # Seconds after the signature time-stamp's genTime before the revocation data embedded is
    # fetched (the earlier fetch only shows the sources answer): OCSP responses and CRLs with
    # whole-second times are then produced after the time-stamp.
    grace: float = 2.0


@dataclass(frozen=True)
class ServicesConfig:
    """External services used from B-T upwards.

    ``trust_roots`` are the anchors used to build the paths whose revocation data B-LT embeds
    (the TSA's root, typically); self-signed certificates in ``RemoteKey.chain`` are added.
    """

    tsa: TsaConfig | None = None
    revocation: RevocationConfig = field(default_factory=RevocationConfig)
    trust_roots: tuple[asn1_x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        # accept DER/PEM bytes and cryptography certificates too, like RemoteKey does
        object.__setattr__(self, "trust_roots", tuple(as_certificate(c) for c in self.trust_roots))


class SignetTimeStamper(RequestsHTTPTimeStamper):
    """pyHanko's requests TSA client with retries and errors that name the TSA."""

    def __init__(self, config: TsaConfig) -> None:
        auth = None
        headers: dict[str, str] = {}
        if config.username is not None:
            auth = (config.username, config.password or "")
        if config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {config.bearer_token}"
        super().__init__(config.url, timeout=config.timeout, auth=auth, headers=headers)
        self.config = config
        self.last_token: cms.ContentInfo | None = None  # B-LT fetches revocation data after it

    async def async_request_tsa_response(self, req: Any) -> Any:
        last_error: Exception | None = None
        attempts = self.config.retries + 1
        for attempt in range(attempts):
            try:
                return await super().async_request_tsa_response(req)
            except (TimestampRequestError, OSError, requests.RequestException, ValueError) as exc:
                last_error = exc
                if attempt + 1 < attempts:
                    await asyncio.sleep(self.config.retry_backoff * (attempt + 1))
        raise ServiceError(
            "tsa",
            self.url,
            f"no usable time-stamp response after {attempts} attempt(s): {_describe(last_error)}",
        )

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        try:
            self.last_token = await super().async_timestamp(message_digest, md_algorithm)
            return self.last_token
        except ServiceError:
            raise
        except (TimestampRequestError, ValueError) as exc:
            # a rejection (status granted=false), a nonce mismatch or a malformed token
            raise ServiceError("tsa", self.url, _describe(exc)) from exc


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    parts = [f"{type(exc).__name__}: {exc}"]
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) not in parts[0]:
        parts.append(f"caused by {type(cause).__name__}: {cause}")
    return "; ".join(parts)


@dataclass
class FetchFailure:
    service: str
    url: str
    detail: str


class _RetryMixin:
    """Retry the HTTP exchanges of pyHanko's requests fetchers and log what failed where."""

    _service = "cert"

    def _setup_retries(self, retries: int, backoff: float, failures: list[FetchFailure]) -> None:
        self._retries = retries
        self._backoff = backoff
        self._failures = failures

    async def _with_retries(self, url: str, call: Any) -> Any:
        last: Exception | None = None
        for attempt in range(self._retries + 1):
            try:
                return await call()
            except (requests.RequestException, OSError) as exc:
                last = exc
                if attempt < self._retries:
                    await asyncio.sleep(self._backoff * (attempt + 1))
        attempts = self._retries + 1
        detail = f"{_describe(last)} (after {attempts} attempt(s))"
        self._failures.append(FetchFailure(self._service, url, detail))
        assert last is not None
        raise last


class _OCSPFetcher(_RetryMixin, RequestsOCSPFetcher):
    _service = "ocsp"

    async def _post(
        self, url: str, data: Any, *, content_type: str, acceptable_content_types: Any
    ) -> Any:  # type: ignore[override]
        parent = super()._post
        return await self._with_retries(
            url,
            lambda: parent(
                url,
                data,
                content_type=content_type,
                acceptable_content_types=acceptable_content_types,
            ),
        )


class _CRLFetcher(_RetryMixin, RequestsCRLFetcher):
    _service = "crl"

    async def _get(self, url: str, *, acceptable_content_types: Any) -> Any:  # type: ignore[override]
        parent = super()._get
        return await self._with_retries(
            url, lambda: parent(url, acceptable_content_types=acceptable_content_types)
        )


class _CertFetcher(_RetryMixin, RequestsCertificateFetcher):
    _service = "cert"

    async def _get(self, url: str, *, acceptable_content_types: Any) -> Any:  # type: ignore[override]
        parent = super()._get
        return await self._with_retries(
            url, lambda: parent(url, acceptable_content_types=acceptable_content_types)
        )


class SignetFetcherBackend(FetcherBackend):
    """pyHanko fetcher backend with per-service timeouts, retries and a failure log."""

    def __init__(self, config: RevocationConfig) -> None:
        self.config = config
        self.failures: list[FetchFailure] = []

    def get_fetchers(self) -> Fetchers:
        cfg = self.config
        budget = FetchBudget(FetchLimits())
        ocsp_fetcher = _OCSPFetcher(per_request_timeout=cfg.ocsp_timeout, budget=budget)
        crl_fetcher = _CRLFetcher(per_request_timeout=cfg.crl_timeout, budget=budget)
        cert_fetcher = _CertFetcher(per_request_timeout=cfg.crl_timeout, budget=budget)
        for fetcher in (ocsp_fetcher, crl_fetcher, cert_fetcher):
            fetcher._setup_retries(cfg.retries, cfg.retry_backoff, self.failures)
        return Fetchers(
            ocsp_fetcher=ocsp_fetcher, crl_fetcher=crl_fetcher, cert_fetcher=cert_fetcher
        )

    async def close(self) -> None:
        return None

    def service_error(self, exc: BaseException) -> FormatError:
        """Turn a validation failure into the error of the service that caused it, if any."""
        if self.failures:
            first = self.failures[0]
            others = "".join(
                f"; also {f.service.upper()} {f.url}: {f.detail}" for f in self.failures[1:]
            )
            return ServiceError(first.service, first.url, first.detail + others)
        return FormatError(
            f"could not collect validation data (certificate path or revocation status): {exc}"
        )


def trust_roots_for(key: RemoteKey, services: ServicesConfig) -> list[asn1_x509.Certificate]:
    roots = unique_certificates([*services.trust_roots, *key.self_signed_roots()])
    if not roots:
        raise FormatError(
            "B-LT and B-LTA need a trust anchor to build certificate paths: include the root "
            "certificate in RemoteKey.chain or ServicesConfig.trust_roots"
        )
    return roots


def build_validation_context(
    key: RemoteKey, services: ServicesConfig, backend: SignetFetcherBackend
) -> ValidationContext:
    """A validation context that fetches and *requires* revocation data for every path."""
    return ValidationContext(
        trust_roots=trust_roots_for(key, services),
        other_certs=list(key.chain),
        allow_fetching=True,
        revocation_mode="require",
        fetcher_backend=backend,
        # The context's time is taken when it is made; an answer fetched a few (busy) seconds
        # later is still what is wanted here, where nothing is being trusted.
        time_tolerance=timedelta(seconds=30),
    )


@dataclass
class ValidationData:
    """Certificates, OCSP responses and CRLs that make a signature verifiable long-term."""

    certificates: list[asn1_x509.Certificate]
    ocsp_responses: list[ocsp.OCSPResponse]
    crls: list[crl.CertificateList]


def _ocsp_responder_certs(responses: Iterable[ocsp.OCSPResponse]) -> list[asn1_x509.Certificate]:
    certs: list[asn1_x509.Certificate] = []
    for response in responses:
        basic = response["response_bytes"]["response"].parsed
        certs.extend(basic["certs"] or [])
    return certs


class ValidationDataCollector:
    """Gathers B-LT validation data by validating certificates, keeping what was fetched.

    Validation here is a means to gather the data, not a trust decision for a relying party;
    it still fails -- with the URL of the failing responder -- if a certificate is revoked or
    a revocation source is unreachable. Formats add the signer *before* calling sign_digest
    so that such a failure does not cost a signature (a SAD). After the signature time-stamp,
    :meth:`result_after` fetches everything again, ``RevocationConfig.grace`` seconds after
    the time-stamp's genTime, and embeds both: ETSI validators look for revocation data issued
    after the signature's time, while a validator that judges the signer's certificate at the
    time-stamp's time (pyHanko by default) refuses data issued after it and uses the earlier.
    """

    def __init__(self, key: RemoteKey, services: ServicesConfig) -> None:
        self._key, self._services = key, services
        self._start()
        self._earlier_ocsps: list[ocsp.OCSPResponse] = []
        self._earlier_crls: list[crl.CertificateList] = []
        self._targets: list[tuple[asn1_x509.Certificate, list[asn1_x509.Certificate]]] = []

    @classmethod
    async def before_signing(
        cls, key: RemoteKey, services: ServicesConfig, timestamper: SignetTimeStamper | None
    ) -> ValidationDataCollector:
        """A collector that has validated, before anything is signed, the signer's path and
        the path of the TSA's certificate (taken from a probe token): a revocation source
        that is down or a TSA that does not chain to a trust anchor then costs no signature."""
        collector = cls(key, services)
        await collector.add(key.certificate, key.chain)
        if timestamper is not None:
            probe = await timestamper.async_dummy_response("sha256")  # pyHanko caches it
            tsa_cert, tsa_certs = timestamp_token_certificates(probe)
            try:
                await collector.add(tsa_cert, tsa_certs)
            except ServiceError:
                raise
            except FormatError as exc:
                raise FormatError(
                    f"the TSA's certificate ({tsa_cert.subject.human_friendly}) does not "
                    f"validate: {exc}"
                ) from exc
        return collector

    def _start(self) -> None:
        self.backend = SignetFetcherBackend(self._services.revocation)
        self.context = build_validation_context(self._key, self._services, self.backend)
        self._certs: list[asn1_x509.Certificate] = []

    async def add(
        self, cert: asn1_x509.Certificate, helpers: Sequence[asn1_x509.Certificate]
    ) -> None:
        """Validate ``cert`` now (its revocation sources answer) and collect it later too."""
        self._targets.append((cert, list(helpers)))
        await self._validate(cert, helpers)

    async def _validate(
        self, cert: asn1_x509.Certificate, helpers: Sequence[asn1_x509.Certificate]
    ) -> None:
        validator = CertificateValidator(
            cert, intermediate_certs=list(helpers), validation_context=self.context
        )
        try:
            path = await validator.async_validate_usage(key_usage=set())
        except (PathValidationError, PathBuildingError, ValueError) as exc:
            raise self.backend.service_error(exc) from exc
        self._certs.extend(path)

    async def result_after(self, token: cms.ContentInfo) -> ValidationData:
        """The validation data of every certificate added and of the TSA that made the
        signature time-stamp ``token``, fetched anew after its genTime (plus the grace), with
        what was fetched before."""
        tsa_cert, tsa_certs = timestamp_token_certificates(token)
        if all(tsa_cert.dump() != cert.dump() for cert, _ in self._targets):
            self._targets.append((tsa_cert, tsa_certs))
        grace = self._services.revocation.grace
        gen_time = token["content"]["encap_content_info"]["content"].parsed["gen_time"].native
        # At most the grace itself: a TSA whose clock runs ahead must not stall signing.
        wait = min((gen_time - datetime.now(UTC)).total_seconds() + grace, grace)
        if wait > 0:
            await asyncio.sleep(wait)
        self._earlier_ocsps, self._earlier_crls = list(self.context.ocsps), list(self.context.crls)
        self._start()
        for cert, helpers in self._targets:
            await self._validate(cert, helpers)
        return self.result()

    def result(self) -> ValidationData:
        ocsps = unique_by_der([*self._earlier_ocsps, *self.context.ocsps])
        crls = unique_by_der([*self._earlier_crls, *self.context.crls])
        certs = unique_certificates([*self._certs, *_ocsp_responder_certs(ocsps)])
        return ValidationData(certificates=certs, ocsp_responses=ocsps, crls=crls)


def make_timestamper(services: ServicesConfig | None, level_name: str) -> SignetTimeStamper:
    if services is None or services.tsa is None:
        raise FormatError(
            f"level {level_name} needs a time-stamping service: set ServicesConfig.tsa"
        )
    return SignetTimeStamper(services.tsa)


def timestamp_token_certificates(
    token: cms.ContentInfo,
) -> tuple[asn1_x509.Certificate, list[asn1_x509.Certificate]]:
    """The TSA's signing certificate and the other certificates shipped in a token."""
    signed_data = token["content"]
    certs = [c.chosen for c in signed_data["certificates"] or [] if c.name == "certificate"]
    sid = signed_data["signer_infos"][0]["sid"]
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            ias = sid.chosen
            if cert.issuer == ias["issuer"] and cert.serial_number == ias["serial_number"].native:
                return cert, certs
        elif cert.key_identifier == sid.chosen.native:
            return cert, certs
    raise FormatError("the time-stamp token does not carry its TSA certificate (certReq was set)")

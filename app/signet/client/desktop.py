"""The desktop signing flow: a local file signed through a CSC v2 service, only hashes sent.

The document never leaves the machine. ``signet.formats`` computes the one to-be-signed hash;
:class:`RemoteSigner` has it authorised (``credentials/authorize``, SAD bound to that hash,
with the credential's OTP or PIN) and signed (``signatures/signHash``); formats embeds the
signature and, from B-T up, the time-stamp and validation data.
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from asn1crypto import algos
from asn1crypto import x509 as asn1_x509

from signet.algorithms import algorithm_name
from signet.client.csc import CscClient, CscError
from signet.client.plan import (
    DesktopError,
    SigningPlan,
    choose_credential,
    describe_key,
    explain,
    plan_signature,
)
from signet.formats import (
    FormatError,
    Level,
    RemoteKey,
    ServicesConfig,
    TsaConfig,
    check_tsa,
    compute_document_digest,
    normalise_format,
    parse_level,
    sign_document,
)
from signet.validation import load_certificates

TSA_ENV = "SIGNET_TSA_URL"
OUTPUT_SUFFIX = {"pades": ".pdf", "xades": ".xml", "jades": ".json"}


class Terminal(Protocol):
    """Where the flow asks for secrets and reports progress (the CLI: getpass and stderr)."""

    def secret(self, prompt: str) -> str: ...

    def progress(self, message: str) -> None: ...


@dataclass(frozen=True)
class DesktopSignRequest:
    """One ``signet sign`` invocation. ``tsa_url`` falls back to ``$SIGNET_TSA_URL``."""

    path: Path
    format: str
    level: str
    server: str
    user: str
    credential_id: str | None = None
    packaging: str | None = None
    output: Path | None = None
    tsa_url: str | None = None
    trust: tuple[Path, ...] = ()
    scheme: str | None = None
    hash_name: str | None = None
    timeout: float = 30.0


def default_output(path: Path, fmt: str, packaging: str) -> Path:
    """``contract.pdf`` → ``contract.signed.pdf`` (PAdES), ``contract.pdf.p7s`` (CAdES
    detached; ``.p7m`` attached), ``invoice.signed.xml`` or ``blob.bin.xml`` (XAdES),
    ``data.signed.json`` or ``blob.bin.json`` (JAdES)."""
    if fmt == "cades":
        suffix = ".p7m" if packaging == "attached" else ".p7s"
    else:
        suffix = OUTPUT_SUFFIX[fmt]
    if path.suffix.lower() == suffix:
        return path.with_name(f"{path.stem}.signed{suffix}")
    return path.with_name(path.name + suffix)


@dataclass
class RemoteSigner:
    """``sign_digest`` for formats: authorise exactly this hash, then signHash it."""

    client: CscClient
    plan: SigningPlan
    terminal: Terminal
    level: Level
    tsa_url: str | None
    calls: int = 0
    failure: BaseException | None = field(default=None, repr=False)

    def __call__(self, digest: bytes, hash_name: str, scheme: str) -> bytes:
        try:
            return self._sign(digest, hash_name, scheme)
        except BaseException as exc:
            # formats may wrap what we raise; the CLI reports the original, clearer error
            self.failure = exc
            raise

    def _sign(self, digest: bytes, hash_name: str, scheme: str) -> bytes:
        plan = self.plan
        if (hash_name, scheme) != (plan.hash_name, plan.scheme):
            raise DesktopError(
                f"internal: formats asked for {scheme}/{hash_name}, planned "
                f"{plan.scheme}/{plan.hash_name}"
            )
        self.calls += 1
        say = self.terminal.progress
        say(f"authorize: sending only the to-be-signed {hash_name} hash {digest.hex()}")
        value = ""
        if plan.factor.kind == "OTP":
            try:
                self.client.send_otp(plan.credential_id)
            except CscError as exc:
                raise explain(exc, "sending the OTP") from exc
            via = f" by {plan.factor.generator}" if plan.factor.generator else ""
            say(f"authorize: one-time code sent{via}")
            value = self.terminal.secret(f"OTP for credential {plan.credential_id}: ").strip()
        elif plan.factor.kind == "PIN":
            value = self.terminal.secret(f"PIN for credential {plan.credential_id}: ")
        if plan.factor.kind and not value:
            raise DesktopError(f"no {plan.factor.kind} given; nothing was signed")
        try:
            sad = self.client.authorize(
                plan.credential_id,
                [digest],
                hash_name,
                num_signatures=1,
                factor=plan.factor.kind,
                value=value,
            )
        except CscError as exc:
            raise explain(exc, "authorizing the signature") from exc
        say("authorize: SAD issued for this one hash")
        try:
            (signature,) = self.client.sign_hash(
                plan.credential_id, sad, [digest], hash_name, plan.sign_algo, plan.sign_algo_params
            )
        except CscError as exc:
            raise explain(exc, "signing the hash") from exc
        if scheme == "ecdsa":
            signature = _ecdsa_der(signature)
        say(f"sign: signatures/signHash signed it ({algorithm_name(plan.sign_algo)})")
        if self.level.at_least(Level.B_T):
            steps = [f"time-stamp from {self.tsa_url}"]
            if self.level.at_least(Level.B_LT):
                steps.append("validation data (certificates, OCSP/CRL)")
            if self.level is Level.B_LTA:
                steps.append("archive time-stamp")
            say("timestamp/validation data: adding " + ", ".join(steps))
        return signature


def _ecdsa_der(signature: bytes) -> bytes:
    """CSC leaves the ECDSA encoding to the service: accept raw r||s and make it DER."""
    try:
        parsed = algos.DSASignature.load(signature, strict=True)
        parsed.native  # noqa: B018 - a full parse: raw r||s fails here
        return signature
    except ValueError:
        if len(signature) % 2:
            raise DesktopError(
                "the service returned an ECDSA signature that is neither DER nor r||s"
            ) from None
        return algos.DSASignature.from_p1363(signature).dump()


def _read_tsa_url(request: DesktopSignRequest, level: Level) -> str | None:
    url = request.tsa_url or os.environ.get(TSA_ENV) or None
    if level.at_least(Level.B_T) and not url:
        raise DesktopError(
            f"level {level.value} needs a time-stamping service: pass --tsa URL or set {TSA_ENV}"
        )
    if url and urlsplit(url).scheme not in ("http", "https"):
        raise DesktopError(f"--tsa {url!r} is not an http(s) URL")
    return url if level.at_least(Level.B_T) else None


def _check_tsa(url: str, timeout: float) -> None:
    """The time-stamp is asked for after the hash is signed: a TSA that does not answer would
    waste the one-time code (and the SAD), so it is asked for a token first."""
    try:
        check_tsa(TsaConfig(url=url, timeout=timeout))
    except FormatError as exc:
        raise DesktopError(
            f"the time-stamping service (TSA) {url} does not answer with a time-stamp: "
            f"{getattr(exc, 'detail', exc)}; nothing was signed and no one-time code was "
            f"used: check --tsa or {TSA_ENV}"
        ) from exc


def _check_input(path: Path) -> None:
    if not path.exists():
        raise DesktopError(f"{path}: no such file")
    if not path.is_file():
        raise DesktopError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise DesktopError(f"{path}: not readable")


def _trust_roots(paths: Sequence[Path]) -> list[asn1_x509.Certificate]:
    roots: list[asn1_x509.Certificate] = []
    for path in paths:
        try:
            roots.extend(load_certificates(path))
        except (OSError, ValueError) as exc:
            raise DesktopError(f"--trust {path}: {exc}") from exc
    return roots


def sign_file(request: DesktopSignRequest, terminal: Terminal) -> Path:
    """Sign ``request.path``; returns the path written. Raises DesktopError, CscError or
    FormatError with a message for the user; the output appears only when complete."""
    try:
        fmt, packaging = normalise_format(request.format, request.packaging)
        level = parse_level(request.level)
    except FormatError as exc:
        raise DesktopError(str(exc)) from exc
    path = request.path
    _check_input(path)
    output = request.output or default_output(path, fmt, packaging)
    if output.exists() and output.resolve() == path.resolve():
        raise DesktopError(
            f"{output}: the output would overwrite the document; choose another --output"
        )
    if not output.parent.is_dir():
        raise DesktopError(f"{output.parent}: no such directory for the output")
    tsa_url = _read_tsa_url(request, level)
    trust_roots = _trust_roots(request.trust)

    say = terminal.progress
    client = CscClient(request.server, timeout=request.timeout)
    try:
        service = client.info()
    except CscError as exc:
        raise explain(exc, f"contacting {client.base_url}") from exc
    specs = service.get("specs")
    if tsa_url:
        _check_tsa(tsa_url, request.timeout)
        say(f"time-stamping: {tsa_url} answers")
    say(
        f"login: {service.get('name') or 'CSC service'} at {client.base_url}"
        + (f" (CSC {specs})" if specs else "")
    )
    password = terminal.secret(f"Password for {request.user}: ")
    try:
        client.login(request.user, password)
    except CscError as exc:
        if exc.status in (400, 401):
            raise DesktopError(
                f"login as {request.user} at {client.base_url} failed: {exc.description}"
            ) from exc
        raise explain(exc, "logging in") from exc
    say(f"login: signed in as {request.user}")
    try:
        credential_id = choose_credential(client, request.credential_id, request.user)
        plan = plan_signature(
            client,
            credential_id,
            user=request.user,
            scheme=request.scheme,
            hash_name=request.hash_name,
        )
        subject = plan.certificates[0].subject.human_friendly
        activation = {"OTP": "one-time code", "PIN": "PIN"}.get(plan.factor.kind, "no factor")
        say(
            f"credential: {credential_id} ({subject}; {describe_key(plan)}; "
            f"{algorithm_name(plan.sign_algo)}; {activation})"
        )
        document_digest = compute_document_digest(path, plan.hash_name)
        say(
            f"document hash: {path.name}, {path.stat().st_size} bytes, {plan.hash_name} "
            f"{document_digest.hex()}"
        )
        signer = RemoteSigner(client, plan, terminal, level, tsa_url)
        key = RemoteKey.from_certificates(plan.certificates[0], plan.certificates[1:], signer)
        services = ServicesConfig(
            tsa=TsaConfig(url=tsa_url, timeout=request.timeout) if tsa_url else None,
            trust_roots=tuple(trust_roots),
        )
        mime_type = mimetypes.guess_type(path.name)[0]
        _write_signed(
            path,
            output,
            signer,
            fmt=fmt,
            level=level,
            key=key,
            packaging=packaging,
            services=services,
            hash_name=plan.hash_name,
            scheme=plan.scheme,
            mime_type=mime_type,
        )
    finally:
        with contextlib.suppress(CscError):  # the token expires anyway
            client.revoke()
    say(f"written: {output} ({output.stat().st_size} bytes, {fmt} {packaging} {level.value})")
    return output


def _write_signed(
    path: Path,
    output: Path,
    signer: RemoteSigner,
    *,
    fmt: str,
    level: Level,
    key: RemoteKey,
    packaging: str,
    services: ServicesConfig,
    hash_name: str,
    scheme: str,
    mime_type: str | None,
) -> None:
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed into place on success
        dir=output.parent, prefix=f".{output.name}.", suffix=".part", delete=False
    )
    try:
        with handle:
            sign_document(
                path,
                handle,
                format=fmt,
                level=level,
                key=key,
                packaging=packaging,
                services=services,
                hash_algorithm=hash_name,
                scheme=scheme,
                document_name=path.name,
                mime_type=mime_type,
            )
        os.replace(handle.name, output)
    except FormatError as exc:
        _unlink(handle.name)
        if signer.failure is not None and signer.failure is not exc:
            raise signer.failure from None
        hint = ""
        if level.at_least(Level.B_LT) and "validation data" in str(exc):
            hint = "; B-LT paths end at a trust anchor: pass the TSA's root with --trust CERT"
        if signer.calls:
            raise DesktopError(
                f"the hash was signed, but the signature could not be completed: {exc}{hint}"
            ) from exc
        raise DesktopError(f"{exc}{hint}") from exc
    except BaseException as exc:
        _unlink(handle.name)
        if signer.failure is not None and signer.failure is not exc:
            raise signer.failure from None
        raise


def _unlink(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name)

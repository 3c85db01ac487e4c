#!/usr/bin/env python3
"""signDoc benchmark: PAdES through Signet's CSC API against pyHanko signing locally on the HSM.

A plain script, not a pytest test:

    .venv/bin/python tests/bench/bench_signdoc.py [--sizes 1,10,100] [--runs 5] [--lta-sizes 1,10]

In one run it stands up a throw-away Signet (SoftHSM token, database, `signet init`, one user,
one RSA-2048 PIN credential, `signet serve` with ONE gunicorn worker, gthread with the default
4 threads; helpers imported from bench_sign.py) next to the certomancer test PKI on 127.0.0.1 (TSA, OCSP, CRLs), and prints:

* PAdES B-B through the API (authorize with the PDF's SHA-256 + PIN, then signDoc) for PDFs
  of 1, 10 and 100 MB: wall time per document as the client sees it (median of --runs), the
  client streaming both ways (the request is base64-encoded from the file as it is sent, the
  answer decoded to a file as it arrives; or, in Signet's multipart transport, raw bytes both
  ways: the request part first, or last so that the PDF is hashed while it is sent, and the
  whole signed PDF back or only what signing appended), and the worker's peak RSS increase
  during the signDoc request: /proc/<worker>/clear_refs is written with "5" (resets VmHWM to
  the current RSS) and VmRSS read before the request, VmHWM after;
* the same PDF signed by pyHanko locally (PdfSigner.sign_pdf, IncrementalPdfFileWriter over
  the input file, output streamed to a file, with the 1 MiB buffers Signet's PAdES asks pyHanko
  for instead of its default 4 KiB) with the credential's own key in the same SoftHSM
  token (pyhanko.sign.pkcs11.PKCS11Signer), in a fresh subprocess per run: the time of the
  signing call (token already logged in, libraries imported) and VmHWM - VmRSS before it;
* PAdES B-LTA through the API (TSA, OCSP of the TSA's chain, Signet's own CRL at
  /pki/local.crl via SIGNET_WEB__BASE_URL) for 1 and 10 MB.

One output of each kind (API B-B, local B-B, API B-LTA) is validated with pyHanko (intact,
valid, trusted). Everything lives in one temporary directory removed at the end; the database
is chosen like bench_sign.py ($SIGNET_BENCH_DB, else the tests/services/postgres cluster if up,
else SQLite) and dropped at the end.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import io
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pybase64

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "pki"))

import bench_sign as bs  # noqa: E402

KEY = "rsa-2048"
SIGN_ALGO = bs.SIGN_ALGO["rsa"]
REQUEST_TIMEOUT = 150  # gunicorn's worker timeout is 120 s
CHILD_TIMEOUT = 120
GOAL = 1.5
# Signet's binary transport: the request part first, or last; the whole answer or what was
# appended.
RAW_VIAS = ("multipart", "SAD last", "appended")


def proc_status(pid: int, field: str) -> int:
    """A kB value of /proc/<pid>/status (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, own processes)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# -- local pyHanko signing (runs in a subprocess) --------------------------------------------
def child(spec: dict[str, Any]) -> None:
    os.environ.update(spec["env"])
    from asn1crypto import x509
    from pyhanko.config.pkcs11 import TokenCriteria
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session

    from signet.formats._io import CHUNK_SIZE

    certs = [x509.Certificate.load(base64.b64decode(c)) for c in spec["certs"]]
    session = open_pkcs11_session(
        bs.MODULE, token_criteria=TokenCriteria(label=bs.TOKEN_LABEL), user_pin=bs.USER_PIN
    )
    try:
        signer = PKCS11Signer(
            session, key_label=spec["key_label"], signing_cert=certs[0], ca_chain=certs[1:],
            bulk_fetch=False,
        )  # fmt: skip
        meta = signers.PdfSignatureMetadata(
            field_name="Signature1", md_algorithm="sha256",
            subfilter=fields.SigSeedSubFilter.PADES,
        )  # fmt: skip
        base = proc_status(os.getpid(), "VmRSS")
        started = time.perf_counter()
        with open(spec["input"], "rb") as inf, open(spec["output"], "w+b") as outf:
            # Signet's buffers (formats/pades.py), not pyHanko's default 4 KiB: the copy of
            # the input and the hashing of the byte ranges then cost the same on both sides.
            writer = IncrementalPdfFileWriter(inf)
            writer.IO_CHUNK_SIZE = CHUNK_SIZE
            signers.PdfSigner(meta, signer=signer).sign_pdf(
                writer, output=outf, chunk_size=CHUNK_SIZE
            )
        seconds = time.perf_counter() - started
        # Not ru_maxrss: Linux keeps it across fork+exec, so it would show this bench's own
        # RSS (the 100 MB PDF and its JSON body) at the fork. VmHWM belongs to the new image.
        peak = proc_status(os.getpid(), "VmHWM")
    finally:
        session.close()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "base_kib": base, "peak_kib": peak, "maxrss": maxrss}))


def run_local(env: dict[str, str], key_label: str, certs: list[str], pdf: Path, out: Path) -> dict:
    spec = {"env": env, "key_label": key_label, "certs": certs, "input": str(pdf),
            "output": str(out)}  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True, text=True, check=False, timeout=CHILD_TIMEOUT,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"local signing subprocess failed:\n{result.stderr[-3000:]}")
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    answer["process_seconds"] = time.perf_counter() - started
    return answer


# -- API ---------------------------------------------------------------------------------------
ENCODE_CHUNK = 3 * 256 * 1024  # bytes of PDF base64-encoded at a time (a multiple of 3)
READ_CHUNK = 1024 * 1024


def request_parts(cred_id: str, sad: str, level: str, pdf: Path) -> tuple[bytes, int, bytes]:
    """The signDoc JSON before and after the document, and the document's base64 length."""
    head = json.dumps({
        "credentialID": cred_id, "SAD": sad,
        "documents": [{"document": "@", "signature_format": "P",
                       "conformance_level": f"Ades-{level}",
                       "signed_envelope_property": "Enveloped", "signAlgo": SIGN_ALGO}],
    }).encode()  # fmt: skip
    before, after = head.split(b'"@"')
    return before + b'"', 4 * -(-pdf.stat().st_size // 3), b'"' + after


def body_stream(before: bytes, pdf: Path, after: bytes) -> Iterator[bytes]:
    """The request body, base64-encoded from the file while it is sent."""
    yield before
    with pdf.open("rb") as source:
        while chunk := source.read(ENCODE_CHUNK):
            yield pybase64.b64encode(chunk)
    yield after


def decode_document(resp: http.client.HTTPResponse, out: Path) -> int:
    """Decode the one DocumentWithSignature of a signDoc answer into ``out`` as it arrives."""
    prefix = b'{"DocumentWithSignature":["'
    pending = b""
    while len(pending) < len(prefix):
        chunk = resp.read(READ_CHUNK)
        if not chunk:
            raise SystemExit(f"signDoc answer too short: {pending!r}")
        pending += chunk
    if not pending.startswith(prefix):
        raise SystemExit(f"unexpected signDoc answer: {pending[:200]!r}")
    pending = pending[len(prefix) :]
    size = 0
    with out.open("wb") as sink:
        while (quote := pending.find(b'"')) < 0:
            cut = len(pending) - len(pending) % 4
            size += sink.write(pybase64.b64decode(memoryview(pending)[:cut], validate=True))
            chunk = resp.read(READ_CHUNK)
            if not chunk:
                raise SystemExit("signDoc answer ended inside the document")
            pending = pending[cut:] + chunk
        size += sink.write(pybase64.b64decode(pending[:quote], validate=True))
    rest = pending[quote:] + resp.read()
    if rest != b'"]}\n':
        raise SystemExit(f"unexpected end of the signDoc answer: {rest[:200]!r}")
    return size


BOUNDARY = "signet-bench-" + "7f3a9c1e5b2d4086a1c3e5f7092b4d6e"  # as long as urllib3's


def request_json(cred_id: str, sad: str, level: str, appended: bool = False) -> str:
    """signDoc's JSON for one PAdES document sent as a multipart part."""
    return json.dumps({
        "credentialID": cred_id, "SAD": sad, "signet_appended": appended,
        "documents": [{"signature_format": "P", "conformance_level": f"Ades-{level}",
                       "signed_envelope_property": "Enveloped", "signAlgo": SIGN_ALGO}],
    })  # fmt: skip


def multipart_parts(cred_id: str, sad: str, level: str) -> tuple[bytes, bytes]:
    """A multipart/form-data signDoc around one raw PDF part: what goes before and after."""
    request = request_json(cred_id, sad, level)
    before = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="request"\r\n'
        f"Content-Type: application/json\r\n\r\n{request}\r\n--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="document"; filename="in.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    )
    return before.encode(), f"\r\n--{BOUNDARY}--\r\n".encode()


def send_raw(
    conn: http.client.HTTPConnection,
    headers: dict[str, str],
    before: bytes,
    pdf: Path,
    after: bytes,
) -> None:
    """Send a multipart signDoc as a client of large files would: the PDF goes from its file
    to the socket with sendfile(2), not through Python."""
    conn.putrequest("POST", "/csc/v2/signatures/signDoc")
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders(before)
    assert conn.sock is not None
    with pdf.open("rb") as source:
        conn.sock.sendfile(source)
    conn.send(after)


def send_sad_last(
    conn: http.client.HTTPConnection,
    headers: dict[str, str],
    pdf: Path,
    authorize: Any,
    request_part: Any,
    copy: Any = None,
) -> float:
    """Send a multipart signDoc whose request part comes last, chunked: the PDF is read once,
    1 MiB at a time, each piece hashed, sent (and written to ``copy`` if given); then the hash
    is authorized (on another connection) while this request waits, and the request part
    with the SAD closes the body. Returns the authorize call's time. (One thread doing it all
    was faster here than sendfile(2) with hashing and copying on threads beside it: on two
    CPUs shared with the server, more threads only compete.)"""
    conn.putrequest("POST", "/csc/v2/signatures/signDoc")
    for name, value in {**headers, "Transfer-Encoding": "chunked"}.items():
        conn.putheader(name, value)
    conn.endheaders()
    assert conn.sock is not None
    sock = conn.sock

    def chunk(data: bytes | memoryview) -> None:
        sock.sendall(b"%x\r\n" % len(data))
        sock.sendall(data)
        sock.sendall(b"\r\n")

    chunk(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="document"; '
        'filename="in.pdf"\r\nContent-Type: application/pdf\r\n\r\n'.encode()
    )
    digest = hashlib.sha256()
    buffer = memoryview(bytearray(READ_CHUNK))
    with pdf.open("rb", buffering=0) as source:
        while count := source.readinto(buffer):
            digest.update(buffer[:count])
            chunk(buffer[:count])
            if copy is not None:
                copy.write(buffer[:count])
    started = time.perf_counter()
    sad = authorize(base64.b64encode(digest.digest()).decode())
    took = time.perf_counter() - started
    chunk(
        f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="request"\r\n'
        f"Content-Type: application/json\r\n\r\n{request_part(sad)}\r\n--{BOUNDARY}--\r\n".encode()
    )
    sock.sendall(b"0\r\n\r\n")
    return took


def receive_raw(resp: http.client.HTTPResponse, out: Path, after: int = 0) -> int:
    """Copy a signDoc answer of one raw output (Accept: application/octet-stream) to ``out``;
    with ``after``, the answer is what signing appended to the first ``after`` bytes of the
    document, already in ``out``: it goes at their end."""
    if resp.headers["Content-Disposition"] != 'attachment; name="DocumentWithSignature"':
        raise SystemExit(f"unexpected signDoc answer: {resp.headers}")
    if after and resp.headers["Signet-Appended-To"] != str(after):
        raise SystemExit(f"not an appended answer: {resp.headers}")
    size = 0
    buffer = memoryview(bytearray(READ_CHUNK))
    with out.open("r+b" if after else "wb") as sink:
        sink.seek(after)
        sink.truncate()
        while count := resp.readinto(buffer):
            size += sink.write(buffer[:count])
    if size != int(resp.headers["Content-Length"]):
        raise SystemExit("signDoc answer shorter than its Content-Length")
    return after + size


def sad_for(bench: bs.Bench, token: str, cred_id: str, digest: str) -> str:
    status, answer = bs.authorize(bs.Api(bench.port, token), cred_id, [digest], 1)
    if status != 200:
        raise SystemExit(f"authorize: {status} {answer}")
    return str(answer["SAD"])


def api_sign(
    bench: bs.Bench,
    token: str,
    cred_id: str,
    pdf: Path,
    level: str,
    worker: int,
    reject: bool = False,
    via: str = "JSON",
) -> dict[str, Any]:
    """authorize + signDoc for one PDF file; client-side phases, worker CPU and peak RSS.

    ``via`` "JSON": the client streams both ways (base64-encodes the file while sending,
    decodes the answer into bench.dir/api-out.pdf while receiving), so its own copies do not
    weigh on the figures. "multipart": Signet's binary transport instead, the PDF a raw
    multipart/form-data part and the signed PDF the answer's body (Accept:
    application/octet-stream); no base64. "SAD last": the same, but the request part last, so
    that the client hashes the PDF while sending it and authorizes before the request part
    (send_sad_last). "appended": "SAD last" with signet_appended: the client writes its copy
    of the PDF to the output file while sending it, and the answer, only what signing
    appended, goes at its end. ``reject`` (JSON only): the SAD is bound to another digest, so
    the server reads, decodes and hashes the document and then refuses it (400): the cost of
    merely taking the request in."""
    t0 = time.perf_counter()
    multipart = via != "JSON"
    streamed = via in ("SAD last", "appended")
    sad = ""  # streamed: authorized while the request is being sent
    if not streamed:
        with pdf.open("rb") as source:
            real = hashlib.file_digest(source, "sha256").digest()
        digest = base64.b64encode(hashlib.sha256(b"other").digest() if reject else real)
        sad = sad_for(bench, token, cred_id, digest.decode())
    t_auth = time.perf_counter()
    if multipart:
        body, headers = (
            None,
            {
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                "Accept": "application/octet-stream",
            },
        )
        if not streamed:
            before, after = multipart_parts(cred_id, sad, level)
            length = len(before) + pdf.stat().st_size + len(after)
    else:
        before, encoded, after = request_parts(cred_id, sad, level, pdf)
        length = len(before) + encoded + len(after)
        body, headers = body_stream(before, pdf, after), {"Content-Type": "application/json"}
    reset = reset_peak(worker)
    rss_before = proc_status(worker, "VmRSS")
    cpu_before = bs.cpu_seconds([worker]).get(worker, 0.0)
    t_send = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", bench.port, timeout=REQUEST_TIMEOUT)
    out = bench.dir / "api-out.pdf"
    try:
        headers["Authorization"] = f"Bearer {token}"
        if streamed:
            with contextlib.ExitStack() as stack:
                copy = stack.enter_context(out.open("wb")) if via == "appended" else None
                auth_took = send_sad_last(
                    conn,
                    headers,
                    pdf,
                    lambda digest: sad_for(bench, token, cred_id, digest),
                    lambda sad: request_json(cred_id, sad, level, copy is not None),
                    copy,
                )
        elif body is None:
            send_raw(conn, {**headers, "Content-Length": str(length)}, before, pdf, after)
        else:
            headers["Content-Length"] = str(length)
            conn.request("POST", "/csc/v2/signatures/signDoc", body, headers)
        resp = conn.getresponse()
        t_first = time.perf_counter()
        if resp.status != 200:
            raw = resp.read()
        else:
            appended_to = pdf.stat().st_size if via == "appended" else 0
            size = receive_raw(resp, out, appended_to) if multipart else decode_document(resp, out)
            body_mb = int(resp.headers["Content-Length"]) / 2**20
    finally:
        conn.close()
    t_end = time.perf_counter()
    cpu_after = bs.cpu_seconds([worker]).get(worker, 0.0)
    hwm = proc_status(worker, "VmHWM")
    if reject:
        if resp.status != 400 or b"not authorized" not in raw:
            raise SystemExit(f"signDoc with a foreign SAD: {resp.status} {raw[:300]!r}")
        return {"http": t_end - t_send, "srv_cpu": cpu_after - cpu_before,
                "peak_kib": hwm - rss_before if reset else None}  # fmt: skip
    if resp.status != 200:
        raise SystemExit(f"signDoc {level}: {resp.status} {raw[:500]!r}\n" + bench.server_tail())
    if streamed:  # authorized in the middle of sending: its own time
        t_auth, t_send = t0 + auth_took, t_send + auth_took
    return {
        "seconds": t_end - t0, "auth": t_auth - t0, "send": t_first - t_send,
        "receive": t_end - t_first, "srv_cpu": cpu_after - cpu_before,
        "peak_kib": hwm - rss_before if reset else None, "rss_before": rss_before,
        "body_mb": body_mb, "signed": out, "size": size,
    }  # fmt: skip


# -- validation --------------------------------------------------------------------------------
def validate(path: Path, roots: list[Any], lta: bool) -> str:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    reader = PdfFileReader(io.BytesIO(path.read_bytes()))
    context = ValidationContext(trust_roots=roots, allow_fetching=True)
    status = validate_pdf_signature(reader.embedded_signatures[0], context)
    if not (status.intact and status.valid and status.trusted):
        raise SystemExit("validation failed:\n" + status.pretty_print_details())
    what = "intact+valid+trusted"
    if lta:
        if len(reader.embedded_signatures) != 2 or "/DSS" not in reader.root:
            raise SystemExit("B-LTA output lacks the document time-stamp or the DSS")
        ts = status.timestamp_validity
        if ts is None or not ts.intact or not ts.valid:
            raise SystemExit("B-LTA signature time-stamp not valid")
        what += ", sig TS ok, DSS + doc TS present"
    return what


# -- orchestration -----------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100", help="PDF sizes in MB for B-B")
    parser.add_argument("--lta-sizes", default="1,10", help="PDF sizes in MB for B-LTA")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return 0
    if not Path(bs.MODULE).exists():
        print(f"bench: {bs.MODULE} missing (apt-get install softhsm2)", file=sys.stderr)
        return 1

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    lta_sizes = [int(s) for s in args.lta_sizes.split(",") if s]
    started = time.monotonic()
    load_start = os.getloadavg()
    bs.KEYS = [KEY]
    bs.WORKERS = 1  # one gunicorn worker: its VmHWM is the request's
    bench = bs.Bench()
    try:
        with contextlib.ExitStack() as stack:
            rows, lta_rows, checks, notes = run(bench, stack, sizes, lta_sizes, args.runs)
    finally:
        bench.cleanup()
    elapsed = time.monotonic() - started
    print(report(rows, lta_rows, checks, notes, bench, load_start, elapsed, args.runs), flush=True)
    return 0


def run(bench: bs.Bench, stack: contextlib.ExitStack, sizes: list[int], lta_sizes: list[int],
        runs: int) -> tuple[list, list, list, list]:  # fmt: skip
    from asn1crypto import pem
    from asn1crypto import x509 as asn1_x509
    from make_pdf import write_pdf
    from signet_test_pki import serve_test_pki

    pki = stack.enter_context(serve_test_pki(bench.dir / "pki"))
    bs.log(f"certomancer PKI on {pki.base_url}")
    root_pem = bench.dir / "certomancer-root.pem"
    root_pem.write_bytes(pem.armor("CERTIFICATE", pki.root.dump()))
    # Bench.setup() copies os.environ (minus SIGNET_*) and adds the HSM/database settings;
    # the port must be known before `signet init` so the CA's certificates name its CRL URL.
    port = bs.free_port()
    extra = {
        "SIGNET_WEB__BASE_URL": f"http://127.0.0.1:{port}",
        "SIGNET_FORMATS__TSA_URL": pki.tsa_url,
        "SIGNET_FORMATS__TRUST_ROOTS": json.dumps([str(root_pem)]),
    }
    plain_cli = bench.cli

    def cli(*cli_args: str, stdin: str | None = None) -> str:
        bench.env.update(extra)  # before `signet init` and `credentials create` issue certs
        return plain_cli(*cli_args, stdin=stdin)

    bench.cli = cli  # type: ignore[method-assign]
    bench.setup()
    bench.env.update(extra)
    bs.free_port = lambda: port  # Bench.serve() picks the port we already announced
    bench.serve()
    workers = bs.children(bench.server.pid)  # type: ignore[union-attr]
    if len(workers) != 1:
        raise SystemExit(f"expected one gunicorn worker, found {workers}")
    worker = workers[0]
    token = bench.login()
    cred_id = bench.credentials[KEY]
    api = bs.Api(port, token)
    status, info = api.post("credentials/info", {"credentialID": cred_id, "certificates": "chain"})
    api.close()
    if status != 200:
        raise SystemExit(f"credentials/info: {status} {info}")
    certs_b64 = info["cert"]["certificates"]
    signet_root = asn1_x509.Certificate.load(base64.b64decode(certs_b64[-1]))
    roots = [signet_root, pki.root]

    # Warm the worker (imports, HSM session, CRL signing) with a small signDoc of each level.
    warm = write_pdf(bench.dir / "warm.pdf", 1024)
    api_sign(bench, token, cred_id, warm, "B-B", worker)
    api_sign(bench, token, cred_id, warm, "B-LTA", worker)
    bs.log(f"worker {worker} warm, VmRSS {proc_status(worker, 'VmRSS') / 1024:.0f} MiB")

    rows: list[dict[str, Any]] = []
    checks: list[str] = []
    notes: list[str] = []
    for size in sizes:
        path = write_pdf(bench.dir / f"in-{size}mb.pdf", size * 2**20)
        api_runs = []
        for i in range(runs):
            r = api_sign(bench, token, cred_id, path, "B-B", worker)
            if i == 0 and size == sizes[0]:
                checks.append(f"API B-B {size} MB: " + validate(r["signed"], roots, lta=False))
            r.pop("signed")
            r.pop("size")
            api_runs.append(r)
        raw_runs: dict[str, list[dict[str, Any]]] = {}
        for via in RAW_VIAS:
            raw_runs[via] = []
            for i in range(runs):
                r = api_sign(bench, token, cred_id, path, "B-B", worker, via=via)
                # The largest PDF assembled from its appended bytes is validated too.
                if i == 0 and (size == sizes[0] or (via, size) == ("appended", sizes[-1])):
                    checks.append(
                        f"API B-B {via} {size} MB: " + validate(r["signed"], roots, lta=False)
                    )
                r.pop("signed")
                r.pop("size")
                raw_runs[via].append(r)
        probe = api_sign(bench, token, cred_id, path, "B-B", worker, reject=True)
        local_runs = []
        out = bench.dir / "local-out.pdf"
        for i in range(runs):
            r = run_local(bench.hsm_env, cred_id, certs_b64, path, out)
            if i == 0 and size == sizes[0]:
                checks.append(f"local B-B {size} MB: " + validate(out, roots, lta=False))
            local_runs.append(r)
        out.unlink(missing_ok=True)
        if bs.children(bench.server.pid) != [worker]:  # type: ignore[union-attr]
            raise SystemExit("the gunicorn worker was replaced during the run")
        for via, runs_of in (("JSON", api_runs), *raw_runs.items()):
            row = summarize(size, runs_of, local_runs)
            row["via"] = via
            row["reject"] = probe if via == "JSON" else None
            rows.append(row)
            bs.log(f"{size} MB B-B {via}: API {row['api_s']:.3f} s, local "
                   f"{row['local_s']:.3f} s, ratio {row['ratio']:.2f}, worker peak "
                   f"+{row['api_peak']} MiB")  # fmt: skip
        if size not in lta_sizes:
            path.unlink()

    lta_rows = []
    for size in lta_sizes:
        path = bench.dir / f"in-{size}mb.pdf"
        if not path.exists():
            write_pdf(path, size * 2**20)
        api_runs = []
        for i in range(runs):
            r = api_sign(bench, token, cred_id, path, "B-LTA", worker)
            if i == 0 and size == lta_sizes[0]:
                checks.append(f"API B-LTA {size} MB: " + validate(r["signed"], roots, lta=True))
            r.pop("signed")
            r["grown"] = r.pop("size") - path.stat().st_size
            api_runs.append(r)
        lta_rows.append({"size": size, **med(api_runs)})
        bs.log(f"{size} MB B-LTA: API {lta_rows[-1]['seconds']:.3f} s")
        path.unlink()
    return rows, lta_rows, checks, notes


def med(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for key in runs[0]:
        values = [r[key] for r in runs if r[key] is not None]
        if key == "peak_kib":
            out[key] = max(values) if values else None
        elif values and isinstance(values[0], (int, float)):
            out[key] = statistics.median(values)
    return out


def summarize(size: int, api_runs: list[dict], local_runs: list[dict]) -> dict[str, Any]:
    a, loc = med(api_runs), med(local_runs)
    return {
        "size": size, "api_s": a["seconds"], "local_s": loc["seconds"],
        "local_proc_s": loc["process_seconds"], "ratio": a["seconds"] / loc["seconds"],
        "api_peak": round(a["peak_kib"] / 1024) if a.get("peak_kib") is not None else "?",
        "local_peak": round(max(r["peak_kib"] - r["base_kib"] for r in local_runs) / 1024),
        "local_rss": round(max(r["peak_kib"] for r in local_runs) / 1024),
        "auth": a["auth"], "send": a["send"], "receive": a["receive"],
        "srv_cpu": a["srv_cpu"], "rss_before": round(a["rss_before"] / 1024),
        "body_mb": a["body_mb"],
    }  # fmt: skip


def mib(kib: int | None) -> str:
    return "?" if kib is None else f"{round(kib / 1024)} MiB"


def report(rows: list, lta_rows: list, checks: list[str], notes: list[str], bench: bs.Bench,
           load_start: tuple[float, float, float], elapsed: float, runs: int) -> str:  # fmt: skip
    load_end = os.getloadavg()
    head = (f"{'PDF':>6} {'via':>9} {'API s':>7} {'local s':>8} {'API/local':>9} {'goal':>9} "
            f"{'-auth':>6} {'API peak+':>9} {'local peak+':>11} {'|':>1} {'auth':>6} "
            f"{'send+sign':>9} {'receive':>7} {'srv CPU':>8} {'resp MB':>7} {'|':>1} "
            f"{'in HTTP':>7} {'in CPU':>6} {'in peak+':>8}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in rows:
        goal = f"<{GOAL:g}x " + ("ok" if r["ratio"] < GOAL else "MISS")
        probe = r["reject"]
        taken_in = (
            f"{probe['http']:>7.3f} {probe['srv_cpu']:>6.2f} {mib(probe['peak_kib']):>8}"
            if probe
            else f"{'-':>7} {'-':>6} {'-':>8}"
        )
        lines.append(
            f"{r['size']:>3} MB {r['via']:>9} {r['api_s']:>7.3f} {r['local_s']:>8.3f} {r['ratio']:>8.2f}x "
            f"{goal:>9} {(r['api_s'] - r['auth']) / r['local_s']:>5.2f}x {str(r['api_peak']) + ' MiB':>9} {str(r['local_peak']) + ' MiB':>11} | "
            f"{r['auth']:>6.3f} {r['send']:>9.3f} {r['receive']:>7.3f} "
            f"{r['srv_cpu']:>8.2f} {r['body_mb']:>7.1f} | {taken_in}"
        )  # fmt: skip
    lta_head = (
        f"{'PDF':>6} {'API s':>7} {'send+sign':>9} {'receive':>7} {'srv CPU':>8} "
        f"{'API peak+':>9} {'+bytes':>8}"
    )
    lta_lines = [lta_head, "-" * len(lta_head)]
    for r in lta_rows:
        peak = f"{round(r['peak_kib'] / 1024)} MiB" if r.get("peak_kib") is not None else "?"
        lta_lines.append(f"{r['size']:>3} MB {r['seconds']:>7.3f} {r['send']:>9.3f} "
                         f"{r['receive']:>7.3f} {r['srv_cpu']:>8.2f} {peak:>9} "
                         f"{r['grown']:>8.0f}")  # fmt: skip
    return "\n".join([
        "",
        f"Signet signDoc benchmark: PAdES, RSA-2048 PIN credential in SoftHSM, 1 gunicorn "
        f"worker (gthread), median of {runs} runs.",
        f"Database: {bench.db_label}. {os.cpu_count()} CPUs; load average "
        f"{load_start[0]:.2f} at start, {load_end[0]:.2f} at end (shared machine: other work "
        f"skews the figures). Bench took {elapsed:.0f} s.",
        "",
        "PAdES B-B: API (authorize + signDoc over HTTP) vs pyHanko locally on the same HSM key",
        "  via: JSON = CSC's own transport, the PDF base64 in the JSON both ways; multipart = "
        "Signet's binary transport, the PDF a raw multipart/form-data part and the signed PDF "
        "the answer's raw body (Accept: application/octet-stream; no base64 anywhere); SAD "
        "last = multipart with the request part after the PDF's (chunked): the client hashes "
        "the PDF while it sends it and authorizes before it sends the request part; appended = "
        "SAD last asking for only what signing appended (signet_appended): the client writes "
        "its copy of the PDF to the output file while it sends it and appends the answer.",
        "  API s: client wall time per document = sha256 of the file + authorize + signDoc, "
        "the client streaming both ways (base64-encoding the file while it sends, decoding the "
        "answer to a file while it receives); the output is a whole signed PDF on disk in "
        "every row.",
        "  -auth: API/local without the authorize call (PIN check + SAD), i.e. signDoc alone "
        "(in the SAD last and appended rows, the authorize call made while signDoc waits).",
        "  local s: pyHanko PdfSigner.sign_pdf (IncrementalPdfFileWriter on the input file, "
        "output to a w+b file, 1 MiB buffers as in Signet, PKCS11Signer on the logged-in "
        "token) in a fresh subprocess; imports and login not counted.",
        "  API peak+: gunicorn worker VmHWM after the signDoc request minus its VmRSS before it "
        "(VmHWM reset via /proc/<pid>/clear_refs = 5); max of the runs.",
        "  local peak+: subprocess VmHWM after sign_pdf minus its VmRSS right before; max of the "
        "runs (not ru_maxrss: Linux carries it over fork+exec, it showed this parent's RSS).",
        "  right of '|': API time split (medians, s): authorize; send+sign = from the first byte "
        "sent to the answer's headers (upload, spooling, hashing, signing: the server answers "
        "only when the signature is made); receive = reading and decoding the streamed answer; "
        "srv CPU = worker CPU s during signDoc (/proc/<pid>/stat); resp MB = signDoc response "
        "body.",
        "  'in' columns: one signDoc of the same PDF with a SAD bound to another digest: the "
        "worker reads the body, spools the base64-decoded PDF to a temporary file while hashing "
        "it, then answers 400 -- the cost of taking the request in, before any signing or "
        "response.",
        "",
        *lines,
        "",
        "PAdES B-LTA through the API (certomancer TSA + OCSP on 127.0.0.1, Signet CRL at "
        "/pki/local.crl; same server, started with SIGNET_FORMATS__TSA_URL, "
        "SIGNET_FORMATS__TRUST_ROOTS, SIGNET_WEB__BASE_URL):",
        "  API s: as above; +bytes: signed PDF minus input.",
        *lta_lines,
        "",
        "Validated with pyHanko (validate_pdf_signature, trust roots Signet CA + certomancer "
        "root, fetching on):",
        *[f"  {c}" for c in checks],
        *notes,
        "",
    ])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark PAdES signing with signet.formats: time and peak memory for 1/10/100 MB PDFs.

A plain script, not a pytest test:

    .venv/bin/python tests/bench/bench_formats.py [--sizes 1,10,100] [--runs 3]

Each signing runs in a fresh subprocess so that its peak RSS (ru_maxrss) is its own; the
"peak - base" column is the memory the signing added on top of the imported libraries.
B-LTA uses the throw-away certomancer PKI (TSA, OCSP, CRL) served on 127.0.0.1.
The key is a throw-away software key behind the sign_digest callable (no HSM here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "pki"))
sys.path.insert(0, str(REPO / "app"))


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def child(spec: dict) -> None:
    """Sign once and report seconds and memory as JSON on stdout."""
    import resource

    from asn1crypto import pem, x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

    from signet.formats import RemoteKey, ServicesConfig, TsaConfig, sign_document

    def load_cert(path: str) -> x509.Certificate:
        _, _, der = pem.unarmor(Path(path).read_bytes())
        return x509.Certificate.load(der)

    private_key = serialization.load_pem_private_key(Path(spec["key"]).read_bytes(), None)
    hash_algorithms = {"sha256": hashes.SHA256()}

    def sign_digest(digest: bytes, hash_name: str, scheme: str) -> bytes:
        prehashed = utils.Prehashed(hash_algorithms[hash_name])
        if scheme == "ecdsa":
            return private_key.sign(digest, ec.ECDSA(prehashed))  # type: ignore[call-arg,arg-type]
        return private_key.sign(digest, padding.PKCS1v15(), prehashed)  # type: ignore[call-arg,arg-type]

    key = RemoteKey(
        certificate=load_cert(spec["cert"]),
        chain=tuple(load_cert(p) for p in spec["chain"]),
        sign_digest=sign_digest,
    )
    services = ServicesConfig(tsa=TsaConfig(url=spec["tsa_url"])) if spec.get("tsa_url") else None
    base_rss = _rss_kib()
    started = time.perf_counter()
    with open(spec["output"], "w+b") as out:
        sign_document(
            spec["input"], out, format="pades", level=spec["level"], key=key, services=services
        )
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "base_kib": base_rss, "peak_kib": peak}))


def run_child(spec: dict) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"signing subprocess failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100", help="PDF sizes in MB, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--key", default="signer-rsa", choices=["signer-rsa", "signer-ec"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return

    from asn1crypto import pem
    from make_pdf import write_pdf
    from signet_test_pki import serve_test_pki

    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="signet-bench-") as work_dir:
        work = Path(work_dir)
        with serve_test_pki(work / "pki") as pki:
            files = {}
            for label in (args.key, "interm", "root"):
                path = work / f"{label}.pem"
                path.write_bytes(pem.armor("CERTIFICATE", pki.cert(label).dump()))
                files[label] = str(path)
            base_spec = {
                "key": str(pki.key_dir / f"{args.key}.key.pem"),
                "cert": files[args.key],
                "chain": [files["interm"], files["root"]],
            }
            rows = []
            for size in sizes:
                pdf = write_pdf(work / f"in-{size}mb.pdf", size * 1024 * 1024)
                for level in ("B-B", "B-LTA"):
                    if level == "B-LTA" and size != sizes[0] and size != sizes[-1]:
                        continue  # LTA cost is size-independent beyond the hashing; keep it short
                    spec = dict(
                        base_spec, input=str(pdf), output=str(work / "out.pdf"), level=level
                    )
                    if level != "B-B":
                        spec["tsa_url"] = pki.tsa_url
                    results = [run_child(spec) for _ in range(args.runs)]
                    rows.append(
                        (
                            f"{size} MB",
                            level,
                            statistics.median(r["seconds"] for r in results),
                            max(r["peak_kib"] for r in results) / 1024,
                            max(r["peak_kib"] - r["base_kib"] for r in results) / 1024,
                            os.path.getsize(work / "out.pdf") - os.path.getsize(pdf),
                        )
                    )
                pdf.unlink()

    print(f"\nPAdES signing, key {args.key}, median of {args.runs} run(s), one process per run")
    header = f"{'PDF':>7} {'level':>6} {'time s':>8} {'peak RSS MiB':>13} {'peak-base MiB':>14} {'+bytes':>8}"
    print(header)
    print("-" * len(header))
    for size, level, seconds, peak, delta, grown in rows:
        print(f"{size:>7} {level:>6} {seconds:8.3f} {peak:13.1f} {delta:14.1f} {grown:8d}")


if __name__ == "__main__":
    main()

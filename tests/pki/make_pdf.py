"""Write minimal valid PDFs of a chosen size for the formats tests and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

_CHUNK = 1024 * 1024


def write_pdf(path: Path, size: int = 0, text: str = "Signet test document") -> Path:
    """One-page PDF; ``size`` bytes of incompressible filler are streamed into an object
    referenced from the catalog, so the file is large without being built in memory."""
    content = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    offsets: list[int] = []
    with open(path, "wb") as out:
        out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")

        def obj(body: bytes) -> None:
            offsets.append(out.tell())
            out.write(f"{len(offsets)} 0 obj\n".encode() + body + b"\nendobj\n")

        obj(b"<< /Type /Catalog /Pages 2 0 R /SignetFiller 6 0 R >>")
        obj(b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
        obj(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
        )
        obj(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
        obj(f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream")
        offsets.append(out.tell())
        out.write(f"6 0 obj\n<< /Length {size} >>\nstream\n".encode())
        remaining = size
        while remaining:
            n = min(_CHUNK, remaining)
            out.write(os.urandom(n))
            remaining -= n
        out.write(b"\nendstream\nendobj\n")
        xref = out.tell()
        out.write(f"xref\n0 {len(offsets) + 1}\n0000000000 65535 f \n".encode())
        for offset in offsets:
            out.write(f"{offset:010d} 00000 n \n".encode())
        out.write(
            f"trailer\n<< /Size {len(offsets) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
        )
    return path

"""`python -m signet.vc agent`: run the per-user agent in the foreground (its socket under
$XDG_RUNTIME_DIR/signet-vc/); each signature it forwards is shown on standard output."""

from __future__ import annotations

import sys

from signet.vc.agent import serve, socket_path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["agent"]:
        print("usage: signet-vc agent", file=sys.stderr)
        return 2
    server = serve()
    print(f"signet-vc agent: listening on {socket_path()}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        socket_path().unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

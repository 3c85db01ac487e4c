#!/usr/bin/env python3
"""The image's package lock: turn packages.lock into an apt preferences file that pins every
package to its locked version (`pin DIR`), and check a build's mkosi manifest against the lock
or write the lock from it (`check MANIFEST`, `write MANIFEST`)."""

import json
import sys
from pathlib import Path

LOCK = Path(__file__).with_name("packages.lock")


def read_lock() -> dict[str, str]:
    lines = [line.split() for line in LOCK.read_text().splitlines() if line and line[0] != "#"]
    return {name: version for name, version in lines}


def read_manifest(path: str) -> dict[str, str]:
    packages = json.loads(Path(path).read_text())["packages"]
    return {p["name"]: p["version"] for p in packages if p["type"] == "deb"}


def main(command: str, argument: str) -> int:
    if command == "pin":
        prefs = Path(argument) / "etc/apt/preferences.d/signet-lock.pref"
        prefs.parent.mkdir(parents=True, exist_ok=True)
        prefs.write_text("".join(
            f"Package: {name}\nPin: version {version}\nPin-Priority: 1001\n\n"
            for name, version in sorted(read_lock().items())))
        return 0
    built = read_manifest(argument)
    if command == "write":
        LOCK.write_text("# Debian packages of the appliance image (rewrite after a review: image/lock-packages.py write MANIFEST).\n"
                        + "".join(f"{n} {v}\n" for n, v in sorted(built.items())))
        print(f"packages.lock: {len(built)} packages")
        return 0
    locked = read_lock()
    drift = sorted(f"{n}: locked {locked.get(n, '-')}, built {built.get(n, '-')}"
                   for n in locked.keys() | built.keys() if locked.get(n) != built.get(n))
    if drift:
        print("the image's packages differ from image/packages.lock (the mirror moved on? "
              "rewrite the lock with image/lock-packages.py write MANIFEST and review the diff):\n  " + "\n  ".join(drift), file=sys.stderr)
        return 1
    print(f"package set matches image/packages.lock ({len(built)} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

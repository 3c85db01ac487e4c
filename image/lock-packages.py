#!/usr/bin/env python3
"""The image's package lock: turn packages.lock into an apt preferences file that pins every
package to its locked version (`pin DIR`), and check a build's package set against the lock or
write the lock from it (`check MANIFEST STATUS`, `write MANIFEST STATUS`).

The package set is the image's (mkosi's JSON manifest) together with that of mkosi's default
initrd (the dpkg status file of its cached tree, STATUS): one name, one version, in both."""

import json
import sys
from pathlib import Path

LOCK = Path(__file__).with_name("packages.lock")
HEADER = ("# Debian packages of the appliance image and of its initrd (rewrite after a review:\n"
          "# image/lock-packages.py write MANIFEST INITRD-DPKG-STATUS).\n")


def read_lock() -> dict[str, str]:
    lines = [line.split() for line in LOCK.read_text().splitlines() if line and line[0] != "#"]
    return {name: version for name, version in lines}


def read_manifest(path: str) -> dict[str, str]:
    packages = json.loads(Path(path).read_text())["packages"]
    return {p["name"]: p["version"] for p in packages if p["type"] == "deb"}


def read_status(path: str) -> dict[str, str]:
    """Installed packages of a dpkg status file (paragraphs of `Field: value` lines)."""
    installed = {}
    for paragraph in Path(path).read_text().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in paragraph.splitlines()
                      if ": " in line and not line.startswith(" "))
        if fields.get("Status") == "install ok installed":
            installed[fields["Package"]] = fields["Version"]
    return installed


def built_set(manifest: str, status: str) -> dict[str, str]:
    image = read_manifest(manifest)
    initrd = read_status(status)
    split = sorted(f"{n}: image {image[n]}, initrd {initrd[n]}"
                   for n in image.keys() & initrd.keys() if image[n] != initrd[n])
    if split:
        sys.exit("the image and its initrd carry different versions of:\n  " + "\n  ".join(split))
    return {**initrd, **image}


def main(command: str, argument: str, status: str | None = None) -> int:
    if command == "pin":
        prefs = Path(argument) / "etc/apt/preferences.d/signet-lock.pref"
        prefs.parent.mkdir(parents=True, exist_ok=True)
        prefs.write_text("".join(
            f"Package: {name}\nPin: version {version}\nPin-Priority: 1001\n\n"
            for name, version in sorted(read_lock().items())))
        return 0
    if status is None:
        sys.exit(f"{command} needs the initrd's dpkg status file as well as the manifest")
    built = built_set(argument, status)
    if command == "write":
        LOCK.write_text(HEADER + "".join(f"{n} {v}\n" for n, v in sorted(built.items())))
        print(f"packages.lock: {len(built)} packages")
        return 0
    locked = read_lock()
    drift = sorted(f"{n}: locked {locked.get(n, '-')}, built {built.get(n, '-')}"
                   for n in locked.keys() | built.keys() if locked.get(n) != built.get(n))
    if drift:
        print("the image's packages differ from image/packages.lock (the mirror moved on? "
              "rewrite the lock with image/lock-packages.py write MANIFEST INITRD-DPKG-STATUS "
              "and review the diff):\n  " + "\n  ".join(drift), file=sys.stderr)
        return 1
    print(f"package set matches image/packages.lock ({len(built)} packages, initrd included)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or sys.argv[1] not in ("pin", "check", "write"):
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))

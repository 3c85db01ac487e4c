#!/bin/sh
# Build the Molecule base image (Debian 12 + systemd) from debootstrap; no registry needed.
# Idempotent: does nothing when an image built from the same recipe already exists.
# Environment: CONTAINERS_CONF (tests/molecule/containers.conf), SIGNET_MOLECULE_IMAGE,
# DEBIAN_MIRROR / SECURITY_MIRROR (default: the mirrors this host's apt uses).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
image=${SIGNET_MOLECULE_IMAGE:-localhost/signet-molecule:bookworm}
rootfs_image=localhost/signet-debian-rootfs:bookworm
CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
case $CONTAINERS_CONF in /*) ;; *) CONTAINERS_CONF=$PWD/$CONTAINERS_CONF ;; esac  # podman build changes directory
export CONTAINERS_CONF

recipe=$(cat "$here/Containerfile" "$0" | sha256sum | cut -c1-16)
current=$(podman image inspect --format '{{ index .Config.Labels "org.signet.molecule.recipe" }}' \
    "$image" 2>/dev/null || true)
if [ "$current" = "$recipe" ]; then
    echo "base image $image is current (recipe $recipe)"
    exit 0
fi

# The mirrors apt on this host already reaches (CI machines may only reach those).
host_mirror() {
    apt-get indextargets --format '$(REPO_URI) $(CODENAME)' 'Identifier: Packages' 2>/dev/null \
        | awk -v codename="$1" '$2 == codename { sub("/$", "", $1); print $1; exit }'
}
mirror=${DEBIAN_MIRROR:-$(host_mirror bookworm)}
mirror=${mirror:-http://deb.debian.org/debian}
security=${SECURITY_MIRROR:-$(host_mirror bookworm-security)}
security=${security:-http://deb.debian.org/debian-security}

if ! podman image exists "$rootfs_image"; then
    command -v debootstrap >/dev/null || { echo "debootstrap missing: apt-get install debootstrap" >&2; exit 1; }
    workdir=$(mktemp -d /var/tmp/signet-rootfs.XXXXXX)
    trap 'rm -rf "$workdir"' EXIT
    echo "debootstrap bookworm from $mirror"
    debootstrap --variant=minbase bookworm "$workdir/rootfs" "$mirror" >"$workdir/debootstrap.log" 2>&1 \
        || { tail -n 30 "$workdir/debootstrap.log" >&2; exit 1; }
    tar -C "$workdir/rootfs" -c . | podman import - "$rootfs_image" >/dev/null
fi

previous=$(podman image inspect --format '{{ .Id }}' "$image" 2>/dev/null || true)
log=$(mktemp /var/tmp/signet-image-build.XXXXXX)
podman build --pull=never --tag "$image" \
    --build-arg ROOTFS_IMAGE="$rootfs_image" \
    --build-arg DEBIAN_MIRROR="$mirror" \
    --build-arg SECURITY_MIRROR="$security" \
    --build-arg RECIPE="$recipe" \
    --file "$here/Containerfile" "$here" >"$log" 2>&1 \
    || { tail -n 40 "$log" >&2; rm -f "$log"; exit 1; }
rm -f "$log"
# The image this one replaces, unless a container still uses it.
[ -z "$previous" ] || podman rmi "$previous" >/dev/null 2>&1 || true
echo "base image $image built (recipe $recipe)"

#!/bin/bash
# Build the appliance image: the builder container (mkosi 24 from bookworm-backports), Signet's
# wheel and wheelhouse on the host, then mkosi inside the container; raw + qcow2 in $IMAGE_OUT.
#   IMAGE_WORK  mkosi workspace, incremental cache, package downloads and outputs, kept between
#               builds (default /var/tmp/signet-image)
#   DEBIAN_MIRROR  Debian mirror for the builder container (default: this host's)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
work=${IMAGE_WORK:-/var/tmp/signet-image}
builder=localhost/signet-image-builder:bookworm
export CONTAINERS_CONF=${CONTAINERS_CONF:-$top/tests/molecule/containers.conf}
mkdir -p "$work"/{cache,packages,out,workspace}
start=$(date +%s)
step() { printf '[%4ds] %s\n' $(( $(date +%s) - start )) "$*"; }

# Ansible at the version uv.lock pins for the controller (the same bundle Molecule runs).
ansible_version=$(awk '/^name = "ansible"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$top/uv.lock")
[ -n "$ansible_version" ] || { echo "no ansible in $top/uv.lock" >&2; exit 1; }
recipe=$( { cat "$here/builder/Containerfile"; echo "ansible $ansible_version"; } | sha256sum | cut -c1-16)
if [ "$(podman image inspect --format '{{ index .Config.Labels "org.signet.image.recipe" }}' "$builder" 2>/dev/null)" != "$recipe" ]; then
    step "builder container $builder (mkosi 24, Ansible $ansible_version)"
    mirror=${DEBIAN_MIRROR:-$(apt-get indextargets --format '$(REPO_URI) $(CODENAME)' 'Identifier: Packages' \
        | awk '$2 == "bookworm" { sub("/$", "", $1); print $1; exit }')}
    podman build --pull=never --quiet --tag "$builder" --label "org.signet.image.recipe=$recipe" \
        --build-arg DEBIAN_MIRROR="${mirror:-http://deb.debian.org/debian}" \
        --build-arg ANSIBLE_VERSION="$ansible_version" \
        --volume /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro \
        --file "$here/builder/Containerfile" "$here/builder" >"$work/builder.log" 2>&1 \
        || { tail -n 30 "$work/builder.log" >&2; exit 1; }
fi

step "Signet wheel and wheelhouse (roles/signet_app/files/build-wheelhouse.sh)"
artifacts=$("$top/roles/signet_app/files/build-wheelhouse.sh" "$top" "$top/build/ansible" 2>"$work/wheels.log") \
    || { tail -n 20 "$work/wheels.log" >&2; exit 1; }
wheel=$(sed -n 's/^wheel=//p' <<<"$artifacts")
wheelhouse=$(sed -n 's/^wheelhouse=//p' <<<"$artifacts")

version=$(cd "$top" && git describe --always --dirty)
# Every package at its locked version (packages.lock, as an apt preferences file).
lock_args=()
if [ -s "$here/packages.lock" ]; then
    rm -rf "$work/pkglock" && "$here/lock-packages.py" pin "$work/pkglock"
    lock_args=(--package-manager-tree=/work-image/pkglock)
fi
lock_sha=$(sha256sum "$here/packages.lock" 2>/dev/null | cut -c1-64 || echo none)
# mkosi's incremental cache is keyed on the package names, not on the pinned versions: a new lock
# throws the cached trees away.
if [ "$(cat "$work/cache/packages.lock.sha256" 2>/dev/null)" != "$lock_sha" ]; then
    rm -rf "$work/cache" && mkdir -p "$work/cache" && echo "$lock_sha" >"$work/cache/packages.lock.sha256"
fi
step "mkosi build, Signet $version (log: $work/mkosi.log)"
set +e  # mkosi's own status decides (PIPESTATUS), not grep's
podman run --rm --privileged --name "signet-image-build-$$" \
    --volume "$top:/src:ro" --volume "$work:/work-image" \
    "$builder" mkosi -C /src/image --force \
        --workspace-dir=/work-image/workspace --cache-dir=/work-image/cache --output-dir=/work-image/out \
        --package-cache-dir=/work-image/packages \
        --image-version="$version" --environment=SIGNET_VERSION="$version" "${lock_args[@]}" \
        --environment=SIGNET_PACKAGES_LOCK="$lock_sha" \
        --environment=SIGNET_WHEEL="/work/src/${wheel#"$top"/}" \
        --environment=SIGNET_WHEELHOUSE="/work/src/${wheelhouse#"$top"/}" build 2>&1 \
    | tee "$work/mkosi.log" | grep --line-buffered -E '^‣|PLAY|TASK \[|fatal|ERROR|Error' \
    | while IFS= read -r line; do step "  $line"; done
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || { tail -n 40 "$work/mkosi.log" >&2; exit 1; }

raw=$work/out/signet_$version.raw
manifest=$work/out/signet_$version.manifest
# The initrd's packages, from its cached tree (Incremental=yes keeps it with dpkg's status).
initrd_status=$(echo "$work"/cache/*~default-initrd.cache/var/lib/dpkg/status)
[ -s "$initrd_status" ] || { echo "no dpkg status of the default initrd under $work/cache" >&2; exit 1; }
if [ -s "$here/packages.lock" ]; then "$here/lock-packages.py" check "$manifest" "$initrd_status"
else "$here/lock-packages.py" write "$manifest" "$initrd_status"; fi
step "qcow2 for hypervisors"
podman run --rm --volume "$work:/work-image" "$builder" \
    qemu-img convert -O qcow2 "/work-image/out/${raw##*/}" "/work-image/out/signet_$version.qcow2"
# Earlier builds' outputs go (3 GB each); this one is linked as signet.raw and signet.qcow2.
find "$work/out" -maxdepth 1 -name 'signet_*' ! -name "signet_$version.*" ! -name "signet_$version" -delete
ln -sf "${raw##*/}" "$work/out/signet.raw"
ln -sf "signet_$version.qcow2" "$work/out/signet.qcow2"
step "done: $(du -h --apparent-size "$raw" | cut -f1) raw ($(du -h "$raw" | cut -f1) allocated), $(du -h "$work/out/signet_$version.qcow2" | cut -f1) qcow2 in $work/out"

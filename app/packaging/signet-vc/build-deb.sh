#!/bin/sh
# Builds the signet-vc Debian package into OUTDIR (default build/vc-deb) and runs lintian on it.
# The source tree dpkg-buildpackage sees is assembled in OUTDIR/src: this folder's debian/,
# what the build needs (signet.vc.build and native/glue.c) under app/, and under python/ the
# Python code the module and signet-vc run (signet.vc and the few signet modules it imports).
# Run from the repository's root: app/packaging/signet-vc/build-deb.sh [OUTDIR]
set -eu

here=app/packaging/signet-vc
out=${1:-build/vc-deb}
version=$(dpkg-parsechangelog -l "$here/debian/changelog" -S Version)
src=$out/src/signet-vc-$version

rm -rf "$out/src"
mkdir -p "$src/app/signet/vc/native" "$src/python/signet/client" "$src/python/signet/vc" "$src/bin"
cp -r "$here/debian" "$src/"
cp app/signet/__init__.py "$src/app/signet/"
cp app/signet/vc/__init__.py app/signet/vc/build.py "$src/app/signet/vc/"
cp app/signet/vc/native/glue.c "$src/app/signet/vc/native/"
cp app/signet/__init__.py app/signet/algorithms.py "$src/python/signet/"
cp "$here/client-init.py" "$src/python/signet/client/__init__.py"
cp app/signet/client/csc.py "$src/python/signet/client/"
for f in app/signet/vc/*.py; do
    [ "$(basename "$f")" = build.py ] || cp "$f" "$src/python/signet/vc/"
done
cp "$here/signet-vc" "$src/bin/"
cp "$here/signet-vc.module" "$here/signet-vc-agent.service" "$here/signet-vc-agent.socket" "$src/"
# the same bytes whenever the sources are the same (lintian and dpkg like stable times)
find "$src" -exec touch -h -d "@$(dpkg-parsechangelog -l "$here/debian/changelog" -S Timestamp)" {} +

(cd "$src" && dpkg-buildpackage -b -us -uc) >"$out/build.log" 2>&1 \
    || { tail -n 40 "$out/build.log" >&2; exit 1; }
arch=$(dpkg-architecture -q DEB_HOST_ARCH)
deb=signet-vc_${version}_${arch}.deb
mv "$out/src/$deb" "$out/$deb"
lintian --fail-on error,warning "$out/$deb" | tee "$out/lintian.log"
echo "$out/$deb"

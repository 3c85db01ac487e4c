#!/bin/sh
# Build, on the controller, what a node needs to install Signet offline: Signet's wheel and a
# wheelhouse tarball of its locked dependencies (uv.lock) for the node's Python and platform.
#
#   build-wheelhouse.sh SOURCE_DIR OUT_DIR [EXTRA...]
#
# Prints two lines, "wheel=PATH" and "wheelhouse=PATH". The wheelhouse is cached under a key of
# uv.lock, the extras and the target, so only the first build downloads; Signet's wheel is
# rebuilt every time (about a second; hatchling builds it byte-for-byte reproducibly).
# Needs uv, and PyPI (or UV_INDEX_URL / PIP_INDEX_URL) on the controller only.
# Target: TARGET_PYTHON (default 3.11) and TARGET_GLIBC (default 2.36): Debian 12, x86_64.
set -eu

source_dir=$(cd "$1" && pwd)
out_dir=$2
shift 2
extras=$(printf '%s\n' "$@" | sort -u | tr '\n' ' ' | sed 's/ *$//')
target_python=${TARGET_PYTHON:-3.11}
target_glibc=${TARGET_GLIBC:-2.36}
arch=${TARGET_ARCH:-x86_64}

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
# Two Molecule scenarios may build at once: one at a time.
exec 9>"$out_dir/.lock"
flock 9

key=$( (cat "$source_dir/uv.lock"; echo "$extras $target_python $target_glibc $arch") | sha256sum | cut -c1-16)
wheelhouse="$out_dir/wheelhouse-$key.tar"

if [ ! -s "$wheelhouse" ]; then
    staging="$out_dir/wheelhouse-$key"
    rm -rf "$staging"
    mkdir -p "$staging"
    extra_args=""
    for extra in $extras; do extra_args="$extra_args --extra $extra"; done
    # shellcheck disable=SC2086
    (cd "$source_dir" && uv export --quiet --frozen --no-default-groups --no-emit-project \
        --no-hashes --format requirements-txt $extra_args --output-file "$staging/requirements.txt")
    platforms="--platform manylinux1_$arch --platform manylinux2010_$arch --platform manylinux2014_$arch"
    minor=5
    while [ "$minor" -le "${target_glibc#2.}" ]; do
        platforms="$platforms --platform manylinux_2_${minor}_$arch"
        minor=$((minor + 1))
    done
    # Binary wheels only: the node has no compiler, and building on the controller would tie the
    # result to the controller's platform.
    # shellcheck disable=SC2086
    uv tool run --quiet --python "$target_python" --from 'pip>=24' pip download --quiet \
        --disable-pip-version-check --no-deps --only-binary=:all: \
        --implementation cp --python-version "$target_python" $platforms \
        --requirement "$staging/requirements.txt" --dest "$staging" >&2
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
        -C "$staging" -cf "$wheelhouse.tmp" .
    mv "$wheelhouse.tmp" "$wheelhouse"
    rm -rf "$staging"
fi

dist="$out_dir/dist"
rm -rf "$dist"
uv build --quiet --wheel --out-dir "$dist" "$source_dir" >&2
echo "wheel=$(ls "$dist"/*.whl)"
echo "wheelhouse=$wheelhouse"

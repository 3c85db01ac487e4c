# The appliance image (image/): `make image` builds it with mkosi 24 in a privileged podman
# container, `make image-test` boots it under qemu (TCG) and signs through it. Not part of
# `make test` yet: the boot test's minutes would push .ci/run past its 90-minute budget.
# Included by the main Makefile (apt_install, VENV).
IMAGE_WORK ?= /var/tmp/signet-image
IMAGE_DEBS := podman runc debootstrap uidmap iptables netavark aardvark-dns fuse-overlayfs
# dosfstools and mtools: the boot test's site disk (vfat, made without root).
IMAGE_TEST_DEBS := qemu-system-x86 ovmf openssl dosfstools mtools
export IMAGE_WORK

.PHONY: image image-test image-deps image-test-deps

image-deps:
	$(call apt_install,$(IMAGE_DEBS))

image-test-deps:
	$(call apt_install,$(IMAGE_TEST_DEBS))

# The builder reuses the Molecule base image's Debian root (built by tests/molecule/ when absent).
image: image-deps venv
	@CONTAINERS_CONF=$(CURDIR)/tests/molecule/containers.conf tests/molecule/build-base-image.sh >/dev/null
	@start=$$(date +%s); image/build.sh && echo "make image: $$(( $$(date +%s) - start )) s"

image-test: image-test-deps venv
	@test -e $(IMAGE_WORK)/out/signet.raw || { echo "no image in $(IMAGE_WORK)/out: run make image" >&2; exit 1; }
	cd image/test && PYTHONPATH=$(CURDIR) $(abspath $(PY)) boot_test.py $(IMAGE_WORK)/out/signet.raw

# The appliance image (image/): `make image` builds it with mkosi 24 in a privileged podman
# container, `make image-test` boots it under qemu (TCG) and signs through it, and
# `make test-image` (the last step of `make test`) does both, unless the CI run that started at
# SIGNET_CI_STARTED (epoch seconds, set by .ci/run) has already used IMAGE_TEST_LATEST seconds:
# measured on 2 idle cores, the build takes about 4 minutes and the boot test about 4.5, and
# .ci/run must end inside 90. Included by the main Makefile (apt_install, VENV).
IMAGE_WORK ?= /var/tmp/signet-image
IMAGE_DEBS := podman runc debootstrap uidmap iptables netavark aardvark-dns fuse-overlayfs
# dosfstools and mtools: the boot test's site disk (vfat, made without root).
IMAGE_TEST_DEBS := qemu-system-x86 ovmf openssl dosfstools mtools
export IMAGE_WORK
IMAGE_TEST_LATEST ?= 4680

.PHONY: image image-test image-deps image-test-deps test-image

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

test-image:
	@if [ -n "$$SIGNET_CI_STARTED" ] && [ $$(( $$(date +%s) - SIGNET_CI_STARTED )) -gt $(IMAGE_TEST_LATEST) ]; then \
	  echo "test-image: SKIPPED, this run has used $$(( $$(date +%s) - SIGNET_CI_STARTED )) s, more than" \
	       "IMAGE_TEST_LATEST=$(IMAGE_TEST_LATEST) s: building and booting the image would pass .ci/run's" \
	       "90 minutes. Run 'make image image-test' on its own."; exit 0; fi; \
	start=$$(date +%s); $(MAKE) --no-print-directory image image-test \
	  && echo "test-image: built and booted in $$(( $$(date +%s) - start )) s"

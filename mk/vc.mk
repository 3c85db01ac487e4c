# The Desktop Virtual Card (issue 17, docs/desktop-vc.md): `make vc` builds
# build/vc/libsignet-vc.so, a PKCS#11 module of C glue and embedded Python (cffi), tied to the
# venv's libpython; `make vc-test` runs its tests with real consumers (pkcs11-tool, OpenSSL's
# pkcs11 engine, p11tool, NSS, OpenSSH, a headless firefox-esr and LibreOffice); `make vc-deb`
# builds the Debian package signet-vc from app/packaging/signet-vc (against Debian's
# python3.11, not the venv) into build/vc-deb and runs lintian on it. Included by the main
# Makefile (apt_install, VENV, PY).
VC_BUILD_DEBS := gcc libc6-dev python3-dev libp11-kit-dev
VC_TEST_DEBS := $(RUN_DEBS) opensc openssl libengine-pkcs11-openssl gnutls-bin libnss3-tools \
	openssh-client openssh-server firefox-esr libreoffice-writer python3-uno \
	libreoffice-script-provider-python poppler-utils
# debhelper and lintian build and check the package; python3-cffi and libpython3.11-dev build
# its module for Debian's python3.11; podman (runc, iptables) runs tests/vc/test_deb.py's clean
# Debian container, debootstrap makes its base image (tests/molecule/build-base-image.sh).
VC_DEB_DEBS := debhelper lintian python3-cffi libpython3.11-dev python3.11 libp11-kit-dev gcc \
	libc6-dev
VC_DEB_TEST_DEBS := podman runc iptables debootstrap
VC_LIB := build/vc/libsignet-vc.so

.PHONY: vc vc-deps vc-test-deps vc-test vc-deb vc-deb-deps

vc-deps:
	$(call apt_install,$(VC_BUILD_DEBS))

vc-test-deps:
	$(call apt_install,$(VC_BUILD_DEBS) $(VC_TEST_DEBS) $(VC_DEB_DEBS) $(VC_DEB_TEST_DEBS))

vc-deb-deps:
	$(call apt_install,$(VC_DEB_DEBS))

# build/vc-deb/signet-vc_<version>_<arch>.deb; lintian's errors or warnings fail the build
vc-deb: vc-deb-deps
	app/packaging/signet-vc/build-deb.sh build/vc-deb

vc: vc-deps venv $(VC_LIB)

$(VC_LIB): app/signet/vc/build.py app/signet/vc/native/glue.c
	PYTHONPATH=$(CURDIR)/app $(abspath $(PY)) -m signet.vc.build build/vc

vc-test: vc-test-deps vc
	PYTHONPATH=$(CURDIR)/app:$(CURDIR) $(abspath $(PY)) -m pytest -q tests/vc

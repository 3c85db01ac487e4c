# The Desktop Virtual Card (issue 17, docs/desktop-vc.md): `make vc` builds
# build/vc/libsignet-vc.so, a PKCS#11 module of C glue and embedded Python (cffi), tied to the
# venv's libpython; `make vc-test` runs its tests with real consumers (pkcs11-tool, OpenSSL's
# pkcs11 engine, p11tool, NSS). Included by the main Makefile (apt_install, VENV, PY).
VC_BUILD_DEBS := gcc libc6-dev python3-dev libp11-kit-dev
VC_TEST_DEBS := $(RUN_DEBS) opensc openssl libengine-pkcs11-openssl gnutls-bin libnss3-tools
VC_LIB := build/vc/libsignet-vc.so

.PHONY: vc vc-deps vc-test-deps vc-test

vc-deps:
	$(call apt_install,$(VC_BUILD_DEBS))

vc-test-deps:
	$(call apt_install,$(VC_BUILD_DEBS) $(VC_TEST_DEBS))

vc: vc-deps venv $(VC_LIB)

$(VC_LIB): app/signet/vc/build.py app/signet/vc/native/glue.c
	PYTHONPATH=$(CURDIR)/app $(abspath $(PY)) -m signet.vc.build build/vc

vc-test: vc-test-deps vc
	PYTHONPATH=$(CURDIR)/app:$(CURDIR) $(abspath $(PY)) -m pytest -q tests/vc

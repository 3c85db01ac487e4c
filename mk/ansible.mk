# The Ansible side: lint the roles and playbooks, then run every Molecule scenario (each role's
# molecule/default and the whole-appliance scenario) in podman containers, two at a time.
#   make test-ansible            everything (what `make test` runs)
#   make ansible-lint            yamllint, ansible-lint, syntax check of site.yml
#   make molecule-<name>         one scenario: $(MOLECULE_SCENARIOS)
# Logs of each scenario: build/ansible/logs/<name>.log. Included by the main Makefile (VENV).

VENV ?= .venv
ANSIBLE_VENV_BIN := $(abspath $(VENV))/bin
ANSIBLE_LOG_DIR := $(CURDIR)/build/ansible/logs
ANSIBLE_HOST_DEBS := podman runc debootstrap uidmap slirp4netns fuse-overlayfs netavark aardvark-dns \
                     iptables
# What the scenarios run on the host, as program:package; each is checked after the install,
# so a machine that lacks one fails here, naming it, instead of deep inside a podman build
# (netavark without iptables: "No such file or directory (os error 2)").
ANSIBLE_HOST_TOOLS := podman:podman runc:runc debootstrap:debootstrap newuidmap:uidmap \
                      slirp4netns:slirp4netns fuse-overlayfs:fuse-overlayfs \
                      /usr/lib/podman/netavark:netavark /usr/lib/podman/aardvark-dns:aardvark-dns \
                      iptables:iptables
MOLECULE_ROLES := hsm_softhsm hsm_nshield database signet_app monitoring otp_gateways signet_balancer
# Longest first, so that two parallel lanes finish close together.
MOLECULE_SCENARIOS := appliance signet_app monitoring otp_gateways database hsm_softhsm hsm_nshield signet_balancer
ANSIBLE_LINT_PATHS := site.yml roles inventories molecule tests/molecule

# Podman as INFRA.md measured it works here (runc, cgroupfs, ulimits), without touching /etc.
export CONTAINERS_CONF := $(CURDIR)/tests/molecule/containers.conf
export SIGNET_MOLECULE_IMAGE ?= localhost/signet-molecule:bookworm
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export NO_COLOR := 1
export PY_COLORS := 0
export ANSIBLE_FORCE_COLOR := 0

.PHONY: test-ansible ansible-lint ansible-host-deps ansible-image $(addprefix molecule-,$(MOLECULE_SCENARIOS))

# The scenarios' own prerequisites (host packages, base image) are made once by the inner make.
test-ansible: ansible-lint
	@mkdir -p $(ANSIBLE_LOG_DIR)
	@start=$$(date +%s); \
	$(MAKE) -f $(abspath $(firstword $(MAKEFILE_LIST))) --no-print-directory -j2 --output-sync=target \
	  $(addprefix molecule-,$(MOLECULE_SCENARIOS)); \
	rc=$$?; echo "molecule: all scenarios in $$(( $$(date +%s) - start )) s"; exit $$rc

ansible-lint: venv
	$(ANSIBLE_VENV_BIN)/yamllint --strict $(ANSIBLE_LINT_PATHS) .yamllint .ansible-lint
	$(ANSIBLE_VENV_BIN)/ansible-lint $(ANSIBLE_LINT_PATHS)
	@for inventory in inventories/example/*/; do \
	  $(ANSIBLE_VENV_BIN)/ansible-playbook --syntax-check -i $$inventory site.yml >/dev/null || exit 1; \
	done; echo "site.yml: syntax ok with every example inventory"

# podman, runc and debootstrap from Debian when missing (the base image needs no registry).
ansible-host-deps:
	@missing=""; for p in $(ANSIBLE_HOST_DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "apt-get install$$missing"; \
	  (apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive \
	   apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $$missing) \
	   >/tmp/signet-apt-ansible.log 2>&1 || { tail -20 /tmp/signet-apt-ansible.log; exit 1; }; fi
	@for pair in $(ANSIBLE_HOST_TOOLS); do tool=$${pair%%:*}; package=$${pair##*:}; \
	  if ! { [ -x "$$tool" ] || PATH=$$PATH:/usr/sbin:/sbin command -v "$$tool" >/dev/null; }; then \
	    echo "missing host tool $$tool (Debian package $$package): Molecule cannot run without it" >&2; \
	    exit 1; fi; done

# Rebuilt only when tests/molecule/Containerfile or the script change (label on the image).
ansible-image: ansible-host-deps
	@tests/molecule/build-base-image.sh

# One scenario; the full log stays in build/ansible/logs, its tail is shown on failure.
define molecule_scenario
molecule-$(1): venv ansible-image
	@mkdir -p $(ANSIBLE_LOG_DIR); start=$$$$(date +%s); \
	if (cd $(2) && PATH=$(ANSIBLE_VENV_BIN):$$$$PATH $(ANSIBLE_VENV_BIN)/molecule test $(3)) \
	    >$(ANSIBLE_LOG_DIR)/$(1).log 2>&1; then \
	  echo "molecule $(1): passed in $$$$(( $$$$(date +%s) - start )) s"; \
	else \
	  tail -n 60 $(ANSIBLE_LOG_DIR)/$(1).log; \
	  echo "molecule $(1): FAILED after $$$$(( $$$$(date +%s) - start )) s (log: $(ANSIBLE_LOG_DIR)/$(1).log)"; exit 1; \
	fi
endef
$(foreach role,$(MOLECULE_ROLES),$(eval $(call molecule_scenario,$(role),roles/$(role),)))
$(eval $(call molecule_scenario,appliance,.,-s appliance))

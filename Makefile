# ewindow-image: `make image` builds the SD card image, `make test` runs every test.
# Both install what they need: Debian packages (apt, via sudo when not root) and a Python
# virtualenv in .venv.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SITE ?=
SET ?=
OUT ?= out
DEVICE ?=
HOSTNAME_ARG := $(if $(WINDOW_NAME),--hostname $(WINDOW_NAME))
CONFIG_ARGS := $(foreach f,$(SITE),-c $(f)) $(foreach s,$(SET),--set $(s))
BUILD_ARGS := $(CONFIG_ARGS) --out $(OUT)

# Debian packages of the build host (see README "What make image installs"). The source
# packages (packages/: PeerVPN, cjdns) build with Debian's compilers: the host's gcc and the
# cross gcc for the other architecture; cjdns' build runs on nodejs and python3.
CROSS_GCC := $(if $(filter aarch64,$(shell uname -m)),gcc-x86-64-linux-gnu,gcc-aarch64-linux-gnu)
HOST_PACKAGES := mmdebstrap qemu-user-static binfmt-support arch-test dosfstools mtools \
	fdisk e2fsprogs bmap-tools zstd xz-utils qemu-system-arm python3-venv util-linux \
	passwd systemd gcc $(CROSS_GCC) nodejs git faketime gpg reprepro
# Extra packages for the tests.
TEST_PACKAGES := $(HOST_PACKAGES) shellcheck device-tree-compiler cpio openssh-client \
	iputils-ping iproute2 procps nftables tinc yggdrasil radvd dpkg-dev gnupg strace openssl prometheus \
	prometheus-node-exporter

ARCH ?=

.PHONY: image packages repo flash station test test-fast boot-test plan config lint bench host-deps test-deps venv clean help verify-repro

help:
	@echo "make image      build out/*.img and its artifacts (SITE=site.yaml SET='key=value ...')"
	@echo "make test       run the whole test suite, including an image build and qemu boots"
	@echo "make flash      DEVICE=/dev/sdX SITE=site.yaml [WINDOW_NAME=name]: write and personalise a card"
	@echo "make station    SITE=site.yaml [INVENTORY=names.yaml] [PARALLEL=N] [COUNT=N]: write every card put in"
	@echo "make packages   PeerVPN, cjdns and the window's own .debs into OUT/packages ([ARCH=amd64|arm64], for hubs)"
	@echo "make repo       SITE=site.yaml: the deployment's signed apt repository in OUT/repo (README \"Updates\")"
	@echo "make plan       show which stages would rebuild and why (changes nothing) [MANIFEST=old.manifest]"
	@echo "make verify-repro  build twice (second with its own cache) and compare the bytes [COLD=1]"
	@echo "make boot-test  boot the built image under qemu (virt and raspi3b)"
	@echo "make config     print the resolved config"
	@echo "make bench      run the benchmarks in bench/"

image: host-deps venv
	$(SUDO) $(PY) build.py build $(BUILD_ARGS)

packages: host-deps venv
	$(SUDO) $(PY) build.py packages $(CONFIG_ARGS) $(if $(ARCH),--arch $(ARCH)) --out $(OUT)/packages

# The deployment's signed apt repository (README "Updates"): the window's own packages and
# PeerVPN/cjdns for arm64 and this machine (the hub), signed with network init's key.
repo: host-deps venv
	$(SUDO) $(PY) build.py repo $(CONFIG_ARGS) --out $(OUT)/repo $(if $(ALLOW_DIRTY),--allow-dirty)

# Writes the built image with bmaptool, then the card's deployment settings (SITE's keys,
# Wi-Fi, VPN secrets). Refuses the system disk, mounted and non-removable disks (FORCE=1).
flash: host-deps venv
	@test -n "$(DEVICE)" || { echo "usage: make flash DEVICE=/dev/sdX SITE=site.yaml" >&2; exit 2; }
	$(SUDO) $(PY) build.py flash $(DEVICE) $(BUILD_ARGS) $(HOSTNAME_ARG) $(if $(FORCE),--force)

# A flashing station: writes and personalises every card put into a reader after it started
# (README "Flashing many cards"); Ctrl-C stops it.
station: host-deps venv
	$(SUDO) $(PY) build.py station $(BUILD_ARGS) $(if $(INVENTORY),--inventory $(INVENTORY)) \
		$(if $(PARALLEL),--parallel $(PARALLEL)) $(if $(COUNT),--count $(COUNT))

verify-repro: host-deps venv
	$(SUDO) $(PY) build.py verify-repro $(BUILD_ARGS) $(if $(COLD),--cold)

boot-test: host-deps venv
	$(SUDO) $(PY) build.py boot-test $(BUILD_ARGS)

plan: host-deps venv
	$(SUDO) $(PY) build.py plan $(BUILD_ARGS) $(if $(MANIFEST),--manifest $(MANIFEST))

config: venv
	$(PY) build.py config $(CONFIG_ARGS)

# Slow tests (image build, qemu boots) are marked and still run here. `.ci/run` calls this.
test: test-deps venv
	$(SUDO) $(PY) -m pytest --durations=25

test-fast: venv
	$(PY) -m pytest -m "not slow"

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: host-deps venv
	$(SUDO) $(PY) bench/run.py
	$(SUDO) $(PY) bench/agent.py

host-deps:
	@missing=$$(for p in $(HOST_PACKAGES); do dpkg-query -W -f='$${db:Status-Abbrev}' $$p 2>/dev/null | grep -q '^ii' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing host packages:" $$missing; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

test-deps:
	@$(MAKE) --no-print-directory host-deps HOST_PACKAGES="$(TEST_PACKAGES)"

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

clean:
	rm -rf $(OUT) $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Two commands do all set-up from a fresh clone:
#   make run    build .venv if needed, then start Dagster + the synthetic capture + the HTTP API
#   make test   build .venv if needed, then run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp
export SDR_ASSETS_HOME ?= $(CURDIR)/var

.PHONY: run run-deps test test-deps soak bench clean-data

# Rebuilt when pyproject.toml changes (the stamp is older than it) or .venv is missing.
# torch, torchvision and ultralytics come in the same pip command (see README).
$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP) run-deps
	$(VENV)/bin/sdr-assets run

# The one Debian package the product runs: rtl-433 (the decoded_messages asset). Installed with
# apt where missing, as root; otherwise named (the rest of the chain runs without it).
run-deps:
	@command -v rtl_433 >/dev/null 2>&1 && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "run-deps: installing rtl-433 (apt-get)"; \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q rtl-433) && exit 0; \
	fi; \
	echo "run-deps: rtl_433 is missing (sudo apt-get install rtl-433); decoded_messages will fail, the rest runs"

test: $(STAMP) test-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest

# Debian packages the tests drive: chromium (the browser test), postgresql and redis-server
# (the production-path tests), rtl-433 (the decoder) and faketime (date-independence runs).
# Installed with apt only where missing and only as root. Outside CI a package that cannot be
# installed is named and its tests skip with the reason; in CI (CI=true) that is an error here,
# and those tests fail rather than skip (sdr_assets_tests/conftest.py, `needs`).
test-deps:
	@need=""; \
	command -v chromium >/dev/null 2>&1 || need="$$need chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$$need postgresql"; \
	command -v redis-server >/dev/null 2>&1 || need="$$need redis-server"; \
	command -v rtl_433 >/dev/null 2>&1 || need="$$need rtl-433"; \
	command -v faketime >/dev/null 2>&1 || need="$$need faketime"; \
	if [ -z "$$need" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "test-deps: installing$$need (apt-get)"; \
		if (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q$$need); then exit 0; fi; \
		msg="apt-get could not install$$need"; \
	else \
		msg="missing$$need; install them (sudo apt-get install$$need)"; \
	fi; \
	if [ "$$CI" = true ]; then echo "test-deps: ERROR: $$msg; CI=true needs them all" >&2; exit 1; fi; \
	echo "test-deps: $$msg; their tests skip"

# The long forms of the reliability suite (10-min 3.2 MS/s soak with the asset chain, 20
# SIGKILLs, rtl_tcp restarts/stalls, deep fuzz) and a one-page summary; about 20 minutes.
soak: $(STAMP)
	$(VENV)/bin/python bench/soak.py

bench: $(STAMP)
	@for b in $$(ls bench/*.py | grep -v '/soak.py$$'); do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

clean-data:
	rm -rf "$(SDR_ASSETS_HOME)"

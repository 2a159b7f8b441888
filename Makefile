# Two commands do all set-up from a fresh clone:
#   make run    build .venv if needed, then start Dagster + the synthetic capture
#   make test   build .venv if needed, then run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp
export SDR_ASSETS_HOME ?= $(CURDIR)/var

.PHONY: run test soak bench clean-data

# Rebuilt when pyproject.toml changes (the stamp is older than it) or .venv is missing.
# torch, torchvision and ultralytics come in the same pip command (see README).
$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/sdr-assets run

test: $(STAMP)
	$(VENV)/bin/python -m pytest

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

clean-data:
	rm -rf "$(SDR_ASSETS_HOME)"

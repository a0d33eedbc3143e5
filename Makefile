# Two entry points (see README): `make run` (default audit) and `make test` (`make test-audit` adds the
# whole-audit CLI tests, as CI does).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CIFAR-10 location: $(DATA), else $XAIQUEST_DATA, else downloaded into .cache/.
# The development/CI copy that sits beside the checkout is used when present.
DATA ?= $(or $(XAIQUEST_DATA),$(wildcard ../shared/datasets/cifar10-jpeg))
PROFILE ?= quick

.PHONY: install run test test-audit clean

$(BIN)/xaiquest: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev,dashboard]'
	touch $@

install: $(BIN)/xaiquest

run: install
	$(BIN)/xaiquest run $(PROFILE) $(if $(DATA),--data $(DATA))

test: install
	$(BIN)/pytest

# The whole-audit CLI tests (minutes on 2 cores): CI runs them after `make test`.
test-audit: install
	$(BIN)/pytest -m audit

clean:
	rm -rf $(VENV) .cache runs

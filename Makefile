# Each target bootstraps .venv from nothing, so a fresh clone needs only python3.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench natlab clean system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m aioiroh.cli.demo

# System tools (nftables, iproute2) for the NAT lab: installed when root, else a clear stop.
system-deps:
	scripts/ensure-system-deps

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench lab
	$(BIN)/ruff check src tests bench lab
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/relay.py
	$(BIN)/python bench/dns_server.py
	$(BIN)/python bench/http3.py

natlab: $(STAMP) system-deps
	$(BIN)/python -m lab.natlab

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Each target bootstraps .venv from nothing, so a fresh clone needs only python3.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench natlab clean fuzz

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m aioiroh.cli.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Not part of `make test`: the hypothesis decoders with many more examples, then the attack suite.
FUZZ_DECODERS = tests/relay/protocol/test_frames.py tests/quic/test_frames.py \
	tests/quic/test_transport_parameters.py tests/base/test_ticket.py tests/base/test_relay_url.py
fuzz: $(STAMP)
	AIOIROH_FUZZ=1 $(BIN)/python -m pytest -q -p no:cacheprovider --timeout 1800 \
		tests/adversarial $(FUZZ_DECODERS)

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

natlab: $(STAMP)
	$(BIN)/python -m lab.natlab

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

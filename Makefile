# Each target bootstraps .venv from nothing, so a fresh clone needs only python3.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A failing command before a `| tee` must fail the target.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

.PHONY: demo test test-pythons lint docs bench natlab clean system-deps fuzz

$(STAMP): pyproject.toml setup.py src/aioiroh/blobs/_blake3tree.c
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
	$(MAKE) test-pythons

# The fast subset on the other supported Pythons (3.12, 3.13), each in its own nox venv.
test-pythons: $(STAMP)
	$(BIN)/nox -s fast

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
	$(BIN)/mypy --strict examples/typed_client.py

# The documentation site in site/; the results page is generated from docs/results/*.txt.
docs: $(STAMP)
	$(BIN)/python docs/gen_results.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python bench/throughput.py | tee docs/results/bench.txt.new
	mv docs/results/bench.txt.new docs/results/bench.txt
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/relay.py
	$(BIN)/python bench/dns_server.py
	$(BIN)/python bench/http3.py

natlab: $(STAMP) system-deps
	$(BIN)/python -m lab.natlab | tee docs/results/natlab.txt.new
	mv docs/results/natlab.txt.new docs/results/natlab.txt

clean:
	rm -rf $(VENV) .venv-iroh035 .nox site .pytest_cache .mypy_cache .ruff_cache

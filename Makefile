# Quick start:  make serve   (install, then serve the embedded default model on 127.0.0.1:8080)
#               make test    (install with test extras, then run every test)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# llama-cpp-python compiles llama.cpp from source: use every core.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: serve test bench install

$(PY):
	$(PYTHON) -m venv $(VENV)

install: $(PY)
	$(PY) -m pip install -q -e '.[test]'

serve: install
	$(VENV)/bin/ggserve $(ARGS)

test: install
	$(PY) -m pytest -q $(ARGS)

# make bench ARGS="--concurrency 1,8": needs a running server (make serve) on port 8080
bench: $(PY)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) scripts/bench.py http://127.0.0.1:8080 smollm2 --max-tokens 128 --peer llama-cpp-python $(ARGS)

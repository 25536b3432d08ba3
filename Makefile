# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo demo-sim test test-fast wheel-smoke bench bench-round bench-runtime bench-paper \
	lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e ".[dev]"
	# compile the oracle's numba kernels once into numba's cache (~10 s), not on first use
	$(PY) -c "from librex_alloc.oracles._bnb import warm; warm()"
	touch $(STAMP)

# The main job: a coordinator actor and 2 agent-shard actors on a local embedded Ray.
demo: $(STAMP)
	$(VENV)/bin/librex-alloc run --agents 2000 --shards 2 --rounds 500 \
		--fairness proportional --out out/demo

# The in-process simulation (no Ray): utilitarian vs proportional fairness.
demo-sim: $(STAMP)
	$(VENV)/bin/librex-alloc demo --out out/demo-sim

test: $(STAMP)
	$(PY) -m pytest -q

# Everything but the tests marked slow (the runtime's kill tests, the paper smoke run).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# Build the wheel, install it into a fresh venv and run it from outside the repository.
wheel-smoke: $(STAMP)
	PYTHON=$(PY) .ci/wheel_smoke.sh

bench: $(STAMP)
	$(VENV)/bin/librex-alloc bench oracle

bench-round: $(STAMP)
	$(VENV)/bin/librex-alloc bench round

bench-runtime: $(STAMP)
	$(PY) -m coordinator.bench

# The evaluation (RESULTS.md); the peer cross-check needs the benchmark-only extra (MABWiser).
bench-paper: $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	$(VENV)/bin/librex-alloc bench paper --out out/paper
	mkdir -p results && cp out/paper/RESULTS.md out/paper/*.png results/

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) out build *.egg-info

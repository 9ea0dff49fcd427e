# Two entry points, both from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint bench-gowalla bench-ml100k clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: the CPU wheel is local; an unpinned torch would pull CUDA packages.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# constraints.txt: the exact versions tested (pyproject.toml only has compatible ranges).
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,serve]"
	touch $(STAMP)

# The tests also cover `slimrec bench --executor ray` (a local Ray instance), so they install
# the optional ray extra too; the demo does not need it.
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,serve,ray]"
	touch $(TEST_STAMP)

demo: $(STAMP)
	$(BIN)/slimrec demo

test: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench-gowalla: $(STAMP)
	$(BIN)/python benchmarks/mf_full.py --dataset gowalla --data-dir ../shared/data

bench-ml100k: $(STAMP)
	$(BIN)/python benchmarks/mf_full.py --dataset ml-100k --data-dir ../shared/data

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache

# Two commands a newcomer needs: `make study` and `make test`. Both build .venv themselves, with every extra
# (pyproject.toml: study, sweep, torchode, detectors) and the test tools.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Pin the CPU build of torch (the package itself asks only for a range); empty it to let pip choose.
PIP_CONSTRAINT ?= $(CURDIR)/.ci/constraints.txt
export PIP_CONSTRAINT
export PIP_DISABLE_PIP_VERSION_CHECK = 1

DATA ?= synthetic
PROFILE ?= quick
MITDB_DIR ?= data/mitdb
KAGGLE_DIR ?= data/kaggle
OUT ?= runs/study-$(DATA)-$(PROFILE)
BENCH_OUT ?= runs/bench

.PHONY: study test bench lab pretrained clean-venv

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

study: $(BIN)/.installed
	$(BIN)/ecglib study --profile $(PROFILE) --data $(DATA) --mitdb-dir $(MITDB_DIR) --kaggle-dir $(KAGGLE_DIR) --out $(OUT)

# The linter first (seconds), then the suite.
test: $(BIN)/.installed
	$(BIN)/ruff check ecglib tests benchmarks
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Real beats when MITDB_DIR is given (the README's table: 3 seeds per trained row); else a synthetic smoke run.
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_odenet.py $(if $(filter command line,$(origin MITDB_DIR)),--mitdb-dir $(MITDB_DIR),--train-beats 4096 --test-beats 1000 --seeds 1) --out $(BENCH_OUT)

# The pretrained models (ecglib/pretrained/): trained afresh on DS1, scored on DS2 with `annotate` + `score`, weights
# and cards written (about 45 minutes on the busy 2-core VM). MITDB_DIR must hold the 48 records.
pretrained: $(BIN)/.installed
	$(BIN)/python benchmarks/train_pretrained.py --mitdb-dir $(MITDB_DIR)

lab: $(BIN)/.installed
	$(BIN)/jupyter lab notebooks/

clean-venv:
	rm -rf $(VENV)

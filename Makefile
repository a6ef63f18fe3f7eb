# Two entry points, each of which builds the virtual environment first when it is missing:
#   make reproduce   run the whole Snakemake pipeline (every table and figure in paper/)
#   make test        run the test suite
# The environment is pinned: pyproject.toml pins the libraries the results depend on, and
# requirements.lock (pip freeze of a working install) pins everything else.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
CORES ?= all
CONFIG ?= workflow/config/default.yaml
# Nothing here may touch the network at run time (open_clip would otherwise ask the HF hub).
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv test reproduce lock clean-venv

$(BIN)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

test: venv
	$(BIN)/python -m pytest -n 2 -p no:cacheprovider

# The profile makes a rerun after an interruption resume (rerun-incomplete) and lets independent
# runs finish when one fails (keep-going); Snakemake finds it only when told (its default lookup is
# profiles/ beside the Snakefile).
reproduce: venv
	$(BIN)/snakemake --workflow-profile workflow/profiles/default --cores $(CORES) --configfile $(CONFIG)

# Refresh requirements.lock after changing dependencies in pyproject.toml.
lock: venv
	$(BIN)/python -m pip freeze --exclude-editable > requirements.lock

clean-venv:
	rm -rf $(VENV)

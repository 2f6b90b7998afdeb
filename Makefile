# make venv   - create .venv with pinned dependencies (no-op when up to date)
# make test   - the whole test suite (installs first)
# make serve  - Cog's HTTP server on 127.0.0.1:$(PORT), model from $$ASR_MODEL

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 5000
# The CPU build of torch for local work; override for another index, e.g.
#   make venv TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: venv test serve clean tiny-model

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip>=23"
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH_SPEC)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

serve: venv
	COG_PREDICT_TYPE_STUB=predict.py:Runner PORT=$(PORT) $(PY) -m cog.server.http --host 127.0.0.1

clean:
	rm -rf $(VENV) .pytest_cache .cache

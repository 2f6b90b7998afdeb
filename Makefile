# make venv   - create .venv with pinned dependencies and the `asr` command (no-op when up to date)
# make test   - the whole test suite (installs first)
# make serve  - Cog's HTTP server on 127.0.0.1:$(PORT), model from $$ASR_MODEL
# make weights - download Canary-1B-v2, AmberNet and Sortformer (or WEIGHTS_MODELS="a b") into weights/ (before cog build)
# make test-audio - fetch the public recordings the tests and benchmarks use into .cache/test-audio
# make gpu-wheels - the cp312 wheels benchmarks/gpu_check.sh installs on a GPU host without an index

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 5000
# torch: the CPU build (a 0.19 GB wheel) unless this machine has an NVIDIA GPU (nvidia-smi lists
# one), where PyPI's CUDA build is taken. The CPU build comes from the configured package
# indexes when they hold it, else from PyTorch's CPU index (TORCH_CPU_INDEX). Override with e.g.
#   make venv TORCH_SPEC=torch==2.13.0            # PyPI's CUDA build (about 20 NVIDIA wheels, several GB)
#   make venv TORCH_SPEC=torch==2.13.0+cpu        # the CPU build even on a GPU machine
TORCH_VERSION := 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
HAVE_NVIDIA_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
ifeq ($(HAVE_NVIDIA_GPU),yes)
TORCH_SPEC ?= torch==$(TORCH_VERSION)
else
TORCH_SPEC ?= torch==$(TORCH_VERSION)+cpu
endif
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
PYTEST_ARGS ?=

.PHONY: venv test serve clean weights test-audio gpu-wheels

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade "pip>=23"
	@echo "installing $(TORCH_SPEC)"
	$(PIP) $(TORCH_SPEC) 2>/dev/null || { case "$(TORCH_SPEC)" in *+cpu*) \
		echo "$(TORCH_SPEC) is not on the configured indexes: trying $(TORCH_CPU_INDEX)"; \
		$(PIP) $(TORCH_SPEC) --extra-index-url $(TORCH_CPU_INDEX);; *) $(PIP) $(TORCH_SPEC);; esac; }
	$(PIP) -r requirements-dev.txt -c constraints.txt
	PYTHONWARNINGS=ignore $(PIP) --no-deps -e .  # the asr command; silences setuptools' editable-mode notice
	touch $@

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

# coglet starts its worker with the `python` found on PATH, so the venv goes first on PATH.
# tools/serve.py runs coglet and exits 1 with a plain message when setup fails (no weights).
# MALLOC_ARENA_MAX: as in cog.yaml; glibc must see it at start-up (see asr/pipeline.py).
serve: venv
	$(PY) tools/openapi_schema.py predict.py:Runner --out .cog/openapi_schema.json
	PATH="$(abspath $(VENV))/bin:$$PATH" COG_PREDICT_TYPE_STUB=predict.py:Runner PORT=$(PORT) \
		MALLOC_ARENA_MAX="$${MALLOC_ARENA_MAX:-2}" \
		$(PY) tools/serve.py --host 127.0.0.1

# The real checkpoints, for `cog build` (needs network access to Hugging Face); list them in
# cog.yaml's ASR_MODEL, comma-separated.
WEIGHTS_MODELS ?= nvidia/canary-1b-v2 nvidia/langid_ambernet nvidia/diar_streaming_sortformer_4spk-v2
weights: venv
	@asr=""; lid=""; diar=""; for m in $(WEIGHTS_MODELS); do \
		f=$$($(PY) tools/download_weights.py --model $$m --out weights) || exit 1; echo "wrote $$f"; \
		case $$m in *langid*) lid=" ASR_LID_MODEL=$$f";; *diar*) diar=" ASR_DIAR_MODEL=$$f";; \
			*) asr="$${asr:+$$asr,}$$f";; esac; done; \
	echo "serve them with: $${asr:+ASR_MODEL=$$asr}$$lid$$diar make serve"

# The real recordings for tests and benchmarks (standard library only; sha256-checked).
test-audio:
	@$(PYTHON) tools/fetch_test_audio.py --out .cache/test-audio

# What a GPU host with its own Python 3.12 and PyTorch lacks (see tools/gpu_wheels.txt).
gpu-wheels: venv
	$(PY) tools/gpu_wheels.py --out build/gpu-wheels

clean:
	rm -rf $(VENV) .pytest_cache .cache

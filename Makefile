# troupe's front door: thin targets over the `troupe` command (all logic lives in troupe/).
#   make demo                                  the whole pipeline on a tiny local model (CPU)
#   make train CHARACTER=kaltsit ARGS="max_steps=2"
# Variables reach troupe only as environment variables, never as make text or shell words: every
# verb runs `troupe <verb> --from-make`, which reads CHARACTER, ARGS, GPUS … from its environment
# (troupe/cli.py: argv_from_make) and validates each before it touches the filesystem. `$(value …)`
# keeps make from expanding anything inside them: CHARACTER='$(shell …)' or ARGS='`…`' reach troupe
# as plain text.

PYTHON ?= python3
VENV   := .venv
TROUPE := $(VENV)/bin/troupe
# The stamp is named by the dependency spec's hash: a second `make setup` does nothing, a changed
# pyproject.toml or requirements.lock installs again.
SPEC_HASH := $(shell cat pyproject.toml requirements.lock requirements-models.txt | sha256sum | cut -c1-16)
STAMP  := $(VENV)/.troupe-setup-$(SPEC_HASH)
LLAMA_CPP := $(VENV)/share/llama.cpp
LLAMA_CPP_VERSION := $(shell sed -n 's/^llama_cpp_python==//p' requirements.lock)
LLAMA_CPP_FILES := convert_hf_to_gguf.py convert_lora_to_gguf.py conversion gguf-py

USER_VARIABLES := CHARACTER ARGS FROM NAME FORCE DEBUG GPUS TOP PARALLEL DRY_RUN RESUME ALLOW_UNSAFE FILE PORT NODES NODE_RANK MASTER
$(foreach v,$(USER_VARIABLES),$(eval override $(v) := $$(value $(v))))
export $(USER_VARIABLES)
.DEFAULT_GOAL := help
# The verbs that take their options from the variables above, one rule for all of them (below).
VERBS := list check new speakers discover convert preprocess train preflight evaluate merge export share import \
	verify serve chat
.PHONY: help setup lock demo demo-real base test test-fast $(VERBS)

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'
	@echo "  CHARACTER=<recipe name or path>, ARGS=\"key=value ...\" (overrides), e.g. make train CHARACTER=demo ARGS=\"max_steps=2\""

setup: $(STAMP) ## create .venv and install troupe with its pinned dependencies (once)

$(STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "troupe needs Python >= 3.11")'
	rm -f $(VENV)/.troupe-setup-*
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet torch==2.13.0
	@# Gemma 4 and other multimodal bases need torchvision for the processor Axolotl loads; its
	@# PyPI build needs CUDA torch, so it is installed only where there is a GPU.
	if nvidia-smi -L >/dev/null 2>&1; then $(VENV)/bin/pip install --quiet torchvision==0.28.0; fi
	$(VENV)/bin/pip install --quiet -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps -r requirements-models.txt
	@# llama.cpp's own converters (convert_hf_to_gguf.py, convert_lora_to_gguf.py, their package and
	@# gguf-py) from the source package of the llama-cpp-python just built: `make export` runs them.
	$(VENV)/bin/pip download --quiet --no-deps --no-binary :all: llama-cpp-python==$(LLAMA_CPP_VERSION) -d $(VENV)/share
	rm -rf $(LLAMA_CPP) && mkdir -p $(LLAMA_CPP)
	tar -xzf $(VENV)/share/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz -C $(LLAMA_CPP) --strip-components=3 \
		$(addprefix llama_cpp_python-$(LLAMA_CPP_VERSION)/vendor/llama.cpp/,$(LLAMA_CPP_FILES))
	rm $(VENV)/share/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

lock: setup ## re-pin requirements.lock from the current .venv (after editing pyproject.toml)
	@{ head -3 requirements.lock; $(VENV)/bin/pip freeze --exclude-editable | grep -v -E '^(torch==|troupe)'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

demo: setup ## convert → tiny model → preprocess → train → evaluate → merge, on CPU, with a summary
	$(TROUPE) demo --args "$$ARGS"

demo-real: setup ## the same on a real model: SmolLM2-135M-Instruct from its registry package, an original English character
	$(TROUPE) demo --recipe demo_real --args "$$ARGS"

base: setup ## a real base model from its registry package → models/<NAME>/ (NAME=smollm2-135m-instruct)
	$(TROUPE) base "$${NAME:-smollm2-135m-instruct}"

test: setup ## run the test suite (unit, every recipe, end to end on the tiny model, README commands)
	$(VENV)/bin/python -m pytest

test-fast: setup ## unit tests only (under a minute)
	$(VENV)/bin/python -m pytest -m "not slow"

# Each verb's line says what it does (`make help` lists them); one rule runs them all.
list: ## list the recipes
check: ## report every problem in a recipe: make check CHARACTER=kaltsit (with GPUS, PARALLEL, NODES: that run)
new: ## copy a recipe: make new CHARACTER=amiya FROM=kaltsit [NAME=阿米娅] [FORCE=1]
speakers: ## who speaks how often in a recipe's stories (TOP=30)
discover: ## rewrite the link list with every story where the character speaks (needs network)
convert: ## build datasets/<CHARACTER>/ from the recipe's source
preprocess: ## tokenise with Axolotl (DEBUG=1 shows which tokens are trained)
train: ## check, convert if needed, preprocess, train (GPUS=N [PARALLEL=zero2|fsdp2] [NODES= NODE_RANK= MASTER=], DRY_RUN=1, RESUME=1)
preflight: ## on every machine: do all nodes have the same config, data, recipe, versions? (NODES= NODE_RANK= MASTER=)
evaluate: ## the character-fidelity report → outputs/<CHARACTER>/eval/ (metrics, generations, report.html)
merge: ## merge the adapter → outputs/<CHARACTER>/merged/ (with the trained chat template)
export: ## GGUF files for llama.cpp, LM Studio and Ollama → outputs/<CHARACTER>/export/ (checked in llama.cpp)
share: ## outputs/<CHARACTER>/share/<CHARACTER>.recipe.yaml: recipe + link list + dataset lock, no data
import: ## add a shared recipe: make import FILE=kaltsit.recipe.yaml [FORCE=1] [ALLOW_UNSAFE=1]
verify: ## rebuild the dataset from source and compare with the lock (exit 1 naming what differs)
serve: ## an OpenAI-compatible server for CHARACTER on 127.0.0.1 (PORT=8000)
chat: ## talk to CHARACTER in the terminal (/reset, /exit)

$(VERBS): setup
	$(TROUPE) $@ --from-make

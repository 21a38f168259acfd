# DenseCap developer entry points. Every target sets up what it needs first.
#   make demo   - the main job on an embedded default (see README)
#   make test   - both test tiers on Blender 4.5 LTS (Python 3.11) and Blender 5.2 (Python 3.13)
#   make zip    - the installable extension zip(s) in dist/
#   make bench  - the measurement suite: bench/results/*.json, bench/report.md + plots
#   make peer   - .venv-peer: MediaPipe's own Python face mesh, the bench's peer (dev only)

SHELL := /bin/bash
ROOT := $(abspath .)
SHARED ?= $(abspath ../shared)
PY311 ?= $(shell command -v python3.11 2>/dev/null || echo python3)
PY313 ?= $(shell python3.13 -c 'import sys' >/dev/null 2>&1 && command -v python3.13 || ls -d $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13 2>/dev/null | tail -1)
VENV := .venv
VENV52 := .venv-blender52
PY := $(VENV)/bin/python
PY52 := $(VENV52)/bin/python
ASSETS := assets/face_model.npz
MODELS := assets/models/face_landmark.onnx
DENSE_MODELS := assets/models/dense320.onnx assets/models/dense703.onnx
NETWORKS := $(MODELS) $(DENSE_MODELS)

.PHONY: setup setup52 assets models demo demo-rig test test-unit test-blender test-blender52 zip bench peer clean

setup: $(VENV)/.installed
setup52: $(VENV52)/.installed

# A venv, the pinned packages, and the repository root importable as `densecap`
# (a link in the venv plus a .pth file: the root is the Blender extension package).
define make_venv
	rm -rf $(1)
	$(2) -m venv $(1)
	$(1)/bin/pip install -q --upgrade pip
	$(1)/bin/pip install -q -r requirements-dev.txt
	mkdir -p $(1)/densecap-src
	ln -sfn $(ROOT) $(1)/densecap-src/densecap
	echo $(ROOT)/$(1)/densecap-src > $$($(1)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/densecap.pth
	printf '#!/bin/sh\nexec "$$(dirname "$$0")/python" -m densecap.tracking "$$@"\n' > $(1)/bin/densecap
	chmod +x $(1)/bin/densecap
	touch $(1)/.installed
endef

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(call make_venv,$(VENV),$(PY311))

$(VENV52)/.installed: requirements.txt requirements-dev.txt
	@test -n "$(PY313)" || { echo "Python 3.13 not found: set PY313=/path/to/python3.13"; exit 1; }
	$(call make_venv,$(VENV52),$(PY313))

assets: $(ASSETS)
$(ASSETS): $(VENV)/.installed tools/build_assets.py $(wildcard landmarks/data/*_embedding.npz)
	$(PY) -m tools.build_assets --ict $(SHARED)/ict-facekit/ict_face_model.npz --out $@

# Face detector / face mesh / iris networks: mediapipe 0.10.21 wheel (cached in build/) -> ONNX.
models: $(NETWORKS)
$(MODELS): $(VENV)/.installed tools/mediapipe_models.py tools/tflite_to_onnx.py
	$(PY) -m tools.mediapipe_models --cache build/mediapipe --out assets/models

# Our own trained dense landmark networks (fp16 ONNX, committed with the commands that
# reproduce them and their metrics: training/README.md, runs 31-36, 40, 42 and 45), built
# into the int8 networks the front end runs (tools/quantize_network.py, about 30 s each).
assets/models/%.onnx: training/models/%.onnx tools/quantize_network.py $(ASSETS)
	$(PY) -m densecap.tools.quantize_network --model $< --out $@

# The main job: track a clip from ../shared/footage into a Performance, an animated .blend and
# a preview video with the fit drawn over the footage (DEMO_CLIP=... to use another clip).
DEMO_CLIP ?= $(SHARED)/footage/talking_2.mp4
demo: $(ASSETS) $(NETWORKS)
	mkdir -p out
	$(VENV)/bin/densecap track $(DEMO_CLIP) --out out/demo.npz --blend out/demo.blend --preview out/demo_preview.mp4

# The generated rig alone, keyframed with example expressions (no footage needed).
demo-rig: $(ASSETS)
	$(PY) -m densecap.densecap_addon.demo

test: test-unit test-blender test-blender52

test-unit: $(ASSETS) $(NETWORKS)
	$(PY) -m pytest -q tests/unit

test-blender: $(ASSETS) $(NETWORKS)
	$(PY) -m pytest -q tests/blender

test-blender52: $(ASSETS) $(NETWORKS) $(VENV52)/.installed
	$(PY52) -m pytest -q tests/blender

zip: $(ASSETS) $(NETWORKS)
	$(PY) -m tools.build_extension

# Accuracy, stability and speed side by side with the peer (< 15 min on 2 cores; see
# bench/README.md). BENCH_ARGS="--full" for all images and frames, "--eval-dir DIR --clips DIR".
PEER := .venv-peer
bench: $(ASSETS) $(NETWORKS) $(PEER)/.installed
	$(PY) -m bench $(BENCH_ARGS)

peer: $(PEER)/.installed
$(PEER)/.installed:
	rm -rf $(PEER)
	$(PY311) -m venv $(PEER)
	$(PEER)/bin/pip install -q "mediapipe==0.10.21" "numpy<2"
	touch $@

clean:
	rm -rf $(VENV) $(VENV52) assets dist wheels build

# affectedge developer entry points.
#
#   make demo     create .venv, install affectedge (+onnx, eeg, face), run the live demo (~30 s)
#   make test     same set-up plus the [dev] extra, run the whole test suite
#   make bench    kernel benchmarks against librosa / SciPy / NumPy anchors, then the live-pipeline benchmark
#   make models   retrain, evaluate and re-export every zoo model from ../shared/data
#   make warmup   compile and cache every Numba kernel
#   make arm64-check  (as root) on an emulated Raspberry Pi OS 64-bit: kernels, zoo models, run, profiles detect
#   make clean    remove .venv, build outputs and caches
#
# Re-running a target does not reinstall: stamp files in .venv record what
# was installed and are only rebuilt when setup.py or pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

# Debian packages some later extra needs (portaudio19-dev for pyaudio, chromium for the dashboard's browser test).
# Installed with apt-get only when one is missing and we run as root;
# otherwise the missing ones are listed with the command to install them.
SYSTEM_PACKAGES ?= portaudio19-dev chromium

# What the install depends on: reinstall when packaging metadata changes.
PKG_META   := setup.py $(wildcard pyproject.toml)
STAMP_CORE := $(VENV)/.stamp-demo
STAMP_DEV  := $(VENV)/.stamp-test
STAMP_TRAIN := $(VENV)/.stamp-train
DATA ?= ../shared/data
ZOO  := sdk/models/zoo

.PHONY: all venv system-deps demo test bench models warmup clean arm64-check

all: test

system-deps:
	@command -v dpkg >/dev/null 2>&1 || exit 0; \
	missing=""; \
	for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing system packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "missing system packages:$$missing"; \
	    echo "install them with: sudo apt-get install$$missing"; \
	    exit 1; \
	  fi; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

venv: $(STAMP_CORE)

$(STAMP_CORE): $(PKG_META) | system-deps $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[onnx,eeg,face]'
	@touch $@

$(STAMP_DEV): $(PKG_META) $(STAMP_CORE)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	@touch $@

demo: $(STAMP_CORE)
	$(BIN)/affectedge demo

test: $(STAMP_DEV)
	$(BIN)/python -m pytest -q tests

bench: $(STAMP_DEV)
	$(BIN)/python bench/kernels.py
	$(BIN)/python bench/pipeline.py

$(STAMP_TRAIN): $(PKG_META) $(STAMP_CORE)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[train]'
	@touch $@

# Evaluation first: the speech and face cards copy their figures from reports/.
# (The EEG tasks evaluate again inside `train` for their cards.)
models: $(STAMP_TRAIN)
	$(BIN)/affectedge evaluate --task speech --protocol loso --data $(DATA)/speech/emodb --out reports/speech
	$(BIN)/affectedge train speech --data $(DATA)/speech/emodb --out $(ZOO)/speech-emotion
	$(BIN)/affectedge evaluate --task face --protocol subject-kfold --data $(DATA)/face --out reports/face
	$(BIN)/affectedge evaluate --task face --protocol heldout --data $(DATA)/face --out reports/face
	$(BIN)/affectedge train face --data $(DATA)/face --out $(ZOO)/face-expression
	$(BIN)/affectedge train face-pixels --data $(DATA)/face --out $(ZOO)/face-expression-pixels
	$(BIN)/affectedge evaluate --task eeg --protocol subject-kfold --data $(DATA)/eeg/deap_de_features --out reports/eeg/subject-kfold
	$(BIN)/affectedge evaluate --task eeg --protocol subject-independent --data $(DATA)/eeg/deap_de_features --out reports/eeg/subject-independent
	$(BIN)/affectedge train eeg --data $(DATA)/eeg/deap_de_features --out $(ZOO)/eeg-valence-arousal
	$(BIN)/affectedge evaluate --task mental-state --protocol loso --data $(DATA)/eeg/muse_mentalstate --out reports/mental-state
	$(BIN)/affectedge train mental-state --data $(DATA)/eeg/muse_mentalstate --out $(ZOO)/eeg-mental-state
	for m in speech-emotion face-expression eeg-valence-arousal eeg-mental-state; do \
	  $(BIN)/python scripts/zoo_artifacts.py $$m || exit 1; done
	$(BIN)/python scripts/zoo_artifacts.py face-expression-pixels --report reports/face-pixels/quantize
	$(BIN)/affectedge models list

warmup: $(STAMP_CORE)
	$(BIN)/affectedge kernels warmup

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Raspberry Pi OS 64-bit (Debian bookworm arm64) under qemu-user, as root; the root file
# system is cached in build/arm64-root. The host venv (make test's) gives the reference
# outputs of every shipped zoo artifact. ARM64_ARCH=armhf: 32-bit Pi OS, NumPy twins only.
# See scripts/README.md.
arm64-check: $(STAMP_DEV)
	bash scripts/arm64_check.sh

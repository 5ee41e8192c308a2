# affectedge developer entry points.
#
#   make demo     create .venv, install affectedge (core deps), run the demo
#   make test     same set-up plus the [dev] extra, run the whole test suite
#   make bench    kernel benchmarks against librosa / SciPy / NumPy anchors
#   make warmup   compile and cache every Numba kernel
#   make clean    remove .venv, build outputs and caches
#
# Re-running a target does not reinstall: stamp files in .venv record what
# was installed and are only rebuilt when setup.py or pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

# Debian packages some later extra needs (e.g. portaudio19-dev for pyaudio).
# Installed with apt-get only when one is missing and we run as root;
# otherwise the missing ones are listed with the command to install them.
SYSTEM_PACKAGES ?=

# What the install depends on: reinstall when packaging metadata changes.
PKG_META   := setup.py $(wildcard pyproject.toml)
STAMP_CORE := $(VENV)/.stamp-demo
STAMP_DEV  := $(VENV)/.stamp-test

.PHONY: all venv system-deps demo test bench warmup clean

all: test

system-deps:
	@command -v dpkg >/dev/null 2>&1 || exit 0; \
	missing=""; \
	for p in $(SYSTEM_PACKAGES); do \
	  dpkg -s "$$p" >/dev/null 2>&1 || missing="$$missing $$p"; \
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
	$(BIN)/python -m pip install --disable-pip-version-check -q -e .
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

warmup: $(STAMP_CORE)
	$(BIN)/affectedge kernels warmup

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

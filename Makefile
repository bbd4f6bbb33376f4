# Everything a newcomer needs: `make run` (install + the main job) and `make test` (install + the suite).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
MODEL  ?= swiftformer-l1
OUT    ?= artifacts

.PHONY: run test test-all bench zoo lint clean tools swift-test

# The venv is rebuilt only when the pins change. torch/torchvision are a ~6 GB CUDA build that runs on the CPU.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==25.3
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The main job: convert to CoreML + ExecuTorch (+ ONNX reference), validate every artifact, benchmark on this host.
run: $(STAMP)
	$(VENV)/bin/edgevit convert $(MODEL) --target coreml executorch onnx --out $(OUT)
	$(VENV)/bin/edgevit bench $(MODEL) --artifacts $(OUT) --out $(OUT)/$(MODEL).bench.json

# The device-harness tests need a JDK (the Android harness's Java core) and Debian's adb (driver errors).
# Installed from Debian when missing and we may; otherwise those tests skip and say why.
tools:
	@command -v javac >/dev/null 2>&1 && command -v adb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends adb default-jdk-headless >/dev/null; \
	  else echo "note: javac/adb missing and not root: Android harness tests will skip"; fi; }

# The iOS harness (ios_harness/, Swift 6): everything but the CoreML calls and the SwiftUI app builds and is
# tested off Apple platforms too. Uses `swift` on PATH, else /opt/swift; without one it says so and passes.
# `make test SWIFT=` skips it. The scratch path is the one tests/test_ios_harness.py reuses (git-ignored).
ifeq ($(origin SWIFT),undefined)
SWIFT := $(shell command -v swift 2>/dev/null || { test -x /opt/swift/usr/bin/swift && echo /opt/swift/usr/bin/swift; })
endif
SWIFT_FLAGS := --package-path ios_harness --scratch-path ios_harness/.build
export SWIFT

swift-test:
	@if [ -z "$(SWIFT)" ]; then \
	  echo "note: no Swift toolchain (swift on PATH or /opt/swift/usr/bin/swift): skipping swift build/test of ios_harness/"; \
	else \
	  echo "ios_harness: swift build + swift test with $(SWIFT) ($$($(SWIFT) --version 2>/dev/null | head -n 1))"; \
	  $(SWIFT) build $(SWIFT_FLAGS) --build-tests -j $$(nproc 2>/dev/null || echo 2) && \
	  $(SWIFT) test $(SWIFT_FLAGS) --skip-build; \
	fi

test: $(STAMP) tools swift-test
	$(PY) -m pytest -q --timeout=1200 -p no:logging --durations=25

# Every slow model sweep too (all variants x all targets).
test-all: $(STAMP) tools
	$(PY) -m pytest -q --timeout=3600 -p no:logging -m ''

# Host report for the seed models at 1 and 2 threads (batches 1 and 32), each .pte timed against its .onnx by the
# fair protocol and profiled op by op (not the eager PyTorch forms: `edgevit bench MODEL` times those too):
# reports/report.md (with the .pte-vs-onnxruntime table), report.html, pareto.png, the raw results JSON per thread
# count with the profiles beside them, and the protocol's self-check.
BENCH_MODELS ?= swiftformer-xs swiftformer-s swiftformer-l1 swiftformer-l3 fastvit-t8 fastvit-t12 fastvit-s12 \
		fastvit-sa12 fastvit-sa24 fastvit-sa36 fastvit-ma36 turbovit hiera-t
# e.g. make bench BENCH_THREADS=1 BENCH_ARGS="--batch 1" (default: 1 and 2 threads, batches 1 and 32)
BENCH_THREADS ?= 1 2
BENCH_ARGS ?=
bench: $(STAMP)
	for t in $(BENCH_THREADS); do \
	  $(VENV)/bin/edgevit bench $(BENCH_MODELS) --threads $$t --profile --no-eager $(BENCH_ARGS) \
	    --out reports/host-bench-$${t}t.json || exit 1; \
	done
	$(VENV)/bin/edgevit report $(foreach t,$(BENCH_THREADS),reports/host-bench-$(t)t.json) --out reports
	$(PY) docs/bench_self_check.py swiftformer-xs --threads $(BENCH_THREADS) | tee reports/self-check.txt

# The curated zoo to CoreML + ExecuTorch (status, parity, MIL layout ops, .pte latency) and the FastViT report.
zoo: $(STAMP)
	$(VENV)/bin/edgevit zoo --json reports/zoo.json --markdown reports/zoo.md
	$(VENV)/bin/edgevit zoo --fastvit --json reports/fastvit.json --markdown reports/fastvit.md

# ruff, and the layering contract in .importlinter (ARCHITECTURE.md): no layer imports one above it.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) $(OUT) reports ios_harness/.build

# Everything a newcomer needs: `make run` (install + the main job) and `make test` (install + the suite).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
MODEL  ?= swiftformer-l1
OUT    ?= artifacts

.PHONY: run test test-all bench lint clean

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

test: $(STAMP)
	$(PY) -m pytest -q --timeout=1200

# Every slow model sweep too (all variants x all targets).
test-all: $(STAMP)
	$(PY) -m pytest -q --timeout=3600 -m ''

bench: $(STAMP)
	$(VENV)/bin/edgevit bench swiftformer-xs swiftformer-s swiftformer-l1 swiftformer-l3 --out reports/host-bench.json
	$(VENV)/bin/edgevit report reports/host-bench.json --out reports

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(OUT) reports

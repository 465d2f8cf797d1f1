# Two commands matter on a fresh machine: `make demo` and `make test` (README.md).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/inrkit train ldmi --modality sphere --preset tiny --out demo-run --overwrite
	$(BIN)/inrkit sample demo-run --n 8 --resolution 92
	@echo "demo outputs: demo-run/ (samples in demo-run/samples/)"

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python benchmarks/run_cpu.py

clean:
	rm -rf $(VENV) demo-run

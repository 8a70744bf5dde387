# liquidbench: `make run` runs the local CPU study, `make test` the test suite.
PYTHON ?= python3
VENV   ?= .venv
CORES  ?= 2
BIN    := $(abspath $(VENV))/bin
# Rules call `liquidbench`, so the environment's bin directory goes first on PATH.
export PATH := $(BIN):$(PATH)

.PHONY: install run reproduce smoke test test-fast bench lint image sif gpu-check clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

run: install
	snakemake --cores $(CORES) --configfile config/local.yaml

# The LTC paper's time-series study with its hyper-parameters and the published-vs-reproduced table
# (config/paper.yaml; long on CPU, see docs/paper.md).
reproduce: install
	snakemake --cores $(CORES) --configfile config/paper.yaml

# The smoke study's features561 HAR archive is a small synthetic one in the original layout
# (tests/har_archive.py); its inertial HAR and traffic data are the real copies in ../shared/data.
SMOKE_HAR := data/smoke-mirror/UCI_HAR_synthetic.zip

smoke: install
	test -f "$(SMOKE_HAR)" || python tests/har_archive.py "$(SMOKE_HAR)"
	snakemake --cores $(CORES) --configfile .test/config/config.yaml

test: install
	pytest -ra

test-fast: install
	pytest -ra -m "not slow"

# Prove a GPU node (docs/gpu-check.md): results/gpu-check/report.md; stops at once without a GPU.
gpu-check: install
	@liquidbench gpu-check

bench: install
	python benchmarks/run.py

lint: install
	snakemake --lint --configfile config/config.yaml

# The container image with podman (VARIANT=cuda, the default: GPU nodes; VARIANT=cpu: CI, laptops);
# where no registry is reachable: containers/build.sh --debian-base. TORCH_INDEX: the PyPI-style
# index torch comes from, e.g. https://download.pytorch.org/whl/cu126 for nodes whose NVIDIA driver
# is older than CUDA 13.0's 580 (docs/containers.md).
VARIANT ?= cuda
TORCH_INDEX ?=
image:
	containers/build.sh --variant $(VARIANT) $(if $(TORCH_INDEX),--torch-index '$(TORCH_INDEX)')

# The Apptainer image liquidbench-VERSION.sif (needs Apptainer, and Docker or podman)
sif:
	containers/build-sif.sh --variant $(VARIANT) $(if $(TORCH_INDEX),--torch-index '$(TORCH_INDEX)')

clean:
	rm -rf results/runs results/tables results/figures data/processed logs studies .snakemake

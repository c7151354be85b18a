# urbanunits — every target sets itself up: a fresh clone needs only Python 3.11 and the package
# registries. CONFIG=configs/ningbo.toml selects another run.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/lujiazui.toml
STAMP := $(VENV)/.installed-stamp
export MPLBACKEND := Agg

.PHONY: help setup units packages lifecircle programme sites maps all ingest test lint bench fetch \
	clip batch notebook publish filegdb html system-deps clean distclean

help:
	@echo "make units       update units (更新单元): GeoPackage + map in data/processed/<name>/"
	@echo "make packages    renewal packages (片区化改造)"
	@echo "make lifecircle  15-minute life circles (生活圈)"
	@echo "make programme   project library: scores, phasing into years (项目库)"
	@echo "make sites       sites for missing facilities, supply and demand (选址)"
	@echo "make maps        redraw every map"
	@echo "make all         every stage, tables and maps (exit 3: a stage skipped for want of data)"
	@echo "make ingest      parse the OSM extract into the cache only"
	@echo "make fetch       download the study area's OSM data from Overpass (online)"
	@echo "make clip PBF=f  cut the study area out of a large .osm.pbf (offline)"
	@echo "make publish TO=postgresql://user@host:5432/db[?schema=NAME]"
	@echo "                 publish the run to PostGIS (password: PGPASSWORD or ~/.pgpass)"
	@echo "make filegdb     File Geodatabase for ArcGIS Pro (<output>/<name>.gdb)"
	@echo "make html        the browser map alone (<output>/<name>.html; make all writes it too)"
	@echo "make batch CONFIGS=\"a.toml b.toml\"  many cities on a local Dask cluster"
	@echo "                 (SCHEDULER=tcp://host:8786 uses a running cluster)"
	@echo "make notebook    JupyterLab on notebooks/ (installs the [notebook] extra once)"
	@echo "make test        run the test suite (a few minutes on 2 cores; PostGIS and Chromium"
	@echo "                 tests need make system-deps, as root)"
	@echo "make lint        ruff, mypy and the import contracts (lint-imports)"
	@echo "make bench       city-scale benchmarks (slow: about 10 minutes; synthetic inputs are"
	@echo "                 cached in benchmarks/out/)"
	@echo "make setup       create .venv and install the toolkit (every target does it first)"
	@echo "make clean       remove outputs in data/processed/; distclean also removes .venv"
	@echo "make system-deps Debian packages the tests use: PostgreSQL + PostGIS, Chromium (root)"
	@echo "CONFIG=configs/ningbo.toml selects another config; FORCE=1 computes a stage whose"
	@echo "                 results are up to date (otherwise it is left as it is)"

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

setup: $(STAMP)

ingest: $(STAMP)
	$(BIN)/urbanunits ingest --config $(CONFIG)

units: $(STAMP)
	$(BIN)/urbanunits units --config $(CONFIG) $(if $(FORCE),--force)

packages: $(STAMP)
	$(BIN)/urbanunits packages --config $(CONFIG) $(if $(FORCE),--force)

lifecircle: $(STAMP)
	$(BIN)/urbanunits lifecircle --config $(CONFIG) $(if $(FORCE),--force)

programme: $(STAMP)
	$(BIN)/urbanunits programme --config $(CONFIG) $(if $(FORCE),--force)

sites: $(STAMP)
	$(BIN)/urbanunits sites --config $(CONFIG) $(if $(FORCE),--force)

maps: $(STAMP)
	$(BIN)/urbanunits maps --config $(CONFIG)

all: $(STAMP)
	$(BIN)/urbanunits all --config $(CONFIG)

fetch: $(STAMP)
	$(BIN)/urbanunits fetch --config $(CONFIG)

clip: $(STAMP)
	@test -n "$(PBF)" || { echo "usage: make clip PBF=path/to/big.osm.pbf [CONFIG=...]"; exit 2; }
	$(BIN)/urbanunits clip "$(PBF)" --config $(CONFIG)

batch: $(STAMP)
	@test -n "$(CONFIGS)" || { echo "usage: make batch CONFIGS=\"configs/a.toml configs/b.toml\""; exit 2; }
	$(BIN)/urbanunits batch $(CONFIGS) $(if $(SCHEDULER),--scheduler $(SCHEDULER))

notebook: $(STAMP)
	$(BIN)/python -c 'import jupyterlab' 2>/dev/null || \
		$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[notebook]'
	$(BIN)/jupyter lab --notebook-dir=notebooks

# The URL is not echoed (@): it may hold a password.
publish: $(STAMP)
	@test -n "$(TO)" || { echo "usage: make publish TO='postgresql://user@host:5432/dbname[?schema=NAME]' (password in PGPASSWORD or ~/.pgpass)"; exit 2; }
	@echo "urbanunits publish --config $(CONFIG) --to <url>"
	@$(BIN)/urbanunits publish --config $(CONFIG) --to '$(TO)'

filegdb: $(STAMP)
	$(BIN)/urbanunits export --format filegdb --config $(CONFIG)

html: $(STAMP)
	$(BIN)/urbanunits export --format html --config $(CONFIG)

system-deps:
	.ci/system-deps

test: $(STAMP)
	URBANUNITS_PROGRESS=0 $(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -c 'import pandana' 2>/dev/null || \
		$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[bench]'
	$(BIN)/python -m benchmarks

clean:
	rm -rf data/processed/* data/processed/.[!.]* .pytest_cache .ruff_cache .mypy_cache
	touch data/processed/.gitkeep

distclean: clean
	rm -rf $(VENV)

# urbanunits — every target sets itself up: a fresh clone needs only Python 3.11 and the package
# registries. CONFIG=configs/ningbo.toml selects another run.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/lujiazui.toml
STAMP := $(VENV)/.installed-stamp
export MPLBACKEND := Agg

.PHONY: help setup units packages lifecircle sites maps all ingest test lint bench fetch clip clean distclean

help:
	@echo "make units       update units (更新单元): GeoPackage + map in data/processed/"
	@echo "make packages    renewal packages (片区化改造)"
	@echo "make lifecircle  15-minute life circles (生活圈)"
	@echo "make sites       sites for missing facilities, supply and demand (选址)"
	@echo "make maps        redraw every map"
	@echo "make all         every stage, tables and maps"
	@echo "make fetch       download the study area's OSM data from Overpass (online)"
	@echo "make clip PBF=f  cut the study area out of a large .osm.pbf (offline)"
	@echo "make test        run the test suite"
	@echo "make bench       city-scale benchmarks (slow)"
	@echo "CONFIG=configs/ningbo.toml selects another config"

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
	$(BIN)/urbanunits units --config $(CONFIG)

packages: $(STAMP)
	$(BIN)/urbanunits packages --config $(CONFIG)

lifecircle: $(STAMP)
	$(BIN)/urbanunits lifecircle --config $(CONFIG)

sites: $(STAMP)
	$(BIN)/urbanunits sites --config $(CONFIG)

maps: $(STAMP)
	$(BIN)/urbanunits maps --config $(CONFIG)

all: $(STAMP)
	$(BIN)/urbanunits all --config $(CONFIG)

fetch: $(STAMP)
	$(BIN)/urbanunits fetch --config $(CONFIG)

clip: $(STAMP)
	@test -n "$(PBF)" || { echo "usage: make clip PBF=path/to/big.osm.pbf [CONFIG=...]"; exit 2; }
	$(BIN)/urbanunits clip "$(PBF)" --config $(CONFIG)

test: $(STAMP)
	URBANUNITS_PROGRESS=0 $(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf data/processed/* .pytest_cache .ruff_cache .mypy_cache
	touch data/processed/.gitkeep

distclean: clean
	rm -rf $(VENV)

"""The layer catalog: stage lists, and GeoPackages of earlier releases read under the new names."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from shapely.geometry import box

from urbanunits import catalog
from urbanunits.export import list_layers, read_layer, write_layers
from urbanunits.runfile import read_run

CRS = "EPSG:32651"


def _communities(n: int = 2) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"community_id": [f"C{i}" for i in range(n)],
                             "name": [f"小区{i}" for i in range(n)],
                             "is_old": [i % 2 == 0 for i in range(n)]},
                            geometry=[box(i * 100, 0, i * 100 + 50, 50) for i in range(n)],
                            crs=CRS)


def test_every_layer_has_one_stage_and_no_name_is_both_current_and_former() -> None:
    owned = [n for names in catalog.STAGE_LAYERS.values() for n in names]
    assert sorted(owned) == sorted(catalog.CATALOG)
    assert not set(catalog.LAYER_ALIASES) & set(catalog.CATALOG)
    assert set(catalog.KNOWN_GEOMETRY) == {n for n, s in catalog.CATALOG.items() if s.geometry}
    # a spatial layer always has a style (its QGIS default), a table never has one
    for spec in catalog.CATALOG.values():
        assert (spec.style is None) == (spec.geometry is None), spec.name


def test_a_former_layer_name_is_read_as_the_new_one_with_one_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(catalog, "_warned", set())
    gpkg = tmp_path / "old.gpkg"
    old = _communities(3)
    pyogrio.write_dataframe(old, gpkg, layer="old_communities", driver="GPKG")
    with caplog.at_level(logging.WARNING, logger="urbanunits.catalog"):
        back = read_layer(gpkg, "communities")
        run = read_run(gpkg)
    assert list(back["community_id"]) == list(old["community_id"])
    assert set(run.layers) == {"communities"}
    assert list(run.layers["communities"]["name"]) == list(old["name"])
    warned = [r for r in caplog.records if "old_communities" in r.getMessage()]
    assert len(warned) == 1  # once per process, however often it is read


def test_writing_the_new_name_replaces_the_former_layer(tmp_path: Path) -> None:
    gpkg = tmp_path / "run.gpkg"
    pyogrio.write_dataframe(_communities(3), gpkg, layer="old_communities", driver="GPKG")
    pyogrio.write_dataframe(_communities(1).rename(columns={"community_id": "unit_id"}), gpkg,
                            layer="update_units", driver="GPKG")
    write_layers(gpkg, {"communities": _communities(2)})
    assert sorted(list_layers(gpkg)) == ["communities", "update_units"]
    assert len(read_layer(gpkg, "communities")) == 2

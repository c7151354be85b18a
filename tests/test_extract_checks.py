"""Extracts that cannot support the analysis: coverage, empty walk network, missing layers.

Every extract here is a small synthetic OSM XML file written by the test (``synth_osm``).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from urbanunits import pipeline
from urbanunits.config import Config
from urbanunits.errors import UserError
from urbanunits.sources.osm import OSMLayers, check_extract, coverage_share, read_osm

from .conftest import demo_config
from .synth_osm import OSMWriter, street_grid
from .test_cli_errors import assert_one_line_error, config_file, no_outputs_left, run_cli

# A study area of about 950 m × 1,100 m inside the demo's; the extracts are drawn over it.
X0, Y0, X1, Y1 = 121.490, 31.225, 121.500, 31.235
BBOX = (X0, Y0, X1, Y1)
BBOX_TOML = f"[{X0}, {Y0}, {X1}, {Y1}]"


def cfg_for(tmp_path: Path, osm_path: Path, **osm_changes: object) -> Config:
    cfg = demo_config(tmp_path / "out")
    return dataclasses.replace(
        cfg, inputs=dataclasses.replace(cfg.inputs, osm=osm_path),
        study_area=dataclasses.replace(cfg.study_area, bbox=BBOX),
        osm=dataclasses.replace(cfg.osm, cache=False, **osm_changes))


def full_extract(*, river: bool = False, water: bool = False, footways: bool = True,
                 compounds: bool = True) -> OSMWriter:
    """A 7×7 street grid over the study area (and 100 m beyond) with optional layers."""
    w = OSMWriter()
    m = 0.001
    street_grid(w, X0 - m, Y0 - m, X1 + m, Y1 + m, n=7,
                highways=("primary", "residential", "secondary", "residential"))
    step_x, step_y = (X1 - X0 + 2 * m) / 6, (Y1 - Y0 + 2 * m) / 6
    for i in range(6):
        for j in range(6):
            bx, by = X0 - m + i * step_x, Y0 - m + j * step_y
            if compounds:
                w.box(bx + 0.1 * step_x, by + 0.1 * step_y, bx + 0.9 * step_x, by + 0.9 * step_y,
                      {"landuse": "residential", "name": f"测试{i}{j}新村"})
                w.box(bx + 0.3 * step_x, by + 0.3 * step_y, bx + 0.5 * step_x, by + 0.5 * step_y,
                      {"building": "residential", "building:levels": "6"})
            if footways:
                w.way([(bx + 0.5 * step_x, by + 0.1 * step_y),
                       (bx + 0.5 * step_x, by + 0.9 * step_y)], {"highway": "footway"})
    if river or water:
        # A river running north–south between grid columns 2 and 3.
        rx = X0 - m + 2.5 * step_x
        if river:
            w.way([(rx, Y0 - 2 * m), (rx, (Y0 + Y1) / 2), (rx, Y1 + 2 * m)],
                  {"waterway": "river", "name": "测试河"})
        if water:
            w.box(rx - 0.00025, Y0 - 2 * m, rx + 0.00025, Y1 + 2 * m,
                  {"natural": "water", "water": "river"})
    return w


# --- coverage -------------------------------------------------------------------------------


def test_full_extract_passes_without_warnings(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    path = full_extract(river=True, water=True).write(tmp_path / "full.osm")
    with caplog.at_level(logging.WARNING, logger="urbanunits.sources"):
        layers = read_osm(cfg_for(tmp_path, path))
    assert coverage_share(layers) == pytest.approx(1.0)
    # It has footways, water, land use, buildings and compounds: nothing to warn about.
    assert [r.getMessage() for r in caplog.records] == []


def test_demo_extract_is_complete(demo_cfg: Config, demo_layers: OSMLayers) -> None:
    assert coverage_share(demo_layers) == pytest.approx(1.0)
    assert check_extract(demo_layers, demo_cfg) == []


def test_small_corner_extract_is_refused_naming_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An extract over ~5 % of the study area, plus one long river it keeps whole."""
    w = OSMWriter()
    street_grid(w, X0, Y0, X0 + 0.0022, Y0 + 0.0022, n=5)  # ~210 m × 245 m: 5 % of the area
    # Complete ways: a river crossing the whole study area, as osmium/Overpass keep it.
    w.way([(X0 + 0.001, Y0 - 0.01), (X1, Y1 + 0.01)], {"waterway": "river"})
    path = w.write(tmp_path / "corner.osm")
    code, err = run_cli(["units", "--config", str(config_file(tmp_path, "", osm=path,
                                                               bbox=BBOX_TOML))], capsys)
    assert_one_line_error(code, err, "corner.osm", "osm.min_coverage_share", "covers only")
    no_outputs_left(tmp_path)
    share = coverage_share(read_osm(cfg_for(tmp_path, path, min_coverage_share=0.0)))
    assert share is not None and share < 0.5


def test_coverage_matches_geometry(tmp_path: Path) -> None:
    """Dense data over the west 40 %, one lone node in the east: covered = within 300 m of data.

    The lone node stretches the node box over the whole area, so the box alone would say 100 %.
    """
    xw = X0 + 0.4 * (X1 - X0)
    lone = (X1 - 0.001, (Y0 + Y1) / 2)
    w = OSMWriter()
    street_grid(w, X0 - 0.002, Y0 - 0.002, xw, Y1 + 0.002, n=13)
    w.node(*lone, {"amenity": "bench"})
    w.node(X1 + 0.002, Y1 + 0.002)  # the node box reaches past the study area
    path = w.write(tmp_path / "west.osm")
    cfg = cfg_for(tmp_path, path, min_coverage_share=0.0)
    layers = read_osm(cfg)
    area = layers.study_area.geometry.iloc[0]
    data = gpd.GeoSeries([shapely.box(X0 - 0.002, Y0 - 0.002, xw, Y1 + 0.002),
                          shapely.Point(lone)], crs="EPSG:4326").to_crs(cfg.study_area.crs)
    oracle = area.intersection(shapely.union_all(data.buffer(300.0).values)).area / area.area
    assert 0.6 < oracle < 0.9
    assert coverage_share(layers) == pytest.approx(oracle, abs=0.05)
    # Above the share the key refuses it (and says which key).
    with pytest.raises(UserError, match=r"osm\.min_coverage_share"):
        read_osm(dataclasses.replace(cfg, osm=dataclasses.replace(cfg.osm,
                                                                  min_coverage_share=0.95)))


def test_bounds_tag_limits_the_extent(tmp_path: Path) -> None:
    """A header <bounds> narrower than the nodes (complete ways) is the extent."""
    w = full_extract()
    w.bounds = (X0 - 0.01, Y0 - 0.01, (X0 + X1) / 2, Y1 + 0.01)
    path = w.write(tmp_path / "bounded.osm")
    layers = read_osm(cfg_for(tmp_path, path, min_coverage_share=0.0))
    assert layers.extent.iloc[0]["source"] == "bounds"
    assert coverage_share(layers) == pytest.approx(0.5, abs=0.06)


# --- walk network and missing layers ------------------------------------------------------------


def test_extract_without_highways_is_refused(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    w = full_extract(footways=False)
    w.ways = {k: v for k, v in w.ways.items() if "highway" not in v[1]}
    path = w.write(tmp_path / "nohighways.osm")
    for stage in ("units", "lifecircle"):
        code, err = run_cli([stage, "--config", str(config_file(tmp_path, "", osm=path,
                                                                 bbox=BBOX_TOML))], capsys)
        assert_one_line_error(code, err, "nohighways.osm", "empty walk network")
    no_outputs_left(tmp_path)


def test_drive_only_extract_runs_with_warnings(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """osmnx-style drive export: primary/secondary/residential only, no closed areas."""
    w = OSMWriter()
    street_grid(w, X0 - 0.001, Y0 - 0.001, X1 + 0.001, Y1 + 0.001, n=6)
    cfg = cfg_for(tmp_path, w.write(tmp_path / "drive.osm"))
    with caplog.at_level(logging.WARNING, logger="urbanunits.sources"):
        res = pipeline.run_units(cfg, write=False, draw=False)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "car network" in text
    for missing in ("no water polygons", "no land-use polygons", "no building footprints",
                    "no named residential areas"):
        assert text.count(missing) == 1, missing  # once each
    units = res.layers["update_units"]
    assert len(units) > 1 and units.geometry.is_valid.all()
    # The later stages stop with a one-line user error (no communities), not a KeyError.
    for run in (pipeline.run_packages, pipeline.run_lifecircle):
        with pytest.raises(UserError, match="residential areas"):
            run(cfg, layers=res.extra["layers"], write=False, draw=False)


def test_drive_only_with_compounds_reaches_life_circles(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    w = full_extract(footways=False)
    w.node((X0 + X1) / 2, (Y0 + Y1) / 2, {"amenity": "kindergarten", "name": "测试幼儿园"})
    path = w.write(tmp_path / "drive_compounds.osm")
    cfg = cfg_for(tmp_path, path)
    with caplog.at_level(logging.WARNING, logger="urbanunits.sources"):
        res = pipeline.run_lifecircle(cfg, write=False, draw=False)
    assert "car network" in "\n".join(r.getMessage() for r in caplog.records)
    assert len(res.layers["communities"]) == 36
    assert len(res.layers["lifecircle"]) > 0
    # The walk graph holds only the street grid: every edge is a road class.
    G = res.extra["layers"].walk_graph
    assert {d["highway"] for _, _, d in G.edges(data=True)} <= {"primary", "secondary",
                                                                 "residential"}


@pytest.mark.parametrize("water", [False, True])
def test_river_line_without_water_polygon_warns(tmp_path: Path, water: bool,
                                                caplog: pytest.LogCaptureFixture) -> None:
    path = full_extract(river=True, water=water).write(tmp_path / "river.osm")
    cfg = cfg_for(tmp_path, path)
    with caplog.at_level(logging.WARNING, logger="urbanunits.sources"):
        res = pipeline.run_units(cfg, write=False, draw=False)
    warned = [r.getMessage() for r in caplog.records if "waterway line" in r.getMessage()]
    assert len(warned) == (0 if water else 1)
    if not water:
        assert "river lines are unit barriers" in warned[0]
    # Either way the river is a barrier (units.barrier_waterways): no unit crosses it.
    layers = res.extra["layers"]
    river = layers.waterways.geometry.iloc[0]
    units = res.layers["update_units"]
    crossing = units[units.geometry.buffer(-1.0).intersects(river)]
    assert crossing.empty, list(crossing["unit_id"])


@pytest.mark.parametrize("lake", [False, True])
def test_water_counts_as_covered(tmp_path: Path, lake: bool) -> None:
    """A wide lake has nodes only on its shore: its polygon covers it, its absence does not."""
    w = OSMWriter()
    m = 0.001
    street_grid(w, X0 - m, Y0 - m, X1 + m, Y1 + m, n=2)  # roads round the edge only
    for x in (X0, X1):  # dense shores west and east of the lake
        for k in range(30):
            w.node(x, Y0 + (Y1 - Y0) * k / 29, {"amenity": "bench"})
    shore = [(X0 + 0.001, Y0 - m), (X1 - 0.001, Y0 - m), (X1 - 0.001, Y1 + m),
             (X0 + 0.001, Y1 + m)]
    w.way(shore, {"natural": "water"} if lake else {"barrier": "fence"}, closed=True)
    path = w.write(tmp_path / "lake.osm")
    share = coverage_share(read_osm(cfg_for(tmp_path, path, min_coverage_share=0.0)))
    assert share is not None
    if lake:
        assert share == pytest.approx(1.0)
    else:  # ~760 m of open water between shores 300 m reach apart
        assert share < 0.8

"""Update units: known answers on tiny synthetic networks, partition invariants, the demo."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Polygon, box

from urbanunits import unit_classes as uc
from urbanunits import units as uu
from urbanunits.config import Config, UnitsConfig
from urbanunits.errors import CRSError, DataError
from urbanunits.layers import OSMLayers, line_flag
from urbanunits.packages import hard_barriers
from urbanunits.sources.boundaries import read_subdistricts
from urbanunits.sources.tags import flag_lines
from urbanunits.sources.walk import WalkWays

from .conftest import demo_config

CRS = "EPSG:32651"
X0, Y0 = 350_000.0, 3_450_000.0  # somewhere in UTM 51N, so that re-projection is meaningful


# --------------------------------------------------------------------------------------------
# Synthetic inputs
# --------------------------------------------------------------------------------------------


def at(x: float, y: float) -> tuple[float, float]:
    return (X0 + x, Y0 + y)


def line(*pts: tuple[float, float]) -> LineString:
    return LineString([at(*p) for p in pts])


def rect(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return box(*at(x0, y0), *at(x1, y1))


def frame(rows: list[dict[str, Any]], cols: list[str]) -> gpd.GeoDataFrame:
    data = {c: [r.get(c) for r in rows] for c in cols}
    return gpd.GeoDataFrame(data, geometry=[r["geometry"] for r in rows], crs=CRS)


def make_layers(area: Polygon, *, roads: Sequence[dict[str, Any]] = (),
                waterways: Sequence[dict[str, Any]] = (), water: Sequence[Polygon] = (),
                landuse: Sequence[tuple[str, Polygon]] = (),
                residential: Sequence[Polygon] = (), historic: Sequence[Any] = (),
                railways: Sequence[dict[str, Any]] = ()) -> OSMLayers:
    """OSMLayers with only what the units stage reads."""
    line_cols = ["osm_id", "name", "bridge", "tunnel", "layer"]

    def lines(rows: Sequence[dict[str, Any]], key: str) -> gpd.GeoDataFrame:
        rows = [{"osm_id": k, **r} for k, r in enumerate(rows)]
        return flag_lines(frame(rows, [*line_cols, key]))

    return OSMLayers(
        study_area=gpd.GeoDataFrame({"name": ["t"]}, geometry=[area], crs=CRS),
        walk=WalkWays.empty(CRS),
        roads=lines(list(roads), "highway"),
        railways=lines(list(railways), "railway"),
        waterways=lines(list(waterways), "waterway"),
        water=frame([{"geometry": g, "kind": "water"} for g in water], ["kind"]),
        landuse=frame([{"geometry": g, "luclass": c} for c, g in landuse], ["luclass"]),
        residential=frame([{"geometry": g, "name": f"r{k}"} for k, g in enumerate(residential)],
                          ["name"]),
        buildings=frame([], ["levels"]),
        pois=frame([], ["name"]),
        historic=frame([{"geometry": g, "historic": "yes"} for g in historic], ["historic"]),
        admin=frame([], ["admin_level", "name"]),
        source=Path("synthetic"),
    )


def lines_frame(geoms: Sequence[LineString], **cols: Any) -> gpd.GeoDataFrame:
    """Lines with ``kind`` (default ``road``) and any other columns."""
    data = {"kind": ["road"] * len(geoms)}
    data.update({k: list(v) for k, v in cols.items()})
    return gpd.GeoDataFrame(data, geometry=list(geoms), crs=CRS)


def road(geom: LineString, highway: str = "secondary", **tags: Any) -> dict[str, Any]:
    return {"geometry": geom, "highway": highway, **tags}


def config(**units: Any) -> Config:
    base = {"min_area_m2": 10_000.0, "max_area_m2": 200_000.0, "snap_tolerance_m": 8.0,
            "sliver_width_m": 30.0}
    return Config(name="t", units=UnitsConfig(**{**base, **units}))


def grid_roads(xs: list[float], ys: list[float], *, x_span: tuple[float, float],
               y_span: tuple[float, float], highway: str = "secondary") -> list[dict[str, Any]]:
    out = [road(line((x, y_span[0]), (x, y_span[1])), highway) for x in xs]
    out += [road(line((x_span[0], y), (x_span[1], y)), highway) for y in ys]
    return out


def same_polygon(a: Any, b: Any, *, tol_m2: float = 1e-3) -> bool:
    return float(shapely.area(shapely.symmetric_difference(a, b))) < tol_m2


def assert_partition(units: gpd.GeoDataFrame, target: Any, *, id_col: str = "unit_id") -> None:
    """Valid, non-overlapping, covering ``target`` up to the 1 cm noding grid, unique ids."""
    geoms = units.geometry.values
    assert shapely.is_valid(geoms).all()
    assert units[id_col].is_unique
    union = shapely.union_all(geoms)
    assert shapely.area(geoms).sum() == pytest.approx(union.area, rel=1e-9)  # no overlap
    # Snap rounding to the 1 cm grid moves outlines by at most ~7 mm.
    grid_tol_m2 = 0.01 * (target.length + union.length)
    assert shapely.area(shapely.symmetric_difference(union, target)) <= grid_tol_m2


# --------------------------------------------------------------------------------------------
# Faces
# --------------------------------------------------------------------------------------------


def test_polygonize_grid_gives_exactly_its_cells() -> None:
    area = rect(0, 0, 600, 400)
    lines = lines_frame([line((200, -50), (200, 450)), line((400, -50), (400, 450)),
                         line((-50, 200), (650, 200))])
    faces = uu.polygonize_blocks(lines, area)
    cells = [rect(x, y, x + 200, y + 200) for x in (0, 200, 400) for y in (0, 200)]
    assert len(faces) == len(cells)
    for c in cells:
        assert sum(same_polygon(f, c) for f in faces.geometry) == 1
    assert faces["area_m2"].to_numpy() == pytest.approx(40_000.0)


def test_dangles_enclose_nothing_and_gaps_within_tolerance_are_closed() -> None:
    area = rect(0, 0, 400, 400)
    horizontal = line((0, 200), (400, 200))
    dangle = line((100, 300), (100, 260))  # a dead end: must not make a face
    short = line((200, 0), (200, 194))  # stops 6 m short of the horizontal road
    lines = lines_frame([horizontal, dangle, short])
    assert len(uu.polygonize_blocks(lines, area, snap_tolerance_m=0.0)) == 2
    snapped = uu.polygonize_blocks(lines, area, snap_tolerance_m=8.0)
    assert len(snapped) == 3
    assert snapped["area_m2"].sum() == pytest.approx(area.area)
    far = lines.assign(geometry=[horizontal, dangle, line((200, 0), (200, 180))])
    assert len(uu.polygonize_blocks(far, area, snap_tolerance_m=8.0)) == 2


def test_ends_near_the_study_area_edge_are_extended_to_it() -> None:
    area = rect(0, 0, 400, 400)
    lines = lines_frame([line((200, 30), (200, 400))])
    assert len(uu.polygonize_blocks(
        uu.prepare_lines(lines, area, snap_tolerance_m=8.0), area)) == 1
    prepared = uu.prepare_lines(lines, area, snap_tolerance_m=8.0, edge_snap_m=50.0)
    assert prepared["connector"].sum() == 1
    assert len(uu.polygonize_blocks(prepared, area)) == 2


def brute_force_adjacency(faces: gpd.GeoDataFrame) -> dict[tuple[int, int], float]:
    out = {}
    g = faces.geometry.values
    for i in range(len(g)):
        for j in range(i + 1, len(g)):
            ln = shapely.intersection(g[i].boundary, g[j].boundary).length
            if ln > 1e-6:
                out[(i, j)] = ln
    return out


def jittered_grid(draw: st.DrawFn) -> tuple[Polygon, list[dict[str, Any]]]:
    nx_, ny_ = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    step = draw(st.floats(80.0, 200.0))
    jit = st.floats(-15.0, 15.0)
    w, h = step * (nx_ + 1), step * (ny_ + 1)
    roads = []
    for k in range(1, nx_ + 1):
        ys = np.linspace(-20, h + 20, 5)
        roads.append(road(line(*[(k * step + draw(jit), y) for y in ys]),
                          draw(st.sampled_from(["secondary", "secondary", "tertiary"]))))
    for k in range(1, ny_ + 1):
        xs = np.linspace(-20, w + 20, 5)
        roads.append(road(line(*[(x, k * step + draw(jit)) for x in xs]),
                          draw(st.sampled_from(["primary", "residential"]))))
    return rect(0, 0, w, h), roads


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_face_adjacency_matches_brute_force(data: st.DataObject) -> None:
    area, roads = jittered_grid(data.draw)
    lines = lines_frame([r["geometry"] for r in roads])
    faces = uu.polygonize_blocks(lines, area)
    adj = uu.face_adjacency(faces)
    got = {(int(r.i), int(r.j)): r.length_m for r in adj.itertuples()}
    want = brute_force_adjacency(faces)
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-6)


def test_adjacency_knows_which_lines_run_along_edges() -> None:
    area = rect(0, 0, 300, 100)
    lines = gpd.GeoDataFrame({"kind": ["road", "rail", "split"], "split_level": [0, 0, 2]},
                             geometry=[line((100, 0), (100, 100)), line((200, 0), (200, 100)),
                                       line((50, 0), (50, 100))], crs=CRS)
    prepared = uu.prepare_lines(lines, area, snap_tolerance_m=0.0)
    faces = uu.polygonize_blocks(prepared, area)
    adj = uu.face_adjacency(faces, prepared).set_index(["i", "j"])
    # faces sorted west to east: [0,50], [50,100], [100,200], [200,300]
    assert adj.loc[(0, 1), "max_cut"] == 2 and adj.loc[(0, 1), "hard_m"] == 0
    assert adj.loc[(1, 2), "max_cut"] == 0 and adj.loc[(1, 2), "hard_m"] == 0
    assert adj.loc[(2, 3), "max_cut"] == 0 and adj.loc[(2, 3), "hard_m"] == pytest.approx(100)


# --------------------------------------------------------------------------------------------
# Known answers through update_units
# --------------------------------------------------------------------------------------------


def test_grid_of_roads_gives_its_cells() -> None:
    area = rect(0, 0, 600, 600)
    roads = grid_roads([200, 400], [200, 400], x_span=(-30, 630), y_span=(-30, 630))
    res = uu.update_units(make_layers(area, roads=roads), config())
    cells = [rect(x, y, x + 200, y + 200) for x in (0, 200, 400) for y in (0, 200, 400)]
    assert len(res.units) == 9
    for c in cells:
        assert sum(same_polygon(g, c) for g in res.units.geometry) == 1
    assert (res.units["size_status"] == "within").all()
    assert res.report.empty
    # ids read in rows from the north-west: U001 is the top-left cell, U009 the bottom-right
    ids = res.units.set_index("unit_id").geometry
    assert same_polygon(ids["U001"], rect(0, 400, 200, 600))
    assert same_polygon(ids["U003"], rect(400, 400, 600, 600))
    assert same_polygon(ids["U009"], rect(400, 0, 600, 200))
    assert_partition(res.units, area)


def river_layers(*, bridge: bool = False) -> OSMLayers:
    area = rect(0, 0, 400, 400)
    river = rect(-10, 190, 410, 210)
    roads = [road(line((200, -20), (200, 420)), "secondary")]
    if bridge:
        roads = [road(line((200, -20), (200, 190)), "secondary"),
                 road(line((200, 190), (200, 210)), "secondary", bridge="yes"),
                 road(line((200, 210), (200, 420)), "secondary")]
    return make_layers(area, roads=roads, water=[river],
                       waterways=[{"geometry": line((-10, 200), (410, 200)),
                                   "waterway": "river", "name": "河"}])


@pytest.mark.parametrize("bridge", [False, True])
def test_river_splits_a_block(bridge: bool) -> None:
    layers = river_layers(bridge=bridge)
    res = uu.update_units(layers, config(min_area_m2=5_000.0))
    south, north = rect(0, 0, 400, 190), rect(0, 210, 400, 400)
    assert len(res.units) == 4
    for g in res.units.geometry:  # each unit on one bank, none in the water
        on = [shapely.area(shapely.intersection(g, bank)) > 1e-6 for bank in (south, north)]
        assert sum(on) == 1
        assert shapely.area(shapely.intersection(g, rect(0, 191, 400, 209))) < 1e-6
    assert_partition(res.units, shapely.union_all([south, north]))


def test_bridge_span_over_water_is_not_a_barrier() -> None:
    layers = river_layers(bridge=True)
    bars = uu.barrier_lines(layers, highways=["secondary"], railways=[], waterways=[])
    water = rect(-10, 190, 410, 210)
    roads = bars[bars["kind"] == "road"]
    assert shapely.length(shapely.intersection(roads.geometry.values, water)).sum() < 1e-6


def test_tunnels_are_not_barriers() -> None:
    area = rect(0, 0, 400, 200)
    layers = make_layers(area, roads=[road(line((200, -20), (200, 220)), "trunk", tunnel="yes"),
                                      road(line((100, -20), (100, 220)), "trunk", tunnel="no")])
    res = uu.update_units(layers, config(min_area_m2=5_000.0))
    assert sorted(np.round(res.units["area_m2"])) == [20_000.0, 60_000.0]


def test_one_reading_of_the_tunnel_tag_for_units_and_packages() -> None:
    # The ingest decides what the tags mean; units and packages read the same flag.
    values = ["yes", "culvert", "building_passage", "flooded", "no", "No", None]
    area = rect(0, 0, 100 * len(values), 200)
    rows = [{"geometry": line((100 * k + 50, -20), (100 * k + 50, 220)), "railway": "rail",
             "tunnel": v, "bridge": None} for k, v in enumerate(values)]
    layers = make_layers(area, railways=rows)
    assert layers.railways["is_tunnel"].tolist() == [True] * 4 + [False] * 3
    surface = {k for k, v in enumerate(values) if v in ("no", "No", None)}
    kept = uu.barrier_lines(layers, highways=[], railways=["rail"], waterways=[])
    on = {round((g.coords[0][0] - X0 - 50) / 100) for g in kept.geometry}
    assert on == surface
    hb = hard_barriers(layers, kinds=["rail"])
    assert {round((g.coords[0][0] - X0 - 50) / 100) for g in hb.geometry} == surface


def test_hand_built_layers_with_raw_tags_but_no_flags_are_refused() -> None:
    raw = frame([{"geometry": line((0, 0), (1, 1)), "tunnel": "yes"}], ["tunnel"])
    with pytest.raises(DataError, match="flag_lines"):
        line_flag(raw, "is_tunnel")
    assert not line_flag(frame([{"geometry": line((0, 0), (1, 1))}], []), "is_tunnel").any()


def test_units_section_alone_gives_what_the_whole_config_gives() -> None:
    area = rect(0, 0, 900, 600)
    roads = grid_roads([300, 600], [300], x_span=(-20, 920), y_span=(-20, 620))
    layers = make_layers(area, roads=roads, landuse=[("residential", rect(0, 0, 900, 600))])
    cfg = config(min_area_m2=5_000.0)
    cfg = dataclasses.replace(cfg, packages=dataclasses.replace(cfg.packages, fallback_far=2.5))
    whole = uu.update_units(layers, cfg)
    part = uu.update_units(layers, cfg.units, fallback_far=2.5)
    pd.testing.assert_frame_equal(whole.units, part.units)
    default = uu.update_units(layers, cfg.units).units["residential_floor_area_m2"]
    assert np.allclose(whole.units["residential_floor_area_m2"], default * 2.5 / 1.5, rtol=1e-3)


def test_water_faces_are_removed() -> None:
    area = rect(0, 0, 400, 400)
    lake = rect(150, 150, 300, 300)  # 2.25 ha ≥ min area: an edge and a dropped face
    pond = rect(20, 20, 40, 40)  # 400 m²: stays inside its unit
    res = uu.update_units(make_layers(area, water=[lake, pond]), config(min_area_m2=15_000.0))
    assert len(res.units) == 1
    unit = res.units.geometry.iloc[0]
    assert shapely.area(shapely.intersection(unit, lake)) < 1e-6
    assert shapely.area(shapely.intersection(unit, pond)) == pytest.approx(400.0)
    assert unit.area == pytest.approx(area.area - lake.area)


def test_subdistrict_boundary_splits_a_block_and_blocks_merging() -> None:
    area = rect(0, 0, 400, 400)
    sd = gpd.GeoDataFrame({"subdistrict": ["东街道", "西街道"]},
                          geometry=[rect(380, -100, 500, 500), rect(-100, -100, 380, 500)],
                          crs=CRS)
    res = uu.update_units(make_layers(area), config(), subdistricts=sd)
    units = res.units.set_index("unit_id")
    # names sort 东 < 西, so 东街道 is S01; the 0.8 ha eastern strip cannot merge across
    assert list(units.index) == ["S01-U001", "S02-U001"]
    assert units.loc["S01-U001", "subdistrict"] == "东街道"
    assert same_polygon(units.geometry["S01-U001"], rect(380, 0, 400, 400))
    assert same_polygon(units.geometry["S02-U001"], rect(0, 0, 380, 400))
    assert res.report["unit_id"].tolist() == ["S01-U001"]
    assert "other sub-districts" in res.report["reason"].iloc[0]


def test_merging_stays_inside_a_subdistrict() -> None:
    # 6 ha (A) | 1 ha strip (B) | 6 ha (B): the strip shares 200 m with both big blocks and the
    # western one comes first in every tie-break, but it lies in another sub-district.
    area = rect(0, 0, 650, 200)
    roads = grid_roads([350], [], x_span=(0, 650), y_span=(-30, 230))
    sd = gpd.GeoDataFrame({"subdistrict": ["A", "B"]},
                          geometry=[rect(-10, -10, 300, 210), rect(300, -10, 660, 210)], crs=CRS)
    res = uu.update_units(make_layers(area, roads=roads), config(min_area_m2=20_000.0),
                         subdistricts=sd)
    assert len(res.units) == 2
    for g, name in zip(res.units.geometry, res.units["subdistrict"], strict=True):
        own = sd.set_index("subdistrict").geometry[name]
        assert shapely.area(shapely.intersection(g, own)) == pytest.approx(g.area)
    by_sd = res.units.set_index("subdistrict")["area_m2"].round()
    assert by_sd.to_dict() == {"A": 60_000.0, "B": 70_000.0}


def test_dual_carriageway_sliver_merges_into_a_neighbour() -> None:
    area = rect(0, 0, 415, 400)
    roads = [road(line((200, -20), (200, 420))), road(line((215, -20), (215, 420)))]
    # min area far below the sliver's 6,000 m²: it merges because it is thin, not small
    res = uu.update_units(make_layers(area, roads=roads), config(min_area_m2=1_000.0))
    assert len(res.blocks) == 3
    assert res.blocks["sliver"].sum() == 1
    assert len(res.units) == 2
    assert sorted(np.round(res.units["area_m2"])) == [80_000.0, 86_000.0]
    assert_partition(res.units, area)


def test_tiny_block_merges_into_the_neighbour_with_the_longest_shared_edge() -> None:
    # Corner block A = [0,60]x[0,50] (0.3 ha). The strip east of it, [60,400]x[0,30], shares
    # 30 m with A; the rest of the square, north of both, shares 60 + 20 m: A joins the north.
    area = rect(0, 0, 400, 400)
    roads = [road(line((-20, 50), (60, 50))), road(line((60, 50), (60, -20))),
             road(line((60, 50), (60, 30), (400, 30)))]
    res = uu.update_units(make_layers(area, roads=roads),
                         config(min_area_m2=5_000.0, sliver_width_m=0.0))
    tiny = rect(0, 0, 60, 50)
    host = [g for g in res.units.geometry if shapely.area(shapely.intersection(g, tiny)) > 1]
    assert len(host) == 1
    assert shapely.area(shapely.intersection(host[0], rect(0, 300, 10, 310))) > 0  # north block
    assert shapely.area(shapely.intersection(host[0], rect(300, 5, 310, 10))) == 0  # not east


def test_oversize_block_splits_along_a_minor_road() -> None:
    area = rect(0, 0, 1000, 400)  # 40 ha > max 25 ha
    roads = [road(line((500, -20), (500, 420)), "tertiary"),
             road(line((250, -20), (250, 420)), "residential"),
             road(line((750, 100), (750, 200)), "residential")]  # a dangle: splits nothing
    res = uu.update_units(make_layers(area, roads=roads),
                         config(min_area_m2=20_000.0, max_area_m2=250_000.0))
    # tertiary alone gives two 20 ha parts within bounds; residential is not needed
    assert len(res.units) == 2
    assert sorted(np.round(res.units["area_m2"])) == [200_000.0, 200_000.0]
    assert (res.blocks["origin"] == "split: tertiary").all()
    assert res.report.empty


def test_oversize_block_falls_back_to_the_next_road_class() -> None:
    area = rect(0, 0, 1000, 400)
    roads = [road(line((300, -20), (300, 420)), "residential"),
             road(line((650, -20), (650, 420)), "residential")]
    res = uu.update_units(make_layers(area, roads=roads),
                         config(min_area_m2=20_000.0, max_area_m2=250_000.0))
    assert sorted(np.round(res.units["area_m2"])) == [120_000.0, 140_000.0, 140_000.0]
    assert (res.blocks["origin"] == "split: tertiary, residential").all()


def test_oversize_block_without_minor_roads_is_reported() -> None:
    area = rect(0, 0, 1000, 400)
    res = uu.update_units(make_layers(area), config(min_area_m2=20_000.0,
                                                   max_area_m2=250_000.0))
    assert len(res.units) == 1
    assert res.report["size_status"].tolist() == ["above_max"]
    assert "no tertiary or residential road" in res.report["reason"].iloc[0]
    assert any("above_max" in s for s in res.summary_lines())


# --------------------------------------------------------------------------------------------
# Merge and split on their own
# --------------------------------------------------------------------------------------------


def test_merge_small_respects_groups_and_max_area() -> None:
    cells = gpd.GeoDataFrame({"g": ["a", "a", "b", "b"]},
                             geometry=[rect(x, 0, x + 100, 100) for x in (0, 100, 200, 300)],
                             crs=CRS)
    lab = uu.merge_small(cells, min_area_m2=15_000.0, group_col="g")
    assert lab.tolist() == [0, 0, 1, 1]
    lab = uu.merge_small(cells, min_area_m2=15_000.0, max_area_m2=15_000.0, group_col="g")
    assert lab.tolist() == [0, 1, 2, 3]  # every merge would exceed the maximum
    lab = uu.merge_small(cells, min_area_m2=15_000.0)
    assert lab.tolist() == [0, 0, 1, 1]  # without groups: ties go to the smaller neighbour


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_partition_invariants(data: st.DataObject) -> None:
    area, roads = jittered_grid(data.draw)
    w = area.bounds[2] - X0
    cut = data.draw(st.one_of(st.none(), st.floats(0.2, 0.8)))
    sd = None
    if cut is not None:
        sd = gpd.GeoDataFrame({"subdistrict": ["甲", "乙"]},
                              geometry=[rect(-50, -50, cut * w, 2000),
                                        rect(cut * w, -50, w + 50, 2000)], crs=CRS)
    min_a = data.draw(st.floats(1_000.0, 40_000.0))
    cfg = config(min_area_m2=min_a, max_area_m2=min_a * data.draw(st.floats(2.0, 20.0)))
    res = uu.update_units(make_layers(area, roads=roads), cfg, subdistricts=sd)
    assert_partition(res.units, area)
    assert_partition(res.blocks, area, id_col="block_id")
    assert set(res.blocks["unit_id"]) == set(res.units["unit_id"])
    # every unit is the union of its blocks
    for uid, g in res.units.set_index("unit_id").geometry.items():
        parts = res.blocks[res.blocks["unit_id"] == uid].geometry.values
        assert same_polygon(shapely.union_all(parts), g, tol_m2=1e-2)
    if sd is not None:
        for g, name in zip(res.units.geometry, res.units["subdistrict"], strict=True):
            own = sd.set_index("subdistrict").geometry[name]  # up to the 1 cm noding grid
            assert shapely.area(shapely.intersection(g, own)) == pytest.approx(
                g.area, abs=0.01 * g.length)
    # greedy merge leaves no small unit that could still join a neighbour
    adj = uu.face_adjacency(res.units.reset_index(drop=True))
    a = res.units["area_m2"].to_numpy()
    sdn = res.units["subdistrict"].astype(object).fillna("").to_numpy()
    for r in adj.itertuples():
        for k, other in ((r.i, r.j), (r.j, r.i)):
            if a[k] < min_a and sdn[k] == sdn[other]:
                assert a[k] + a[other] > cfg.units.max_area_m2 - 1.0


def test_split_large_picks_first_level_within_bounds() -> None:
    area = rect(0, 0, 400, 100)
    lines = lines_frame([line((200, 0), (200, 100)), line((100, 0), (100, 100)),
                         line((300, 0), (300, 100))], kind=["split"] * 3, split_level=[1, 2, 2])
    prepared = uu.prepare_lines(lines, area, snap_tolerance_m=0.0)
    faces = uu.polygonize_blocks(prepared, area)
    adj = uu.face_adjacency(faces, prepared)
    blocks = uu.label_blocks(len(faces), adj, level=0)
    assert blocks.tolist() == [0, 0, 0, 0]
    labels, info = uu.split_large(faces, adj, blocks, min_area_m2=5_000.0, max_area_m2=25_000.0,
                                 level_names=["tertiary", "residential"])
    assert len(set(labels)) == 2  # level 1 suffices
    labels, info = uu.split_large(faces, adj, blocks, min_area_m2=5_000.0, max_area_m2=15_000.0,
                                 level_names=["tertiary", "residential"])
    assert len(set(labels)) == 4
    assert set(info["origin"]) == {"split: tertiary, residential"}


# --------------------------------------------------------------------------------------------
# Classes and ids
# --------------------------------------------------------------------------------------------


def test_class_rules_in_order() -> None:
    df = gpd.GeoDataFrame({
        "share_residential": [0.9, 0.5, 0.5, 0.1, 0.1, 0.0, 0.1, 0.35],
        "share_commercial": [0.0, 0.0, 0.2, 0.6, 0.0, 0.0, 0.1, 0.4],
        "share_industrial": [0.0, 0.0, 0.0, 0.0, 0.7, 0.0, 0.0, 0.0],
        "share_green": [0.0, 0.0, 0.0, 0.0, 0.0, 0.8, 0.1, 0.0],
        "share_public": [0.0] * 8,
        "historic_share": [0.3, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        "n_historic_points": [0, 5, 0, 0, 0, 0, 0, 0],
        "n_old_communities": [1, 1, 1, 0, 0, 0, 0, 0],
        "old_floor_area_m2": [100.0, 100.0, 40.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        "residential_floor_area_m2": [100.0, 150.0, 100.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    }, geometry=[rect(0, 0, 1, 1)] * 8, crs=CRS)
    out = uu.reclassify_units(df)
    assert out["unit_class"].tolist() == [
        "historic_conservation", "old_community_renewal", "residential_upgrading",
        "commercial_mixed", "industrial_transformation", "green_open_space", "general_renewal",
        "commercial_mixed"]
    assert out["old_floor_share"].tolist() == [1.0, round(100 / 150, 4), 0.4, 0, 0, 0, 0, 0]
    assert set(out["class_label"]) <= set(uu.CLASS_LABELS.values())
    # the thresholds are the rules' (from [units] in a run)
    strict = uu.ClassRules.from_config(UnitsConfig(min_historic_share=0.35,
                                                   min_old_floor_share=0.7))
    assert uu.reclassify_units(df, rules=strict)["unit_class"].tolist()[:2] == [
        "old_community_renewal", "residential_upgrading"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_union_of_only_meeting_polygons_equals_the_full_union(seed: int) -> None:
    # Oracle: GEOS's union of everything, as the shares were measured before.
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    x, y = rng.uniform(0, 1000, n), rng.uniform(0, 1000, n)
    w, h = rng.uniform(5, 150, n), rng.uniform(5, 150, n)
    polys = np.array([rect(a, b, a + c, b + d) for a, b, c, d in zip(x, y, w, h, strict=True)]
                     + [shapely.Point(at(500, 500)).buffer(rng.uniform(1, 200))], dtype=object)
    mine = uc._union_parts(polys)
    full = shapely.get_parts(shapely.union_all(polys))
    assert len(mine) == len(full)
    assert shapely.area(mine).sum() == pytest.approx(shapely.area(full).sum(), rel=1e-12)
    assert shapely.area(shapely.symmetric_difference(shapely.union_all(mine),
                                                     shapely.union_all(full))) < 1e-6
    # the shares of random units are those measured against the full union
    units = gpd.GeoDataFrame(geometry=[rect(a, b, a + 200, b + 200) for a, b in
                                       rng.uniform(-100, 1000, (10, 2))], crs=CRS)
    share = uc._overlap_share(units, gpd.GeoDataFrame(geometry=list(polys), crs=CRS))
    g = units.geometry.values
    oracle = np.array([shapely.area(shapely.intersection(u, shapely.union_all(polys)))
                       for u in g]) / shapely.area(g)
    assert np.allclose(share, np.clip(oracle, 0, 1), rtol=0, atol=1e-12)


def test_classify_units_measures_shares_and_counts() -> None:
    units = gpd.GeoDataFrame({"unit_id": ["a", "b"]},
                             geometry=[rect(0, 0, 100, 100), rect(100, 0, 200, 100)], crs=CRS)
    landuse = gpd.GeoDataFrame({"luclass": ["residential", "green", "green"]},
                               geometry=[rect(0, 0, 50, 100), rect(150, 0, 250, 100),
                                         rect(160, 0, 170, 100)], crs=CRS)  # overlap counts once
    res = gpd.GeoDataFrame({"name": ["x"]}, geometry=[rect(10, 10, 20, 20)], crs=CRS)
    hist = gpd.GeoDataFrame({"historic": ["yes"]}, geometry=[shapely.Point(at(150, 50))],
                            crs=CRS)
    out = uu.classify_units(units, landuse=landuse, residential=res, historic=hist)
    assert out["share_residential"].tolist() == [0.5, 0.0]
    assert out["share_green"].tolist() == [0.0, 0.5]
    assert out["n_residential_areas"].tolist() == [1, 0]
    assert out["n_historic_points"].tolist() == [0, 1]
    assert out["historic_share"].tolist() == [0.0, 0.0]
    assert out["unit_class"].tolist() == ["residential_upgrading", "green_open_space"]
    assert out["n_old_communities"].tolist() == [0, 0]
    assert out["old_floor_area_m2"].tolist() == [0.0, 0.0]
    # no footprints: residential land × the fallback floor-area ratio
    assert out["residential_floor_area_m2"].tolist() == [5000 * 1.5, 0.0]
    # the packages stage fills the old communities and re-applies the rules
    later = uu.reclassify_units(out.assign(n_old_communities=[2, 0],
                                           old_floor_area_m2=[6000.0, 0.0]))
    assert later["old_floor_share"].tolist() == [0.8, 0.0]
    assert later["unit_class"].tolist() == ["old_community_renewal", "green_open_space"]


def test_historic_class_needs_designated_area_share(tmp_path: Path) -> None:
    """A statue or a plaque never makes a unit historic; a district covering ≥ 25 % does."""
    from urbanunits.sources.heritage import read_heritage_areas

    cells = [rect(x, 0, x + 100, 100) for x in (0, 100, 200, 300)]
    units = gpd.GeoDataFrame({"unit_id": list("abcd")}, geometry=cells, crs=CRS)
    landuse = gpd.GeoDataFrame({"luclass": ["residential"]}, geometry=[rect(0, 0, 400, 100)],
                               crs=CRS)
    hist = gpd.GeoDataFrame({
        "historic": ["memorial", "memorial", "district", "district"],
        "designated": [False, False, True, True]},
        geometry=[shapely.Point(at(50, 50)),  # a statue
                  rect(10, 10, 40, 90),  # an undesignated monument polygon: counted only
                  rect(100, 0, 130, 100),  # a historic district over 30 % of b
                  rect(200, 0, 210, 100)],  # ...and over 10 % of c
        crs=CRS)
    # d: half covered by a user's conservation area, given in WGS84
    path = tmp_path / "heritage.geojson"
    gpd.GeoDataFrame({"name": ["老街"]}, geometry=[rect(300, 0, 350, 100)], crs=CRS).to_crs(
        "EPSG:4326").to_file(path, driver="GeoJSON")
    areas = read_heritage_areas(path, crs=CRS)
    assert areas["designated"].all() and areas["name"].tolist() == ["老街"]
    out = uu.classify_units(units, landuse=landuse, historic=hist, heritage_areas=areas)
    assert out["historic_share"].tolist() == pytest.approx([0.0, 0.3, 0.1, 0.5], abs=1e-4)
    assert out["n_historic_points"].tolist() == [2, 0, 0, 0]
    assert out["unit_class"].tolist() == ["residential_upgrading", "historic_conservation",
                                          "residential_upgrading", "historic_conservation"]
    # Without the designated flag every feature is only counted.
    plain = uu.classify_units(units, landuse=landuse, historic=hist.drop(columns="designated"))
    assert (plain["unit_class"] == "residential_upgrading").all()
    assert plain["n_historic_points"].tolist() == [2, 1, 1, 0]


def test_old_community_renewal_needs_old_floor_share() -> None:
    """A small old compound in a large unit is not old-community renewal; a majority is."""
    units = gpd.GeoDataFrame({"unit_id": ["a", "b", "c"]},
                             geometry=[rect(0, 0, 200, 100), rect(200, 0, 400, 100),
                                       rect(400, 0, 500, 100)], crs=CRS)
    landuse = gpd.GeoDataFrame({"luclass": ["residential", "residential"]},
                               geometry=[rect(0, 0, 400, 100), rect(400, 0, 450, 100)], crs=CRS)
    # 40 m × 40 m footprints: 10 levels in a, 5 in b; c has none (fallback FAR 1.5)
    buildings = gpd.GeoDataFrame({"levels": [10.0, 5.0], "levels_tagged": [True, True]},
                                 geometry=[rect(10, 10, 50, 50), rect(210, 10, 250, 50)],
                                 crs=CRS)
    out = uu.classify_units(units, landuse=landuse, buildings=buildings, fallback_far=1.5)
    assert out["residential_floor_area_m2"].tolist() == [16_000.0, 8_000.0, 50 * 100 * 1.5]
    # a: an old community with 10 % of the floor area beside a new one; b: an inventory that
    # lists only the old community, 60 % of what the buildings hold
    comm = pd.DataFrame({"unit_id": ["a", "a", "b", None],
                         "is_old": [True, False, True, True],
                         "floor_area_m2": [1_600.0, 14_400.0, 4_800.0, 99_999.0]})
    got = uu.recount_old_communities(out, comm)
    assert got["n_old_communities"].tolist() == [1, 1, 0]
    assert got["old_floor_area_m2"].tolist() == [1_600.0, 4_800.0, 0.0]
    assert got["old_floor_share"].tolist() == [0.1, 0.6, 0.0]
    assert got["unit_class"].tolist() == ["residential_upgrading", "old_community_renewal",
                                          "residential_upgrading"]
    # the inventory's floor area bounds the residential floor area from below
    big = uu.recount_old_communities(out, comm.assign(floor_area_m2=[1_600.0, 14_400.0,
                                                                     20_000.0, 0.0]))
    assert big["residential_floor_area_m2"].tolist()[:2] == [16_000.0, 20_000.0]
    assert big["old_floor_share"].tolist()[:2] == [0.1, 1.0]
    strict = uu.ClassRules.from_config(UnitsConfig(min_old_floor_share=0.7))
    assert uu.recount_old_communities(out, comm, rules=strict)["unit_class"].tolist()[1] == \
        "residential_upgrading"


def test_unit_ids_follow_subdistrict_then_rows() -> None:
    cells = [rect(x, y, x + 100, y + 100) for y in (0, 100) for x in (0, 100, 200)]
    units = gpd.GeoDataFrame({"subdistrict": ["B", "B", "A", "B", "B", "A"]}, geometry=cells,
                             crs=CRS)
    ids = uu.assign_unit_ids(units, band_m=100.0)
    # A first (its top cell, then bottom), then B row by row, west to east
    assert ids.tolist() == ["S02-U003", "S02-U004", "S01-U002", "S02-U001", "S02-U002",
                            "S01-U001"]
    plain = uu.assign_unit_ids(units.assign(subdistrict=None), band_m=100.0)
    assert plain.tolist() == ["U004", "U005", "U006", "U001", "U002", "U003"]


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_no_barriers_gives_one_unit_and_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    area = rect(0, 0, 300, 300)
    layers = make_layers(area, roads=[road(line((10, 10), (50, 50)), "footway")])
    with caplog.at_level(logging.WARNING, logger="urbanunits.units"):
        res = uu.update_units(layers, config())
    assert len(res.units) == 1
    assert same_polygon(res.units.geometry.iloc[0], area)
    assert "no barrier lines" in caplog.text


def test_all_water_is_a_data_error() -> None:
    area = rect(0, 0, 300, 300)
    with pytest.raises(DataError, match="no land"):
        uu.update_units(make_layers(area, water=[rect(-10, -10, 310, 310)]), config())


def test_collector_runs_less_often_inside_the_stage_and_is_restored(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []
    real = uu.classify_units

    def spy(*args: Any, **kwargs: Any) -> gpd.GeoDataFrame:
        seen.append(gc.get_threshold())
        return real(*args, **kwargs)

    monkeypatch.setattr(uu, "classify_units", spy)
    area = rect(0, 0, 400, 400)
    roads = grid_roads([200], [200], x_span=(-30, 430), y_span=(-30, 430))
    try:
        gc.set_threshold(700, 10, 10)
        uu.update_units(make_layers(area, roads=roads), config())
        assert seen == [(10_000, 10, 10)]
        assert gc.get_threshold() == (700, 10, 10)
        # restored when the stage fails too, and never lowered
        gc.set_threshold(50_000, 10, 10)
        with pytest.raises(DataError, match="no land"):
            uu.update_units(make_layers(area, water=[rect(-10, -10, 410, 410)]), config())
        assert gc.get_threshold() == (50_000, 10, 10)
        uu.update_units(make_layers(area, roads=roads), config())
        assert seen[-1] == (50_000, 10, 10)
    finally:
        gc.set_threshold(*before)


def test_subdistricts_without_crs_are_refused() -> None:
    sd = gpd.GeoDataFrame({"subdistrict": ["A"]}, geometry=[rect(0, 0, 10, 10)])
    with pytest.raises(CRSError, match="no CRS"):
        uu.update_units(make_layers(rect(0, 0, 100, 100)), config(), subdistricts=sd)


def test_subdistricts_in_another_crs_are_reprojected(tmp_path: Path) -> None:
    area = rect(0, 0, 400, 400)
    sd = gpd.GeoDataFrame({"name": ["东", "西"]},
                          geometry=[rect(200, -100, 500, 500), rect(-100, -100, 200, 500)],
                          crs=CRS)
    path = tmp_path / "sd.geojson"
    sd.to_crs("EPSG:4326").to_file(path, driver="GeoJSON")
    read = read_subdistricts(path, crs=CRS)
    assert read.crs == CRS
    res = uu.update_units(make_layers(area), config(), subdistricts=read)
    direct = uu.update_units(make_layers(area), config(), subdistricts=sd.to_crs("EPSG:4326"))
    for r in (res, direct):
        assert r.units["subdistrict"].tolist() == ["东", "西"]
        assert sorted(np.round(r.units["area_m2"], -1)) == [80_000.0, 80_000.0]


def test_boundary_file_without_crs_is_a_clear_error(tmp_path: Path) -> None:
    sd = gpd.GeoDataFrame({"name": ["A"]}, geometry=[rect(0, 0, 10, 10)])
    path = tmp_path / "sd.shp"
    with pytest.warns(UserWarning, match="crs"):  # pyogrio warns; our reader must refuse
        sd.to_file(path)
    with pytest.raises(CRSError, match="no CRS"):
        read_subdistricts(path, crs=CRS)


def test_invalid_polygons_are_repaired_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    area = rect(0, 0, 400, 400)
    bowtie = Polygon([at(100, 100), at(300, 300), at(300, 100), at(100, 300)])
    sd_bowtie = Polygon([at(-10, -10), at(410, 410), at(410, -10), at(-10, 410)])
    sd = gpd.GeoDataFrame({"subdistrict": ["甲"]}, geometry=[sd_bowtie], crs=CRS)
    layers = make_layers(area, water=[bowtie], landuse=[("green", bowtie)])
    assert not bowtie.is_valid
    with caplog.at_level(logging.WARNING, logger="urbanunits.units"):
        res = uu.update_units(layers, config(min_area_m2=5_000.0), subdistricts=sd)
    assert "repaired 1 invalid polygon(s) in water" in caplog.text
    assert "repaired 1 invalid polygon(s) in sub-district" in caplog.text
    assert shapely.is_valid(res.units.geometry.values).all()
    assert shapely.area(shapely.intersection(shapely.union_all(res.units.geometry.values),
                                             shapely.make_valid(bowtie))) < 1e-6


# --------------------------------------------------------------------------------------------
# The demo (Lujiazui)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_result(demo_cfg: Config, demo_layers: OSMLayers) -> uu.UnitsResult:
    return uu.update_units(demo_layers, demo_cfg)


def test_demo_units_are_a_partition_of_the_land(demo_result: uu.UnitsResult,
                                                demo_layers: OSMLayers) -> None:
    units = demo_result.units
    geoms = units.geometry.values
    assert shapely.is_valid(geoms).all()
    assert set(shapely.get_type_id(geoms)) <= {3, 6}
    union = shapely.union_all(geoms)
    assert shapely.area(geoms).sum() == pytest.approx(union.area, rel=1e-3)
    study = demo_layers.study_area.geometry.iloc[0]
    land = study.difference(shapely.union_all(demo_layers.water.geometry.values))
    assert shapely.intersection(union, land).area >= 0.98 * land.area
    assert units["unit_id"].is_unique
    assert set(demo_result.blocks["unit_id"]) == set(units["unit_id"])


def test_demo_no_unit_crosses_the_huangpu(demo_result: uu.UnitsResult,
                                          demo_layers: OSMLayers) -> None:
    ww = demo_layers.waterways
    huangpu = shapely.union_all(ww[ww["name"] == "黄浦江"].geometry.values)
    assert not huangpu.is_empty
    water = demo_layers.water
    river = shapely.union_all(water[water.intersects(huangpu)].geometry.values)
    study = demo_layers.study_area.geometry.iloc[0]
    banks = sorted(shapely.get_parts(study.difference(river)), key=lambda g: -g.area)[:2]
    assert min(b.area for b in banks) > 1e6  # two real banks: Puxi and Pudong
    parts = shapely.get_parts(study.difference(river))  # land pieces the river separates
    for uid, g in zip(demo_result.units["unit_id"], demo_result.units.geometry, strict=True):
        on = [shapely.intersection(g, b).area > 1.0 for b in parts]
        assert sum(on) <= 1, uid
        assert shapely.intersection(g, river).area < 0.01 * g.area, uid


def test_demo_sizes_within_bounds(demo_result: uu.UnitsResult, demo_cfg: Config) -> None:
    units = demo_result.units
    a = units["area_m2"]
    within = (a >= demo_cfg.units.min_area_m2) & (a <= demo_cfg.units.max_area_m2)
    assert within.mean() >= 0.90
    assert (within == (units["size_status"] == "within")).all()
    assert set(demo_result.report["unit_id"]) == set(units.loc[~within, "unit_id"])
    assert demo_result.report["reason"].str.len().gt(0).all()
    assert units["unit_class"].isin(list(uu.CLASS_LABELS)).all()
    cols = {"unit_id", "area_m2", "subdistrict", "share_residential", "share_commercial",
            "share_industrial", "share_green", "n_residential_areas", "n_old_communities",
            "old_floor_area_m2", "unit_class", "size_status"}
    assert cols <= set(units.columns)
    assert units["n_old_communities"].dtype.kind == "i"
    assert units["old_floor_area_m2"].dtype.kind == "f"


def test_demo_is_deterministic_and_independent_of_input_order(
        demo_result: uu.UnitsResult, demo_cfg: Config, demo_layers: OSMLayers) -> None:
    rng = np.random.default_rng(7)
    shuffled = dataclasses.replace(
        demo_layers,
        roads=demo_layers.roads.iloc[rng.permutation(len(demo_layers.roads))],
        water=demo_layers.water.iloc[rng.permutation(len(demo_layers.water))])
    for other in (uu.update_units(demo_layers, demo_cfg), uu.update_units(shuffled, demo_cfg)):
        assert other.units["unit_id"].tolist() == demo_result.units["unit_id"].tolist()
        assert shapely.equals_exact(other.units.geometry.values,
                                    demo_result.units.geometry.values, tolerance=0).all()
        assert other.blocks["block_id"].tolist() == demo_result.blocks["block_id"].tolist()


def test_run_units_writes_gpkg_and_map(tmp_path: Path, demo_layers: OSMLayers) -> None:
    from urbanunits.export import list_layers, read_layer
    from urbanunits.pipeline import run_units

    cfg = demo_config(tmp_path)
    res = run_units(cfg, layers=demo_layers)
    assert {"update_units", "blocks"} <= set(list_layers(cfg.gpkg_path))
    back = read_layer(cfg.gpkg_path, "update_units")
    assert back["unit_id"].tolist() == res.layers["update_units"]["unit_id"].tolist()
    png = cfg.maps_dir / "update_units.png"
    assert png.is_file() and png.stat().st_size > 50_000
    assert any("within" in s for s in res.summary)


def test_plot_units_draws_classes_ids_and_legend(demo_result: uu.UnitsResult,
                                                 demo_layers: OSMLayers) -> None:
    from urbanunits.maps import plot_units

    fig, ax = plot_units(demo_result.units, layers=demo_layers, title="t",
                         barriers=demo_result.barriers)
    texts = [t.get_text() for t in ax.texts]
    for uid in demo_result.units["unit_id"]:
        assert any(t.startswith(uid) for t in texts), uid
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for cls in demo_result.units["unit_class"].unique():
        assert any(t.startswith(uu.CLASS_LABELS[cls]) for t in legend)
    assert any("Main road" in t for t in legend)
    assert ax.get_title().startswith("更新单元")
    assert fig is ax.get_figure()


def test_summary_lines(demo_result: uu.UnitsResult) -> None:
    lines = demo_result.summary_lines()
    assert lines[0].startswith(f"units: {len(demo_result.units)}")
    assert lines[1].startswith("classes (")
    assert "%" in lines[2]
    assert len(lines) == 3 + len(demo_result.report)


"""Clipping a larger PBF to the study area: complete ways, completed boundaries, nothing extra.

The input is the shipped demo extract written as PBF plus a few objects reaching far outside it
(a way crossing the edge, boundary, route and multipolygon relations). A brute-force oracle
computed here in plain Python says exactly which objects the clip must keep.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import osmium
import pytest
import shapely
from osmium.osm.mutable import Node, Relation, Way

from urbanunits import cli
from urbanunits.config import Config, StudyArea
from urbanunits.errors import DataError, InputFileError
from urbanunits.sources._extent import region_bbox_ll
from urbanunits.sources.clip import clip_for_config, clip_osm
from urbanunits.sources.osm import read_osm

from .conftest import DEMO_OSM, demo_config

BOX = (121.495, 31.230, 121.505, 31.238)  # the small study area inside the demo extract
N0, W0, R0 = 20_000_000_000, 2_000_000_000, 1  # ids of the added objects (after the demo's)
FAR = (121.60, 31.30)  # far outside the demo extract


def _add_extra(writer: osmium.SimpleWriter, phase: str) -> None:
    """Objects reaching out of the box; written after the demo's nodes/ways (IDs stay sorted)."""
    fx, fy = FAR
    if phase == "nodes":
        pts = {N0 + 1: (121.500, 31.234),  # inside the box
               N0 + 2: (fx, fy), N0 + 3: (fx + 0.01, fy), N0 + 4: (fx + 0.02, fy),
               N0 + 5: (fx, fy + 0.01), N0 + 6: (fx + 0.01, fy + 0.01),
               N0 + 7: (fx + 0.02, fy + 0.01), N0 + 8: (fx, fy + 0.02),
               N0 + 9: (fx + 0.01, fy + 0.02), N0 + 10: (fx + 0.02, fy + 0.02),
               N0 + 11: (fx + 0.03, fy + 0.03)}
        for nid, loc in pts.items():
            tags = {"amenity": "cafe"} if nid in (N0 + 1, N0 + 11) else {}
            writer.add_node(Node(id=nid, location=loc, version=1, tags=tags))
    elif phase == "ways":
        ways = {W0 + 1: ([N0 + 1, N0 + 2, N0 + 3], {"highway": "primary"}),  # crosses the edge
                W0 + 2: ([N0 + 3, N0 + 4, N0 + 7], {}),  # admin level 8 member, outside
                W0 + 3: ([N0 + 7, N0 + 1], {}),  # closes the admin ring via the box
                W0 + 4: ([N0 + 5, N0 + 6], {}),  # route member, outside
                W0 + 5: ([N0 + 8, N0 + 9], {}),  # province member, outside
                W0 + 6: ([N0 + 9, N0 + 10], {}),  # multipolygon member, outside
                W0 + 7: ([N0 + 6, N0 + 11], {"highway": "service"})}  # unrelated, outside
        for wid, (refs, tags) in ways.items():
            writer.add_way(Way(id=wid, nodes=refs, version=1, tags=tags))
    else:
        rels = {R0 + 1: ([("w", W0 + 1, "outer"), ("w", W0 + 2, "outer"),
                          ("w", W0 + 3, "outer"), ("n", N0 + 5, "label")],
                         {"type": "boundary", "boundary": "administrative",
                          "admin_level": "8", "name": "测试街道"}),
                R0 + 2: ([("w", W0 + 1, ""), ("w", W0 + 4, "")],
                         {"type": "route", "route": "bus"}),
                R0 + 3: ([("w", W0 + 1, "outer"), ("w", W0 + 5, "outer")],
                         {"type": "boundary", "boundary": "administrative",
                          "admin_level": "4"}),
                R0 + 4: ([("w", W0 + 6, "inner"), ("w", W0 + 1, "outer")],
                         {"type": "multipolygon", "landuse": "residential"}),
                R0 + 5: ([("w", W0 + 7, "")], {"type": "route", "route": "bus"})}
        for rid, (members, tags) in rels.items():
            writer.add_relation(Relation(id=rid, members=members, version=1, tags=tags))


def write_big_pbf(path: Path) -> Path:
    """The demo extract plus the objects above, as a sorted PBF."""
    with osmium.SimpleWriter(str(path), overwrite=True) as w:
        phase = "nodes"
        for obj in osmium.FileProcessor(str(DEMO_OSM)):
            if obj.is_way() and phase == "nodes":
                _add_extra(w, "nodes")
                phase = "ways"
            w.add(obj)
        _add_extra(w, "ways")
        _add_extra(w, "relations")
    return path


@pytest.fixture(scope="module")
def big_pbf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_big_pbf(tmp_path_factory.mktemp("clip") / "big.osm.pbf")


def read_all(path: Path) -> dict[str, dict[int, Any]]:
    """Every object of a file: nodes → (lon, lat), ways → node refs, relations → (members, tags)."""
    out: dict[str, dict[int, Any]] = {"n": {}, "w": {}, "r": {}}
    for o in osmium.FileProcessor(str(path)):
        if isinstance(o, osmium.osm.Node):
            out["n"][o.id] = (o.location.lon, o.location.lat)
        elif isinstance(o, osmium.osm.Way):
            out["w"][o.id] = [n.ref for n in o.nodes]
        elif isinstance(o, osmium.osm.Relation):
            out["r"][o.id] = ([(m.type, m.ref) for m in o.members], dict(o.tags))
    return out


def oracle(data: dict[str, dict[int, Any]], box: tuple[float, ...]) -> dict[str, set[int]]:
    """What the clip must keep, by brute force."""
    x0, y0, x1, y1 = box
    inside = {i for i, (x, y) in data["n"].items() if x0 <= x <= x1 and y0 <= y <= y1}
    ways = {i for i, refs in data["w"].items() if inside.intersection(refs)}
    rels, complete = set(), set()
    for i, (members, tags) in data["r"].items():
        if any((t == "n" and r in inside) or (t == "w" and r in ways) for t, r in members):
            rels.add(i)
            if tags.get("type") == "multipolygon" or (
                    tags.get("type") == "boundary" and int(tags.get("admin_level", 0)) >= 6):
                complete.add(i)
    for i in complete:
        ways |= {r for t, r in data["r"][i][0] if t == "w" and r in data["w"]}
    nodes = set(inside)
    for i in ways:
        nodes.update(data["w"][i])
    for i in complete:
        nodes |= {r for t, r in data["r"][i][0] if t == "n" and r in data["n"]}
    return {"n": nodes & set(data["n"]), "w": ways, "r": rels}


def small_cfg(tmp_path: Path, **osm: Any) -> Config:
    cfg = demo_config(tmp_path / "processed")
    return dataclasses.replace(cfg, study_area=StudyArea(bbox=BOX, crs=cfg.study_area.crs),
                               osm=dataclasses.replace(cfg.osm, **osm))


def test_clip_keeps_exactly_the_area_with_whole_ways(tmp_path: Path, big_pbf: Path) -> None:
    cfg = small_cfg(tmp_path, graph_margin_m=300.0)
    out = tmp_path / "raw" / "small.osm.pbf"
    res = clip_for_config(big_pbf, cfg, output=out)
    region = region_bbox_ll(cfg)
    assert res.bbox_ll == region
    src, got = read_all(big_pbf), read_all(out)
    want = oracle(src, region)
    assert {k: set(v) for k, v in got.items()} == want
    assert len(want["n"]) < 0.7 * len(src["n"])  # a real cut, not a copy

    # Every way that intersects the study area is there with all its nodes (geometric check,
    # independent of the node-in-box rule above).
    area = shapely.box(*BOX)
    for wid, refs in src["w"].items():
        line = shapely.LineString([src["n"][r] for r in refs]) if len(refs) > 1 else None
        if line is not None and line.intersects(area):
            assert wid in got["w"], wid
            assert all(r in got["n"] for r in refs), wid
    # Nothing outside the margin except nodes of kept ways and completed relations' members.
    x0, y0, x1, y1 = region
    way_nodes = {r for refs in got["w"].values() for r in refs}
    outside = {i for i, (x, y) in got["n"].items() if not (x0 <= x <= x1 and y0 <= y <= y1)}
    assert outside <= way_nodes | {N0 + 5}

    # The designed cases, spelled out.
    assert W0 + 1 in got["w"] and all(n in got["n"] for n in src["w"][W0 + 1])
    assert {W0 + 2, W0 + 3} <= set(got["w"])  # admin level 8 completed
    assert N0 + 5 in got["n"]  # ... with its label node
    assert W0 + 6 in got["w"]  # multipolygon completed
    assert {R0 + 2, R0 + 3} <= set(got["r"])  # route and province kept ...
    assert not {W0 + 4, W0 + 5} & set(got["w"])  # ... but not completed
    assert R0 + 5 not in got["r"] and W0 + 7 not in got["w"]
    assert not {N0 + 6, N0 + 11} & set(got["n"])  # outside, on no kept way

    header = osmium.io.Reader(str(out)).header()
    b = header.box()
    assert (b.bottom_left.lon, b.bottom_left.lat) == pytest.approx(region[:2], abs=1e-7)
    prov = (out.parent / "PROVENANCE.md").read_text(encoding="utf-8")
    assert "small.osm.pbf — clipped" in prov and str(big_pbf.resolve()) in prov

    # The ingest reads the clip: same compounds and roads in the study area as from the source.
    ours = read_osm(cfg, path=out, use_cache=False)
    full = read_osm(cfg, path=big_pbf, use_cache=False)
    assert set(ours.residential["name"]) == set(full.residential["name"])
    assert len(ours.roads) == len(full.roads) > 0
    assert ours.walk_graph.number_of_edges() == full.walk_graph.number_of_edges()


def test_index_and_python_node_passes_agree(tmp_path: Path, big_pbf: Path) -> None:
    a = clip_osm(big_pbf, tmp_path / "a.osm.pbf", bbox_ll=BOX, method="index", batch_nodes=1000)
    b = clip_osm(big_pbf, tmp_path / "b.osm", bbox_ll=BOX, method="python")
    assert a.method == "index" and b.method == "python"
    assert (a.nodes_in_box, a.nodes_scanned, a.relations) == (
        b.nodes_in_box, b.nodes_scanned, b.relations)
    assert read_all(tmp_path / "a.osm.pbf") == read_all(tmp_path / "b.osm")


def test_clip_errors(tmp_path: Path, big_pbf: Path) -> None:
    with pytest.raises(DataError, match=r"no nodes inside the study area box.*data extent"):
        clip_osm(big_pbf, tmp_path / "x.osm.pbf", bbox_ll=(100.0, 20.0, 100.1, 20.1))
    with pytest.raises(InputFileError, match="overwrite its own input"):
        clip_osm(big_pbf, big_pbf, bbox_ll=BOX)
    with pytest.raises(InputFileError, match="not found"):
        clip_osm(tmp_path / "nope.osm.pbf", tmp_path / "x.osm.pbf", bbox_ll=BOX)
    unsorted = tmp_path / "unsorted.osm.pbf"
    with osmium.SimpleWriter(str(unsorted)) as w:
        for nid in (5, 3, 4):
            w.add_node(Node(id=nid, location=(121.5, 31.234), version=1))
    with pytest.raises(DataError, match="not sorted"):
        clip_osm(unsorted, tmp_path / "x.osm.pbf", bbox_ll=BOX)
    assert not (tmp_path / "x.osm.pbf").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_interrupted_clip_leaves_nothing(tmp_path: Path, big_pbf: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.osm.pbf"
    out.write_bytes(b"previous")

    def boom(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(osmium, "apply", boom)
    with pytest.raises(KeyboardInterrupt):
        clip_osm(big_pbf, out, bbox_ll=BOX)
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.osm.pbf"]


def test_clip_cli_writes_inputs_osm(tmp_path: Path, big_pbf: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = tmp_path / "configs" / "x.toml"
    cfg_path.parent.mkdir()
    cfg_path.write_text(
        f'name = "x"\n[study_area]\nbbox = {list(BOX)}\n[inputs]\nosm = "raw/x.osm.pbf"\n'
        '[osm]\ngraph_margin_m = 100.0\n', encoding="utf-8")
    assert cli.main(["clip", str(big_pbf), "--config", str(cfg_path)]) == 0
    assert "clip: done" in capsys.readouterr().out
    out = tmp_path / "raw" / "x.osm.pbf"
    assert out.is_file() and (tmp_path / "raw" / "PROVENANCE.md").is_file()
    assert cli.main(["clip", str(tmp_path / "missing.pbf"), "--config", str(cfg_path)]) == 2

"""Facility files: formats, datums, columns, classification, de-duplication, bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from urbanunits.config import Category, FacilityFile, Subtype, default_categories
from urbanunits.crs import gcj02_to_bd09, wgs84_to_gcj02
from urbanunits.errors import CRSError, DataError, InputFileError
from urbanunits.sources.facilities import (
    collect_facilities,
    dedupe_facilities,
    normalise_name,
    read_facility_file,
)

from .conftest import ROOT

CRS = "EPSG:32651"
CATS = default_categories()
CLINIC = CATS["clinic"]
# WGS84 points inside the Lujiazui demo area
LON = np.array([121.500, 121.505, 121.495])
LAT = np.array([31.235, 31.230, 31.240])


def _utm(lon: np.ndarray, lat: np.ndarray) -> gpd.GeoSeries:
    return gpd.GeoSeries(shapely.points(lon, lat), crs="EPSG:4326").to_crs(CRS)


def _csv(tmp_path: Path, df: pd.DataFrame, name: str = "f.csv") -> Path:
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


@pytest.mark.parametrize("system", ["wgs84", "gcj02", "bd09"])
def test_csv_datums_are_converted(tmp_path: Path, system: str) -> None:
    """A list copied from Gaode (GCJ-02) or Baidu (BD-09) lands on the true WGS84 spot."""
    lon, lat = LON, LAT
    if system != "wgs84":
        lon, lat = wgs84_to_gcj02(LON, LAT)
    if system == "bd09":
        lon, lat = gcj02_to_bd09(lon, lat)
    path = _csv(tmp_path, pd.DataFrame({"名称": ["甲诊所", "乙卫生站", "丙医院"],
                                        "x": lon, "y": lat}))
    ff = FacilityFile(path=path, name_field="名称", lon_field="x", lat_field="y",
                      coord_system=system)
    got, notes = read_facility_file(ff, "clinic", CLINIC, crs=CRS)
    want = _utm(LON, LAT)
    assert got.crs == CRS and list(got["source"]) == ["f.csv"] * 3
    assert np.allclose(got.geometry.x, want.x, atol=0.5)
    assert np.allclose(got.geometry.y, want.y, atol=0.5)
    # classified by the clinic name patterns: 诊所/卫生站 → station; a 医院 is a hospital,
    # never a community health centre
    assert list(got["subtype"]) == ["health_station", "health_station", "hospital"]
    assert list(got["matched_by"]) == ["name:诊所", "name:卫生站", "name:医院"]
    assert notes == []
    if system != "wgs84":  # without conversion the points would be ~500 m off
        raw = _utm(np.asarray(lon), np.asarray(lat))
        assert raw.distance(want).min() > 100


def test_geojson_polygons_become_points_inside(tmp_path: Path) -> None:
    path = ROOT / "data" / "raw" / "ningbo" / "ningbo_hospitals_osm.geojson"
    ff = FacilityFile(path=path, subtype="health_centre")
    got, _ = read_facility_file(ff, "clinic", CLINIC, crs=CRS)
    src = gpd.read_file(path).to_crs(CRS)
    assert len(got) == len(src) == 95
    assert (got.geometry.geom_type == "Point").all()
    assert got.geometry.within(src.geometry.buffer(0.01)).all()
    assert set(got["subtype"]) == {"health_centre"}


def test_rows_matching_no_pattern_are_left_out_and_reported(tmp_path: Path) -> None:
    path = _csv(tmp_path, pd.DataFrame({"name": ["东园幼儿园", "某某公司"],
                                        "lon": LON[:2], "lat": LAT[:2]}))
    got, notes = read_facility_file(FacilityFile(path=path), "childcare", CATS["childcare"],
                                    crs=CRS)
    assert list(got["name"]) == ["东园幼儿园"]
    assert any("1 of 2" in n for n in notes)


def test_subtype_field_maps_keys_and_labels_and_refuses_unknown(tmp_path: Path) -> None:
    df = pd.DataFrame({"name": ["a", "b"], "kind": ["health_station", "卫生服务中心/医院 Health "
                                                    "centre, hospital"],
                       "lon": LON[:2], "lat": LAT[:2]})
    cat = dataclasses.replace(CLINIC, subtypes={
        "health_station": CLINIC.subtypes["health_station"],
        "health_centre": dataclasses.replace(CLINIC.subtypes["health_centre"],
                                             label="卫生服务中心/医院 Health centre, hospital")})
    got, _ = read_facility_file(FacilityFile(path=_csv(tmp_path, df), subtype_field="kind"),
                                "clinic", cat, crs=CRS)
    assert list(got["subtype"]) == ["health_station", "health_centre"]
    df.loc[1, "kind"] = "pharmacy"
    with pytest.raises(DataError, match="pharmacy"):
        read_facility_file(FacilityFile(path=_csv(tmp_path, df), subtype_field="kind"),
                           "clinic", cat, crs=CRS)


# --- bad input ---------------------------------------------------------------------------------


def test_wrong_columns_name_the_column_and_list_what_is_there(tmp_path: Path) -> None:
    path = _csv(tmp_path, pd.DataFrame({"name": ["a"], "经度": [121.5], "纬度": [31.2]}))
    with pytest.raises(DataError, match=r"'lon'.*经度, 纬度") as exc:
        read_facility_file(FacilityFile(path=path), "clinic", CLINIC, crs=CRS)
    assert "lon_field" in exc.value.fix
    path = _csv(tmp_path, pd.DataFrame({"title": ["a"], "lon": [121.5], "lat": [31.23]}))
    with pytest.raises(DataError, match="'name'"):
        read_facility_file(FacilityFile(path=path), "clinic", CLINIC, crs=CRS)


def test_unknown_coord_system_is_refused_before_reading(tmp_path: Path) -> None:
    ff = FacilityFile(path=tmp_path / "missing.csv", coord_system="gcj-03")
    with pytest.raises(CRSError, match="gcj-03") as exc:
        read_facility_file(ff, "clinic", CLINIC, crs=CRS)
    assert "coord_system" in exc.value.where


def test_swapped_or_far_away_coordinates_are_an_error(tmp_path: Path) -> None:
    area = _utm(LON, LAT).union_all().buffer(2000)
    swapped = _csv(tmp_path, pd.DataFrame({"name": ["甲诊所"], "lon": LAT[:1], "lat": LON[:1]}))
    with pytest.raises(DataError, match="degrees"):  # 121.5 is no latitude
        read_facility_file(FacilityFile(path=swapped), "clinic", CLINIC, crs=CRS, area=area)
    far = _csv(tmp_path, pd.DataFrame({"name": ["甲诊所"], "lon": [116.4], "lat": [39.9]}))
    with pytest.raises(DataError, match="none of its 1 facilities lies in the study area"):
        read_facility_file(FacilityFile(path=far), "clinic", CLINIC, crs=CRS, area=area)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("name,lon,lat\n", encoding="utf-8")
    with pytest.raises(DataError, match="no rows"):
        read_facility_file(FacilityFile(path=empty), "clinic", CLINIC, crs=CRS)
    with pytest.raises(InputFileError, match="not found"):
        read_facility_file(FacilityFile(path=tmp_path / "nope.csv"), "clinic", CLINIC, crs=CRS)


def test_gbk_csv_is_read(tmp_path: Path) -> None:
    p = tmp_path / "gbk.csv"
    pd.DataFrame({"name": ["东园卫生站"], "lon": LON[:1], "lat": LAT[:1]}).to_csv(
        p, index=False, encoding="gb18030")
    got, _ = read_facility_file(FacilityFile(path=p), "clinic", CLINIC, crs=CRS)
    assert list(got["name"]) == ["东园卫生站"]


def test_empty_category_is_a_reported_gap_not_an_error() -> None:
    osm = gpd.GeoDataFrame({"category": ["clinic"], "subtype": ["health_centre"],
                            "name": ["东方医院"], "source": ["osm"], "osm_id": [1]},
                           geometry=_utm(LON[:1], LAT[:1]).values, crs=CRS)
    fac, notes = collect_facilities(osm, CATS, crs=CRS)
    assert list(fac["category"]) == ["clinic"] and list(fac["facility_id"]) == ["clinic-1"]
    assert {n.split(":")[0] for n in notes if "no facility in the area" in n} == {
        "elderly_care", "childcare", "commerce"}
    fac0, notes0 = collect_facilities(None, CATS, crs=CRS)
    assert len(fac0) == 0 and len(notes0) == 4


# --- de-duplication ------------------------------------------------------------------------


def test_normalise_name() -> None:
    assert normalise_name("东昌幼儿园(小石桥总部)") == normalise_name("东昌幼儿园") == "东昌幼儿园"
    assert normalise_name("Ｌ＋ＭＡＬＬ") == normalise_name("l+mall") == "lmall"
    assert normalise_name(None) == normalise_name(float("nan")) == ""


def test_dedupe_merges_only_same_category_similar_name_nearby(tmp_path: Path) -> None:
    base = _utm(LON[:1], LAT[:1]).iloc[0]
    pts = [base, shapely.Point(base.x + 10, base.y),  # same kindergarten, 10 m apart
           shapely.Point(base.x + 100, base.y),       # same name, 100 m away: another branch
           shapely.Point(base.x + 5, base.y + 5),     # other name nearby
           shapely.Point(base.x + 3, base.y)]         # same name, other category
    fac = gpd.GeoDataFrame({
        "category": ["childcare", "childcare", "childcare", "childcare", "clinic"],
        "subtype": ["kindergarten"] * 4 + ["health_station"],
        "name": ["东昌幼儿园", "东昌幼儿园(小石桥总部)", "东昌幼儿园", "菊园幼儿园", "东昌幼儿园"],
        "source": ["list.csv", "osm", "osm", "osm", "osm"]}, geometry=pts, crs=CRS)
    out = dedupe_facilities(fac, dedupe_m=30)
    assert len(out) == 4
    first = out.iloc[0]
    assert first["source"] == "list.csv;osm" and first["n_merged"] == 2
    assert first.geometry.equals(base)  # the file's record wins
    assert list(out["n_merged"]) == [2, 1, 1, 1]


def test_collect_puts_files_before_osm(tmp_path: Path) -> None:
    path = _csv(tmp_path, pd.DataFrame({"name": ["上海东方医院"], "lon": LON[:1],
                                        "lat": LAT[:1]}), name="hospitals.csv")
    cats = {"clinic": dataclasses.replace(CLINIC, files=[FacilityFile(path=path)])}
    p = _utm(LON[:1], LAT[:1]).iloc[0]
    osm = gpd.GeoDataFrame({"category": ["clinic"], "subtype": ["health_centre"],
                            "name": ["东方医院"], "source": ["osm"], "osm_id": [9]},
                           geometry=[shapely.Point(p.x + 12, p.y)], crs=CRS)
    fac, _ = collect_facilities(osm, cats, crs=CRS, dedupe_m=30)
    assert len(fac) == 1 and fac.iloc[0]["source"] == "hospitals.csv;osm"


def test_subtype_not_in_category_is_refused(tmp_path: Path) -> None:
    cat = Category(label="x", subtypes={"a": Subtype(distance_m=300)})
    path = _csv(tmp_path, pd.DataFrame({"name": ["n"], "lon": LON[:1], "lat": LAT[:1]}))
    with pytest.raises(DataError, match="not a subtype"):
        read_facility_file(FacilityFile(path=path, subtype="b"), "x", cat, crs=CRS)


def test_ningbo_config_files_load() -> None:
    """The shipped Ningbo facility files load under the Ningbo config: kindergartens picked
    out of the schools file by name, hospitals and malls by fixed subtype, schools by pattern."""
    from urbanunits.config import load_config
    from urbanunits.sources.facilities import load_facilities
    from urbanunits.sources.osm import study_area_polygon

    cfg = load_config(ROOT / "configs" / "ningbo.toml")
    area = study_area_polygon(cfg).geometry.iloc[0].buffer(cfg.osm.graph_margin_m)
    fac, notes = load_facilities(cfg, None, area=area)
    counts = fac.groupby(["category", "subtype"]).size()
    assert counts[("clinic", "hospital")] > 20
    assert counts[("commerce", "mall")] > 100
    assert counts[("childcare", "kindergarten")] > 0
    edu = fac[fac["category"] == "education"]
    assert {"primary", "junior_secondary"} <= set(edu["subtype"])
    assert not edu["name"].str.contains("高级中学|职业").any()
    kg = fac[fac["category"] == "childcare"]
    assert kg["name"].str.contains("幼儿园|幼稚园|托育|托儿所").all()
    assert not kg["name"].str.contains("早教").any()
    assert any(n.startswith("elderly_care: no facility") for n in notes)
    assert any("outside the study area" in n for n in notes)  # county-wide files
    assert fac["facility_id"].is_unique


def test_partly_swapped_rows_get_a_hint(tmp_path: Path) -> None:
    """Two of five rows typed lat, lon: the good rows are kept, the note counts the swapped."""
    area = _utm(LON, LAT).union_all().buffer(2000)
    lon = [LON[0], LAT[1], LON[2], LAT[0], LON[1]]
    lat = [LAT[0], LON[1], LAT[2], LON[0], LAT[1]]
    path = _csv(tmp_path, pd.DataFrame({"name": [f"诊所{i}" for i in range(5)],
                                        "lon": lon, "lat": lat}))
    got, notes = read_facility_file(FacilityFile(path=path), "clinic", CLINIC, crs=CRS,
                                    area=area)
    assert sorted(got["name"]) == ["诊所0", "诊所2", "诊所4"]
    assert any("lon/lat swapped in 2 row(s)?" in n for n in notes), notes
    # All swapped: the error carries the hint too.
    path = _csv(tmp_path, pd.DataFrame({"name": ["甲", "乙"], "lon": LAT[:2], "lat": LON[:2]}))
    with pytest.raises(DataError, match=r"lon/lat swapped in 2 row\(s\)\?"):
        read_facility_file(FacilityFile(path=path, subtype="health_station"), "clinic", CLINIC,
                           crs=CRS, area=area)
    # Correct files get no hint.
    path = _csv(tmp_path, pd.DataFrame({"name": ["甲诊所"], "lon": LON[:1], "lat": LAT[:1]}))
    _, notes = read_facility_file(FacilityFile(path=path), "clinic", CLINIC, crs=CRS, area=area)
    assert not any("swapped" in n for n in notes)


# --- undeclared datum ----------------------------------------------------------------------------


def _on_streets(streets: gpd.GeoDataFrame, n: int, *, seed: int, jitter_m: float = 5.0
                ) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 lon/lat of ``n`` points within ``jitter_m`` of random spots on the streets."""
    rng = np.random.default_rng(seed)
    lines = streets.geometry.to_numpy()[rng.integers(0, len(streets), n)]
    pts = shapely.line_interpolate_point(lines, rng.uniform(0, 1, n), normalized=True)
    x = shapely.get_x(pts) + rng.uniform(-jitter_m, jitter_m, n)
    y = shapely.get_y(pts) + rng.uniform(-jitter_m, jitter_m, n)
    ll = gpd.GeoSeries(shapely.points(x, y), crs=streets.crs).to_crs("EPSG:4326")
    return ll.x.to_numpy(), ll.y.to_numpy()


def _synthetic_streets(seed: int) -> gpd.GeoDataFrame:
    """An irregular street grid (lines at random spacings of 80–250 m) around Lujiazui."""
    rng = np.random.default_rng(seed)
    c = _utm(np.array([121.50]), np.array([31.235])).iloc[0]
    xs = c.x - 1500 + np.cumsum(rng.uniform(80, 250, 20))
    ys = c.y - 1500 + np.cumsum(rng.uniform(80, 250, 20))
    lines = ([shapely.LineString([(x, ys[0]), (x, ys[-1])]) for x in xs]
             + [shapely.LineString([(xs[0], y), (xs[-1], y)]) for y in ys])
    return gpd.GeoDataFrame({"highway": ["residential"] * len(lines)}, geometry=lines, crs=CRS)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_detect_datum_shift_on_synthetic_streets(seed: int) -> None:
    from urbanunits.crs import detect_datum_shift

    streets = _synthetic_streets(seed)
    lon, lat = _on_streets(streets, 40, seed=seed)
    glon, glat = wgs84_to_gcj02(lon, lat)
    blon, blat = gcj02_to_bd09(glon, glat)
    assert detect_datum_shift(lon, lat, streets) is None
    assert detect_datum_shift(glon, glat, streets) == "gcj02"
    assert detect_datum_shift(blon, blat, streets) == "bd09"
    # Too few points decide nothing; points outside China are never "shifted".
    assert detect_datum_shift(glon[:5], glat[:5], streets) is None
    assert detect_datum_shift(lon - 60, lat, streets) is None


def test_real_wgs84_points_are_not_flagged(demo_layers: object) -> None:
    """OSM's own facilities, POIs and compounds (true WGS84) pass the check, whole or in parts."""
    from urbanunits.crs import detect_datum_shift
    from urbanunits.sources.facilities import street_lines

    layers = demo_layers
    streets = street_lines(layers.roads)  # type: ignore[attr-defined]
    assert streets is not None
    area = layers.study_area.geometry.iloc[0]  # type: ignore[attr-defined]
    for g in (layers.pois.geometry, layers.residential.representative_point(),  # type: ignore[attr-defined]
              layers.buildings.representative_point()):  # type: ignore[attr-defined]
        ll = gpd.GeoSeries(g[g.within(area)].values, crs=CRS).to_crs("EPSG:4326")
        lon, lat = ll.x.to_numpy(), ll.y.to_numpy()
        assert detect_datum_shift(lon, lat, streets) is None
        for part in np.array_split(np.arange(len(lon)), max(1, len(lon) // 20)):
            assert detect_datum_shift(lon[part], lat[part], streets) is None


def test_undeclared_gcj02_file_near_the_streets_is_refused(tmp_path: Path,
                                                           demo_layers: object) -> None:
    from urbanunits.sources.facilities import street_lines

    streets = street_lines(demo_layers.roads)  # type: ignore[attr-defined]
    assert streets is not None
    area = demo_layers.study_area.geometry.iloc[0]  # type: ignore[attr-defined]
    inner = streets[streets.within(area.buffer(-300))]
    lon, lat = _on_streets(inner, 40, seed=7)
    glon, glat = wgs84_to_gcj02(lon, lat)
    names = [f"社区卫生站{i}" for i in range(len(lon))]
    path = _csv(tmp_path, pd.DataFrame({"name": names, "lon": glon, "lat": glat}), "gaode.csv")
    where = "lifecircle.categories.clinic.files[0]"
    with pytest.raises(DataError) as exc:
        read_facility_file(FacilityFile(path=path), "clinic", CLINIC, crs=CRS, where=where,
                           streets=streets)
    assert exc.value.where == str(path)
    assert f'{where}.coord_system = "gcj02"' in exc.value.fix
    assert "GCJ-02" in exc.value.what
    # Declared, it converts; an explicit "wgs84" is taken at its word (no check).
    got, _ = read_facility_file(FacilityFile(path=path, coord_system="gcj02"), "clinic", CLINIC,
                                crs=CRS, streets=streets)
    want = _utm(lon, lat)
    assert np.allclose(got.geometry.x, want.x, atol=0.5)
    raw, _ = read_facility_file(FacilityFile(path=path, coord_system="wgs84"), "clinic", CLINIC,
                                crs=CRS, streets=streets)
    assert np.allclose(raw.geometry.x, _utm(glon, glat).x, atol=0.5)
    # The same points in WGS84, undeclared: no error.
    true = _csv(tmp_path, pd.DataFrame({"name": names, "lon": lon, "lat": lat}), "true.csv")
    ok, _ = read_facility_file(FacilityFile(path=true), "clinic", CLINIC, crs=CRS,
                               streets=streets)
    assert len(ok) == len(lon)
    # Through collect_facilities, as the pipeline calls it with the OSM roads layer.
    cats = {"clinic": dataclasses.replace(CLINIC, files=[FacilityFile(path=path)])}
    with pytest.raises(DataError, match="GCJ-02"):
        collect_facilities(None, cats, crs=CRS,
                           roads=demo_layers.roads)  # type: ignore[attr-defined]


def test_gbk_shapefile_without_cpg_is_read(tmp_path: Path) -> None:
    path = tmp_path / "clinics.shp"
    gpd.GeoDataFrame({"name": ["东园卫生站", "西园社区卫生服务中心"]},
                     geometry=shapely.points(LON[:2], LAT[:2]), crs="EPSG:4326").to_file(
        path, encoding="GBK", engine="pyogrio")
    path.with_suffix(".cpg").unlink()
    got, _ = read_facility_file(FacilityFile(path=path), "clinic", CLINIC, crs=CRS)
    assert list(got["name"]) == ["东园卫生站", "西园社区卫生服务中心"]
    assert list(got["subtype"]) == ["health_station", "health_centre"]  # patterns matched


def test_undeclared_datum_found_by_osm_namesakes(tmp_path: Path, demo_layers: object) -> None:
    """Facilities named like OSM's own POIs: converted they land on their namesakes.

    No streets are given, so only the names can tell; the demo's named POIs are the reference
    and the file holds some of them, 10–20 m off, as a web map would list them.
    """
    pois = demo_layers.pois  # type: ignore[attr-defined]
    area = demo_layers.study_area.geometry.iloc[0]  # type: ignore[attr-defined]
    named = pois[pois["name"].notna() & pois.within(area.buffer(-300))]
    named = named.drop_duplicates("name").iloc[:12]
    assert len(named) == 12
    rng = np.random.default_rng(3)
    moved = named.geometry.translate(rng.uniform(10, 20), rng.uniform(-20, -10))
    ll = moved.to_crs("EPSG:4326")
    lon, lat = ll.x.to_numpy(), ll.y.to_numpy()
    glon, glat = wgs84_to_gcj02(lon, lat)
    cat = Category(label="x", subtypes={"a": Subtype(distance_m=300)})
    df = pd.DataFrame({"name": named["name"].to_numpy(), "lon": glon, "lat": glat})
    gcj = _csv(tmp_path, df, "gaode.csv")
    with pytest.raises(DataError, match="OSM namesake") as exc:
        read_facility_file(FacilityFile(path=gcj, subtype="a"), "x", cat, crs=CRS,
                           reference=pois)
    assert '.coord_system = "gcj02"' in exc.value.fix
    # The true positions, and the shifted ones declared, pass; without a reference nothing is
    # checked by name.
    wgs = _csv(tmp_path, df.assign(lon=lon, lat=lat), "wgs.csv")
    read_facility_file(FacilityFile(path=wgs, subtype="a"), "x", cat, crs=CRS, reference=pois)
    read_facility_file(FacilityFile(path=gcj, subtype="a", coord_system="gcj02"), "x", cat,
                       crs=CRS, reference=pois)
    read_facility_file(FacilityFile(path=gcj, subtype="a"), "x", cat, crs=CRS)
    # Names shared by no OSM feature decide nothing.
    other = _csv(tmp_path, df.assign(name=[f"无名{i}" for i in range(12)]), "other.csv")
    read_facility_file(FacilityFile(path=other, subtype="a"), "x", cat, crs=CRS,
                       reference=pois)


@pytest.mark.parametrize("system", ["wgs84", "gcj02", "bd09"])
def test_detect_datum_shift_by_matches(system: str) -> None:
    from urbanunits.crs import detect_datum_shift_by_matches

    rng = np.random.default_rng(5)
    lon = 121.49 + rng.uniform(0, 0.03, 8)
    lat = 31.22 + rng.uniform(0, 0.03, 8)
    ref = _utm(lon, lat)
    # Each point has its namesake 15 m away, and a second, unrelated one 2 km off.
    matches = [np.array([[p.x + 15, p.y], [p.x + 2000, p.y]]) for p in ref]
    a, b = lon, lat
    if system != "wgs84":
        a, b = wgs84_to_gcj02(lon, lat)
    if system == "bd09":
        a, b = gcj02_to_bd09(a, b)
    got = detect_datum_shift_by_matches(a, b, matches, crs=CRS)
    if system == "wgs84":
        assert got is None
    else:
        assert got is not None and got[0] == system and got[2] == pytest.approx(15, abs=1)
    # Too few namesakes decide nothing.
    few = [m if i < 2 else np.zeros((0, 2)) for i, m in enumerate(matches)]
    assert detect_datum_shift_by_matches(a, b, few, crs=CRS) is None


def test_collect_default_dedupe_is_the_configs() -> None:
    """A notebook calling collect_facilities without dedupe_m merges as a run does (#12)."""
    import inspect

    from urbanunits.config import LifeCircleConfig
    default = inspect.signature(collect_facilities).parameters["dedupe_m"].default
    assert default == LifeCircleConfig().dedupe_m

"""User inventories (CSV lon/lat in WGS84/GCJ-02/BD-09, GeoJSON polygons) and population rasters."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine

from urbanunits import packages as pk
from urbanunits.config import Config
from urbanunits.crs import gcj02_to_bd09, wgs84_to_gcj02
from urbanunits.errors import CRSError, DataError, InputFileError
from urbanunits.sources.inputs import load_communities, load_inputs
from urbanunits.sources.inventory import read_inventory
from urbanunits.sources.osm import OSMLayers
from urbanunits.sources.population import zonal_sums

from .stage_inputs import inventory_of

CRS = "EPSG:32651"


def with_inventory(cfg: Config, path: Path, **inputs: object) -> Config:
    return dataclasses.replace(cfg, inputs=dataclasses.replace(cfg.inputs, inventory=path,
                                                               **inputs))


def lonlat_of(layers: OSMLayers, name: str) -> tuple[float, float]:
    res = layers.residential
    pt = res.loc[res["name"] == name].geometry.representative_point().to_crs("EPSG:4326")
    return float(pt.x.iloc[0]), float(pt.y.iloc[0])


def polygon_of(layers: OSMLayers, name: str) -> shapely.Geometry:
    res = layers.residential
    return res.loc[res["name"] == name].geometry.iloc[0]


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


# --------------------------------------------------------------------------------------------
# Coordinates
# --------------------------------------------------------------------------------------------


def test_gcj02_csv_lands_on_the_right_compound(demo_layers: OSMLayers, demo_cfg: Config,
                                               tmp_path: Path) -> None:
    names = ["东园一村", "崂山五村", "东昌新村"]
    rows = ["name,lon,lat,built_year"]
    for n in names:
        glon, glat = wgs84_to_gcj02(*lonlat_of(demo_layers, n))  # as copied from Gaode
        rows.append(f"{n},{float(glon):.7f},{float(glat):.7f},1985")
    path = write(tmp_path / "inv.csv", "\n".join(rows) + "\n")
    comm = inventory_of(demo_layers, with_inventory(demo_cfg, path,
                                                    inventory_coord_system="gcj02"))
    assert comm["geometry"].geom_type.eq("Point").all()
    for n in names:
        pt = comm.loc[comm["name"] == n].geometry.iloc[0]
        assert polygon_of(demo_layers, n).buffer(1.0).contains(pt), n
    # Declared wrongly as WGS84, the same file lands hundreds of metres away.
    wrong = inventory_of(demo_layers, with_inventory(demo_cfg, path))
    for n in names:
        d = wrong.loc[wrong["name"] == n].geometry.iloc[0].distance(polygon_of(demo_layers, n))
        assert d > 200, n
    # Missing floor area is taken from the OSM compound the point falls in.
    est = pk.estimate_floor_area(demo_layers.residential, demo_layers.buildings,
                                 fallback_far=demo_cfg.packages.fallback_far)
    expect = est["floor_area_m2"][demo_layers.residential["name"] == "东园一村"].iloc[0]
    got = comm.loc[comm["name"] == "东园一村"]
    assert got["floor_area_m2"].iloc[0] == pytest.approx(round(expect))
    assert bool(got["floor_area_estimated"].iloc[0])
    assert got["is_old"].all() and (got["old_rule"] == "inventory").all()


def test_bd09_csv_round_trips(tmp_path: Path) -> None:
    lon, lat = 121.55, 29.87
    blon, blat = gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))
    path = write(tmp_path / "b.csv", f"name,lon,lat\n甲,{float(blon)},{float(blat)}\n")
    gdf, _ = read_inventory(path, crs=CRS, coord_system="bd09")
    back = gdf.to_crs("EPSG:4326").geometry.iloc[0]
    expect = gpd.GeoSeries([shapely.Point(lon, lat)], crs="EPSG:4326").to_crs(CRS).iloc[0]
    assert gdf.geometry.iloc[0].distance(expect) < 1.0
    assert back.x == pytest.approx(lon, abs=1e-5)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "column", "hint"), [
    ("name,lon,lat,floor_area", "floor_area", "did you mean 'floor_area_m2'"),
    ("name,lon,lat,househods", "househods", "did you mean 'households'"),
    ("nmae,lon,lat", "nmae", "did you mean 'name'"),
    ("title,lon,lat", "小区名称 (name)", "is missing"),
    ("name,lon", "纬度 (lat)", "is missing"),
])
def test_bad_columns_name_the_column_and_list_expected(tmp_path: Path, header: str, column: str,
                                                       hint: str) -> None:
    n = header.count(",") + 1
    path = write(tmp_path / "x.csv", header + "\n" + ",".join(["1"] * n) + "\n")
    with pytest.raises(DataError) as err:
        read_inventory(path, crs=CRS)
    msg = str(err.value)
    assert (f"'{column}'" if column.isascii() else column) in msg and hint in msg
    # the expected columns as bureaus' files name them, with their keys
    assert ("expected columns: 小区名称 (name), 经度 (lon), 纬度 (lat), 建成年份 (built_year), "
            "建筑面积 (floor_area_m2), 户数 (households)") in msg


def test_rows_without_coordinates_skipped_or_error(tmp_path: Path) -> None:
    text = ("name,lon,lat\n甲,121.50,31.23\n乙,,31.23\n丙,121.50,\n丁,121.501,31.231\n")
    path = write(tmp_path / "m.csv", text)
    gdf, rep = read_inventory(path, crs=CRS)
    assert gdf["name"].tolist() == ["甲", "丁"]
    assert rep.skipped_rows == [3, 4]  # file lines, header = line 1
    assert any("skipped 2 row(s)" in line for line in rep.lines())
    with pytest.raises(DataError, match=r"2 row\(s\) without coordinates \(rows 3, 4\)"):
        read_inventory(path, crs=CRS, on_missing_coords="error")


def test_duplicate_ids_are_an_error_duplicate_names_only_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "id,name,lon,lat\nA1,甲,121.5,31.23\nA2,甲,121.51,31.23\n"
                                     "A1,乙,121.52,31.23\n")
    with pytest.raises(DataError, match="duplicate ids: A1"):
        read_inventory(path, crs=CRS)
    ok = write(tmp_path / "n.csv", "id,name,lon,lat\nA1,甲,121.5,31.23\nA2,甲,121.51,31.23\n")
    gdf, rep = read_inventory(ok, crs=CRS)
    assert gdf["inv_id"].tolist() == ["A1", "A2"]
    assert rep.duplicate_names == ["甲"]


def test_values_that_are_not_numbers_or_years(tmp_path: Path) -> None:
    path = write(tmp_path / "v.csv", "name,lon,lat,建筑面积（㎡）\n甲,121.5,31.23,12000\n"
                                     "乙,121.5,31.23,约1.2万\n")
    with pytest.raises(DataError) as err:
        read_inventory(path, crs=CRS)
    # file, the column as the file writes it, the row and the value
    assert err.value.where == f"{path}: column '建筑面积（㎡）'"
    assert "row 3 has '约1.2万', which is not a number" in err.value.what
    path1 = write(tmp_path / "u.csv", "name,lon,lat,households\n甲,121.5,31.23,1200㎡\n")
    with pytest.raises(DataError, match=r"'households'.*row 2 has '1200㎡'"):
        read_inventory(path1, crs=CRS)  # a value whose own unit is not the column's
    path2 = write(tmp_path / "y.csv", "name,lon,lat,built_year\n甲,121.5,31.23,解放前\n")
    with pytest.raises(DataError, match=r"'built_year'.*row 2 has '解放前', which holds no year"):
        read_inventory(path2, crs=CRS)
    path3 = write(tmp_path / "s.csv", "name,lon,lat\n甲,31.23,121.5\n")
    with pytest.raises(DataError, match="swapped"):
        read_inventory(path3, crs=CRS)


def test_missing_file_and_crs(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        read_inventory(tmp_path / "nope.csv", crs=CRS)
    # A shapefile without .prj has no CRS (written without one, hence the filtered warning).
    shp = tmp_path / "nocrs.shp"
    with pytest.warns(UserWarning, match="crs"):
        gpd.GeoDataFrame({"name": ["甲"]}, geometry=[shapely.box(0, 0, 1, 1)]).to_file(shp)
    with pytest.raises(CRSError, match="no CRS"):
        read_inventory(shp, crs=CRS)


def test_polygons_without_any_attribute_name_the_missing_column(tmp_path: Path) -> None:
    # Digitised outlines with no attribute table at all: the message must say what to add,
    # not fail inside the reader (the header check used to be skipped when there were no
    # columns). An empty layer is still "no rows".
    path = tmp_path / "outlines.gpkg"
    gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 50, 50)], crs=CRS).to_file(path)
    with pytest.raises(DataError, match=r"column 小区名称 \(name\).*is missing"):
        read_inventory(path, crs=CRS)
    empty = tmp_path / "empty.gpkg"
    gpd.GeoDataFrame(geometry=[], crs=CRS).to_file(empty)
    with pytest.raises(DataError, match="no rows"):
        read_inventory(empty, crs=CRS)


def test_chinese_headers_in_gb18030(tmp_path: Path) -> None:
    text = "小区名称,经度,纬度,建成年代,建筑面积,户数\n东园一村,121.5,31.23,1985年,\"12,000\",180\n"
    path = write(tmp_path / "zh.csv", text, encoding="gb18030")
    gdf, rep = read_inventory(path, crs=CRS)
    assert gdf["name"].tolist() == ["东园一村"]
    assert gdf["built_year"].tolist() == [1985]
    assert gdf["floor_area_m2"].tolist() == [12_000]
    assert gdf["households"].tolist() == [180]
    assert rep.missing_columns == ["population"]


def test_outside_study_area_reported_not_packaged(demo_layers: OSMLayers, demo_cfg: Config,
                                                  tmp_path: Path) -> None:
    lon, lat = lonlat_of(demo_layers, "东园一村")
    lon2, lat2 = lonlat_of(demo_layers, "东园二村")
    path = write(tmp_path / "o.csv",
                 "id,name,lon,lat,floor_area_m2,households\n"
                 f"a,东园一村,{lon},{lat},60000,800\nb,东园二村,{lon2},{lat2},,\n"
                 "c,远方新村,121.60,31.30,50000,700\nd,某某,,,,\n")
    cfg = with_inventory(demo_cfg, path)
    comm = inventory_of(demo_layers, cfg)
    assert comm["community_id"].tolist() == ["a", "b", "c"]
    assert comm["in_study_area"].tolist() == [True, True, False]
    assert comm["floor_area_estimated"].tolist() == [False, True, False]
    assert comm["households_estimated"].tolist() == [False, True, False]
    assert comm.loc[0, "households"] == 800
    res = pk.renewal_packages(comm, cfg=cfg.packages)
    assert res.report.outside_study_area == ["c"]
    assert res.communities.set_index("community_id")["package_id"].isna().to_dict() == {
        "a": False, "b": False, "c": True}
    assert res.report.skipped_rows == [5]
    assert any("outside the study area" in line for line in res.summary_lines())


def test_geojson_polygons_in_gcj02(demo_layers: OSMLayers, demo_cfg: Config,
                                   tmp_path: Path) -> None:
    poly = polygon_of(demo_layers, "东园三村")
    ll = gpd.GeoSeries([poly], crs=CRS).to_crs("EPSG:4326").iloc[0]
    gcj = shapely.transform(ll, lambda xy: np.column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1])))
    path = tmp_path / "p.geojson"
    gpd.GeoDataFrame({"name": ["东园三村"], "built_year": [1982]}, geometry=[gcj],
                     crs="EPSG:4326").to_file(path)
    comm = inventory_of(demo_layers, with_inventory(demo_cfg, path,
                                                    inventory_coord_system="gcj02"))
    got = comm.geometry.iloc[0]
    assert got.symmetric_difference(poly).area < 0.01 * poly.area
    est = pk.estimate_floor_area(gpd.GeoDataFrame(geometry=[poly], crs=CRS),
                                 demo_layers.buildings, fallback_far=1.5)
    assert comm["floor_area_m2"].iloc[0] == pytest.approx(est["floor_area_m2"].iloc[0], rel=0.02)
    assert comm["floor_area_method"].iloc[0] == "footprints×levels"


# --------------------------------------------------------------------------------------------
# Population raster
# --------------------------------------------------------------------------------------------


def tiny_raster(path: Path, *, value: float = 10.0) -> Path:
    """10 × 10 cells of 100 m in UTM 51N, origin (355000, 3456000), cell (r, c) = value."""
    data = np.full((10, 10), value, dtype="float32")
    data[0, 0] = -9999.0  # nodata
    with rasterio.open(path, "w", driver="GTiff", width=10, height=10, count=1, dtype="float32",
                       crs=CRS, transform=Affine(100, 0, 355_000, 0, -100, 3_456_000),
                       nodata=-9999.0) as dst:
        dst.write(data, 1)
    return path


def test_zonal_sums_are_area_weighted(tmp_path: Path) -> None:
    tif = tiny_raster(tmp_path / "pop.tif")
    polys = gpd.GeoSeries([
        shapely.box(355_100, 3_455_500, 355_300, 3_455_800),  # 2 × 3 whole cells → 60
        shapely.box(355_150, 3_455_550, 355_200, 3_455_600),  # a quarter cell → 2.5
        shapely.box(355_000, 3_455_900, 355_100, 3_456_000),  # the nodata cell → 0
        shapely.box(400_000, 3_400_000, 400_100, 3_400_100),  # outside → 0
    ], crs=CRS)
    sums = zonal_sums(polys, tif)
    assert sums == pytest.approx([60.0, 2.5, 0.0, 0.0])
    # Same answer when the polygons come in another CRS.
    assert zonal_sums(polys.iloc[:2].to_crs("EPSG:4326"), tif) == pytest.approx([60.0, 2.5],
                                                                                rel=1e-3)


def test_inventory_population_from_raster(demo_layers: OSMLayers, demo_cfg: Config,
                                          tmp_path: Path) -> None:
    poly = polygon_of(demo_layers, "东园四村")
    x0, _, _, y1 = poly.bounds
    tif = tmp_path / "pop.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=20, height=20, count=1, dtype="float32",
                       crs=CRS, transform=Affine(50, 0, x0 - 100, 0, -50, y1 + 100)) as dst:
        dst.write(np.full((20, 20), 5.0, dtype="float32"), 1)  # 5 persons per 2500 m²
    cfg = dataclasses.replace(demo_cfg, inputs=dataclasses.replace(
        demo_cfg.inputs, population_raster=tif))
    comm = inventory_of(demo_layers, cfg)
    row = comm.loc[comm["name"] == "东园四村"].iloc[0]
    assert row["population_method"] == "raster"
    assert row["population"] == pytest.approx(round(poly.area / 2500 * 5), abs=1)


def test_cli_reports_a_misspelled_inventory_column_in_one_line(
        tmp_path: Path, demo_cfg: Config, capsys: pytest.CaptureFixture[str]) -> None:
    from urbanunits.cli import main

    from .conftest import DEMO_OSM

    inv = write(tmp_path / "inv.csv", "name,lon,lat,floor_area\n甲,121.5,31.23,1000\n")
    toml = tmp_path / "t.toml"
    toml.write_text(
        'name = "t"\n[study_area]\nbbox = [121.4865, 31.2225, 121.5125, 31.2475]\n'
        f'[inputs]\nosm = "{DEMO_OSM}"\ninventory = "{inv}"\n'
        f'[output]\ndir = "{demo_cfg.output.dir}"\n', encoding="utf-8")
    code = main(["packages", "-q", "--config", str(toml)])
    err = capsys.readouterr().err
    assert code == 2
    last = [ln for ln in err.splitlines() if ln.strip()][-1]
    assert last.startswith("error: ") and "'floor_area'" in last and "floor_area_m2" in last
    assert "Traceback" not in err
    assert not (demo_cfg.output.dir / "t").exists()  # the run folder (gpkg, maps)


# --------------------------------------------------------------------------------------------
# Construction years, the cut-off, status and overrides
# --------------------------------------------------------------------------------------------


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Records of the ``urbanunits`` loggers, also after a CLI test turned propagation off."""
    lg = logging.getLogger("urbanunits")
    old = lg.propagate
    lg.addHandler(caplog.handler)
    lg.propagate = False  # no second copy through the root logger
    caplog.set_level(logging.INFO, logger="urbanunits")
    yield caplog
    lg.removeHandler(caplog.handler)
    lg.propagate = old


@pytest.mark.parametrize(("text", "year"), [
    ("1985", 1985), ("1985年", 1985), ("1985-06-01", 1985), ("~1985", 1985),
    ("80年代", 1989), ("上世纪80年代", 1989), ("八十年代", 1989), ("1980s", 1989),
    ("1980's", 1989), ("1980年代", 1989), ("90年代初", 1999),
    ("1980-1985", 1985), ("1980—1985", 1985), ("1980至1985年", 1985), ("1980-85", 1985),
    ("1980..1985", 1985), ("1990年以前", 1989), ("before 1990", 1989), ("1990年前后", 1990),
    ("1985.0", 1985),
    ("１９８５年", 1985),  # full-width digits
])
def test_year_formats_give_the_latest_year_they_allow(tmp_path: Path, text: str,
                                                      year: int) -> None:
    path = write(tmp_path / "y.csv", f"name,lon,lat,建成年代\n甲,121.5,31.23,\"{text}\"\n")
    gdf, _ = read_inventory(path, crs=CRS)
    assert gdf["built_year"].tolist() == [year]
    assert gdf["built_year_text"].tolist() == [text]  # the cell as written, for checking


def inventory_rows(layers: OSMLayers, rows: list[tuple[str, str, str]],
                   header: str = "name,lon,lat,built_year") -> str:
    """CSV text: one row per (compound to locate, name to write, extra cells)."""
    out = [header]
    for where, name, extra in rows:
        lon, lat = lonlat_of(layers, where)
        out.append(f"{name},{lon:.7f},{lat:.7f},{extra}")
    return "\n".join(out) + "\n"


def test_cut_off_is_inclusive_and_later_rows_are_kept_with_a_warning(
        demo_layers: OSMLayers, demo_cfg: Config, tmp_path: Path,
        logs: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "c.csv", inventory_rows(demo_layers, [
        ("东园一村", "甲", "2000"), ("东园二村", "乙", "2001"), ("东园三村", "丙", "1990s"),
        ("东园四村", "丁", "")]))
    comm = inventory_of(demo_layers, with_inventory(demo_cfg, path))
    # every row is a community, old because the bureau listed it
    assert comm["name"].tolist() == ["甲", "乙", "丙", "丁"]
    assert comm["is_old"].tolist() == [True, True, True, True]
    assert comm["old_rule"].tolist() == ["inventory"] * 4
    assert comm["built_year"].tolist()[:3] == [2000, 2001, 1999]
    assert not comm["old_by_name_only"].any()
    late = [r.getMessage() for r in logs.records if "after packages.built_by_year" in
            r.getMessage()]
    assert len(late) == 1
    assert "1 row(s)" in late[0] and "乙 (line 3, '2001')" in late[0] and "甲" not in late[0]
    # the rows are packaged: none is dropped
    res = pk.renewal_packages(comm, cfg=with_inventory(demo_cfg, path).packages)
    assert res.communities["package_id"].notna().all()


def test_status_column_is_respected(demo_layers: OSMLayers, demo_cfg: Config, tmp_path: Path,
                                    logs: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "s.csv", inventory_rows(demo_layers, [
        ("东园一村", "甲", "1985,老旧"), ("东园二村", "乙", "2005,非老旧"),
        ("东园三村", "丙", "2005,是"), ("东园四村", "丁", "1985,"), ("崂山五村", "戊", "1990,new")],
        header="name,lon,lat,建成年份,是否老旧小区"))
    comm = inventory_of(demo_layers, with_inventory(demo_cfg, path))
    assert comm["is_old"].tolist() == [True, False, True, True, False]
    assert comm["old_rule"].tolist() == ["inventory:status", "inventory:status",
                                         "inventory:status", "inventory", "inventory:status"]
    text = logs.text
    assert "丙 (line 4, '2005')" in text and "its status column says old" in text
    assert "戊 (line 6, '1990')" in text and "kept as new" in text
    bad = write(tmp_path / "b.csv", "name,lon,lat,status\n甲,121.5,31.23,maybe\n")
    with pytest.raises(DataError, match=r"column 'status'.*row 2 has 'maybe'.*old or new"):
        read_inventory(bad, crs=CRS)


def override_file(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    return write(tmp_path / "overrides.csv", text, encoding=encoding)


def with_overrides(cfg: Config, path: Path | None) -> Config:
    return dataclasses.replace(cfg, inputs=dataclasses.replace(cfg.inputs,
                                                               community_overrides=path))


def test_overrides_by_name_and_by_id_win_over_every_rule(
        demo_layers: OSMLayers, demo_cfg: Config, tmp_path: Path,
        logs: pytest.LogCaptureFixture) -> None:
    base = inventory_of(demo_layers, demo_cfg).set_index("name")
    # three compounds the rules class differently: by name old, by name new, undated
    old_name = base.index[base["old_rule"].str.startswith("name_old:")][0]
    new_name = base.index[base["old_rule"].str.startswith("name_new:")][0]
    none_name = base.index[base["old_rule"] == "none"][0]
    by_osm = base.index[base["old_rule"].str.startswith("name_old:")][1]
    cid = base.loc[new_name, "community_id"]
    osm_id = int(base.loc[by_osm, "osm_id"])
    text = ("小区名称,community_id,osm_id,状态\n"
            f"{old_name},,,非老旧\n{none_name},,,老旧\n,{cid},,old\n,,{osm_id},new\n"
            "不存在的小区,,,old\n,C999,,new\n")
    path = override_file(tmp_path, text, encoding="gb18030")
    logs.clear()
    comm = inventory_of(demo_layers, with_overrides(demo_cfg, path)).set_index("name")
    changed = {old_name: False, none_name: True, new_name: True, by_osm: False}
    for name, want in changed.items():
        assert bool(comm.loc[name, "is_old"]) is want, name
        assert comm.loc[name, "old_rule"] == "override"
        assert not comm.loc[name, "old_by_name_only"]
    rest = comm.drop(index=list(changed))
    assert (rest["is_old"] == base.drop(index=list(changed))["is_old"]).all()
    assert not (rest["old_rule"] == "override").any()
    unmatched = [r.getMessage() for r in logs.records if "match no community" in r.getMessage()]
    assert len(unmatched) == 1
    assert "2 override row(s)" in unmatched[0]
    assert "line 6 (name 不存在的小区)" in unmatched[0] and "line 7 (community_id C999)" in \
        unmatched[0]


def test_override_file_errors_name_file_row_and_fix(tmp_path: Path, demo_cfg: Config,
                                                    demo_layers: OSMLayers) -> None:
    from urbanunits.errors import UserError
    from urbanunits.sources.inventory import read_overrides

    path = override_file(tmp_path, "name,status\n甲,old\n乙,maybe\n")
    with pytest.raises(UserError) as err:
        read_overrides(path)
    assert err.value.where == f"{path}: column 'status'"
    assert "row 3 has 'maybe'" in err.value.what and "老旧/非老旧" in err.value.fix
    with pytest.raises(DataError, match=r"column 'status'.*is missing"):
        read_overrides(override_file(tmp_path, "name,old\n甲,yes\n"))
    with pytest.raises(InputFileError, match="override file not found"):
        read_overrides(tmp_path / "nope.csv")
    with pytest.raises(InputFileError, match="CSV or XLSX"):
        read_overrides(write(tmp_path / "o.json", "{}"))
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"not a zip")
    with pytest.raises(InputFileError, match="Excel workbook"):
        read_overrides(broken)
    name = inventory_of(demo_layers, demo_cfg)["name"].iloc[0]
    clash = override_file(tmp_path, f"name,status\n{name},old\n{name},new\n")
    with pytest.raises(DataError) as err:
        inventory_of(demo_layers, with_overrides(demo_cfg, clash))
    assert err.value.where == f"{clash}: lines 2 and 3"
    assert f"({name}) different statuses" in err.value.what


def test_apply_overrides_on_a_synthetic_frame(tmp_path: Path,
                                              logs: pytest.LogCaptureFixture) -> None:
    from urbanunits.sources.inventory import read_overrides

    comm = pd.DataFrame({
        "community_id": ["C001", "C002", "C003", "C004"],
        "name": ["东园一村（东区）", "同名小区", "同名小区", "某花园"],
        "osm_id": pd.array([11, 12, 13, 14], dtype="Int64"),
        "is_old": [False, True, True, True], "old_rule": ["none", "name_old:x", "inventory",
                                                          "inventory"],
        "old_by_name_only": [False, True, False, False]})
    ov = pd.DataFrame({"row": [2, 3, 4], "community_id": [None, None, None],
                       "osm_id": pd.array([pd.NA, pd.NA, 14], dtype="Int64"),
                       "name": ["东园一村 (东区)", "同名小区", None],
                       "is_old": [True, False, False]})
    out = pk.apply_overrides(comm, ov, source="o.csv")
    assert out["is_old"].tolist() == [True, False, False, False]
    assert out["old_rule"].tolist() == ["override"] * 4
    assert not out["old_by_name_only"].any()
    assert comm["old_rule"].tolist()[0] == "none"  # the input is not mutated
    assert "同名小区 ×2 (line 3)" in logs.text
    # the same overrides written as a GB18030 file (osm ids as OSM URLs write them)
    path = override_file(tmp_path, "名称,osm_id,状态\n东园一村 (东区),,是\n同名小区,,否\n"
                         ",way/14,非老旧\n", encoding="gb18030")
    got = read_overrides(path)
    for col in ov.columns:
        assert got[col].tolist() == ov[col].tolist(), col


def test_cli_bad_override_status_exits_2_in_one_line(
        tmp_path: Path, demo_cfg: Config, capsys: pytest.CaptureFixture[str]) -> None:
    from urbanunits.cli import main

    from .conftest import DEMO_OSM

    ov = override_file(tmp_path, "name,status\n东园一村,maybe\n")
    toml = tmp_path / "t.toml"
    toml.write_text(
        'name = "t"\n[study_area]\nbbox = [121.4865, 31.2225, 121.5125, 31.2475]\n'
        f'[inputs]\nosm = "{DEMO_OSM}"\ncommunity_overrides = "{ov}"\n'
        f'[output]\ndir = "{tmp_path / "out"}"\n', encoding="utf-8")
    code = main(["packages", "-q", "--config", str(toml)])
    err = capsys.readouterr().err
    assert code == 2
    last = [ln for ln in err.splitlines() if ln.strip()][-1]
    assert last.startswith(f"error: {ov}: column 'status'") and "'maybe'" in last
    assert "Traceback" not in err and not (tmp_path / "out" / "t").exists()


# --------------------------------------------------------------------------------------------
# Units in headers and values; GBK, XLSX
# --------------------------------------------------------------------------------------------


def test_headers_with_units_are_read_exactly(tmp_path: Path) -> None:
    text = ("小区名称,经度,纬度,建筑面积（万㎡）,户数（户）,人口(万人)\n"
            "甲,121.5,31.23,1.2,180,0.05\n"
            "乙,121.5,31.23,\"3,456㎡\",\"1,234\",\n"  # a value with its own unit wins
            "丙,121.5,31.23,0.8万,2万户,\n")
    gdf, rep = read_inventory(write(tmp_path / "u.csv", text), crs=CRS)
    assert gdf["floor_area_m2"].tolist() == [12_000, 3_456, 8_000]
    assert gdf["households"].tolist() == [180, 1_234, 20_000]
    assert gdf["population"].tolist()[0] == 500
    assert np.isnan(gdf["population"].tolist()[1])
    assert rep.missing_columns == ["built_year"]
    more = ("name,lon,lat,建筑面积(㎡),households [户],population/人\n甲,121.5,31.23,\"12,000\",5,9\n")
    gdf2, _ = read_inventory(write(tmp_path / "u2.csv", more), crs=CRS)
    assert gdf2[["floor_area_m2", "households", "population"]].iloc[0].tolist() == [12_000, 5, 9]


@pytest.mark.parametrize(("header", "unit"), [("建筑面积(亩)", "亩"), ("户数（套）", "套"),
                                              ("建筑面积（户）", "户")])
def test_known_field_with_an_unknown_unit_is_an_error(tmp_path: Path, header: str,
                                                      unit: str) -> None:
    path = write(tmp_path / "h.csv", f"name,lon,lat,{header}\n甲,121.5,31.23,1\n")
    with pytest.raises(DataError) as err:
        read_inventory(path, crs=CRS)
    assert err.value.where == f"{path}: column {header!r}"
    assert f"unit {unit!r}" in err.value.what


ROWS = [["甲", 121.5012345, 31.2301, "1985年", 12000, 180, None, "A1", "老旧"],
        ["乙", 121.502, 31.2302, "80年代", None, 95, 260, "A2", ""],
        ["丙", 121.503, 31.2303, 1999, 5600.5, None, None, "A3", "否"]]
HEADER = ["小区名称", "经度", "纬度", "建成年代", "建筑面积(㎡)", "户数", "人口", "编号", "是否老旧小区"]


def _csv_text(rows: list[list[object]]) -> str:
    return "\n".join(",".join("" if v is None else str(v) for v in r)
                     for r in [HEADER, *rows]) + "\n"


def test_gbk_csv_and_xlsx_read_the_same_as_utf8_csv(tmp_path: Path) -> None:
    import openpyxl

    utf8, _ = read_inventory(write(tmp_path / "a.csv", _csv_text(ROWS)), crs=CRS)
    gbk, _ = read_inventory(write(tmp_path / "b.csv", _csv_text(ROWS), encoding="gbk"), crs=CRS)
    tsv, _ = read_inventory(write(tmp_path / "t.txt", _csv_text(ROWS).replace(",", "\t"),
                                  encoding="utf-8"), crs=CRS)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "清单"
    ws.append(["浦东新区老旧小区改造清单"])  # a title row above the header
    ws.append(HEADER)
    for r in ROWS:
        ws.append(r)  # numbers as numbers, as Excel keeps them
    ws.append([None] * len(HEADER))  # a formatted blank row at the end
    xlsx_path = tmp_path / "c.xlsx"
    wb.save(xlsx_path)
    xlsx, rep = read_inventory(xlsx_path, crs=CRS)
    cols = ["inv_id", "name", "built_year", "built_year_text", "status", "floor_area_m2",
            "households", "population"]
    for other in (gbk, tsv, xlsx):
        pd.testing.assert_frame_equal(other[cols], utf8[cols])
        assert other.geometry.geom_equals_exact(utf8.geometry, tolerance=1e-6).all()
    assert utf8["floor_area_m2"].tolist()[:1] == [12_000]
    assert utf8["status"].tolist() == [True, pd.NA, False]
    assert utf8["row"].tolist() == [2, 3, 4]
    assert xlsx["row"].tolist() == [3, 4, 5]  # Excel rows: title 1, header 2
    assert rep.n_rows == 3


def test_xlsx_sheet_by_name_and_unknown_sheet(tmp_path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.append(["说明"])
    ws = wb.create_sheet("清单")
    ws.append(["name", "lon", "lat"])
    ws.append(["甲", 121.5, 31.23])
    path = tmp_path / "s.xlsx"
    wb.save(path)
    gdf, _ = read_inventory(path, crs=CRS, sheet="清单")
    assert gdf["name"].tolist() == ["甲"]
    with pytest.raises(DataError, match=r"sheet 'list'.*sheets: Sheet, 清单"):
        read_inventory(path, crs=CRS, sheet="list")
    with pytest.raises(DataError, match=r"column 小区名称 \(name\).*is missing"):
        read_inventory(path, crs=CRS)  # the first sheet holds no table
    old = tmp_path / "old.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(InputFileError, match=r"\.xls.*save it as \.xlsx"):
        read_inventory(old, crs=CRS)


# --------------------------------------------------------------------------------------------
# Rules without an inventory
# --------------------------------------------------------------------------------------------


def test_name_only_decisions_are_flagged_and_counted(demo_layers: OSMLayers, demo_cfg: Config,
                                                     logs: pytest.LogCaptureFixture) -> None:
    comm = inventory_of(demo_layers, demo_cfg)
    by_name = comm["old_rule"].str.startswith("name_old:")
    assert comm["old_by_name_only"].tolist() == by_name.tolist()
    assert (comm.loc[by_name, "is_old"]).all()
    msg = [r.getMessage() for r in logs.records if "by their name only" in r.getMessage()]
    assert msg and msg[0].startswith(f"{int(by_name.sum())} of {int(comm['is_old'].sum())} ")
    lines = pk.renewal_packages(comm, cfg=demo_cfg.packages).summary_lines()
    assert lines[1] == f"  old by: name_old {int(by_name.sum())}"


def test_no_dates_and_no_name_rule_asks_for_an_inventory(
        demo_layers: OSMLayers, demo_cfg: Config, logs: pytest.LogCaptureFixture) -> None:
    # as outside China: no construction years, and no name rule fits the region's names
    cfg = dataclasses.replace(demo_cfg, packages=dataclasses.replace(
        demo_cfg.packages, old_name_patterns=[], new_name_patterns=[]))
    comm = inventory_of(demo_layers, cfg)
    assert comm["built_year"].isna().all()  # the demo extract has no start_date on communities
    assert not comm["is_old"].any() and (comm["old_rule"] == "none").all()
    msg = [r.getMessage() for r in logs.records if "is unknown" in r.getMessage()]
    assert len(msg) == 1
    assert f"none of the {len(comm)} communities" in msg[0]
    assert "inputs.inventory" in msg[0] and "packages.old_name_patterns" in msg[0]
    head = pk.renewal_packages(comm, cfg=cfg.packages).summary_lines()[0]
    assert head == f"communities: {len(comm)} (0 old, 0 new, {len(comm)} of unknown age counted " \
        "as not old)"


# --------------------------------------------------------------------------------------------
# Undeclared web-map datums and swapped columns
# --------------------------------------------------------------------------------------------


def test_undeclared_gcj02_inventory_is_refused(tmp_path: Path, demo_layers: OSMLayers,
                                               demo_cfg: Config) -> None:
    """An inventory copied from Gaode (GCJ-02) with no datum declared: one error naming the key;
    declared, it reads; the true WGS84 positions pass the check."""
    from urbanunits.sources.facilities import street_lines

    from .test_facilities import _on_streets

    streets = street_lines(demo_layers.roads)
    assert streets is not None
    area = demo_layers.study_area.geometry.iloc[0]
    inner = streets[streets.within(area.buffer(-300))]
    lon, lat = _on_streets(inner, 40, seed=11)
    glon, glat = wgs84_to_gcj02(lon, lat)
    rows = "\n".join(f"小区{i},{x:.7f},{y:.7f},1985" for i, (x, y) in enumerate(
        zip(glon, glat, strict=True)))
    path = write(tmp_path / "gaode.csv", "name,lon,lat,built_year\n" + rows + "\n")

    def cfg_with(system: str) -> Config:
        return dataclasses.replace(demo_cfg, inputs=dataclasses.replace(
            demo_cfg.inputs, inventory=path, inventory_coord_system=system))

    with pytest.raises(DataError) as exc:
        inventory_of(demo_layers, cfg_with(""))
    assert exc.value.where == str(path)
    assert 'inputs.inventory_coord_system = "gcj02"' in exc.value.fix
    got = inventory_of(demo_layers, cfg_with("gcj02"))
    assert len(got) == 40
    true = write(tmp_path / "true.csv", "name,lon,lat,built_year\n" + "\n".join(
        f"小区{i},{x:.7f},{y:.7f},1985" for i, (x, y) in enumerate(zip(lon, lat, strict=True)))
        + "\n")
    cfg = dataclasses.replace(demo_cfg, inputs=dataclasses.replace(demo_cfg.inputs,
                                                                    inventory=true))
    assert len(inventory_of(demo_layers, cfg)) == 40


def test_partly_swapped_inventory_rows_get_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path / "s.csv", "name,lon,lat\n甲,121.50,31.23\n乙,31.24,121.51\n")
    with pytest.raises(DataError, match=r"lon/lat swapped in 1 row\(s\)\?"):
        read_inventory(path, crs=CRS)


def test_inventory_is_read_only_for_the_stages_that_use_it(demo_layers: OSMLayers,
                                                            demo_cfg: Config,
                                                            tmp_path: Path) -> None:
    """A missing inventory, overrides file or raster stops the packages stage, not `make units`."""
    for key in ("inventory", "community_overrides", "population_raster"):
        cfg = with_inventory(demo_cfg, tmp_path / "inv.csv") if key == "inventory" else \
            dataclasses.replace(demo_cfg, inputs=dataclasses.replace(
                demo_cfg.inputs, **{key: tmp_path / "missing.tif"}))
        assert load_inputs(cfg).communities is None, key
        with pytest.raises(InputFileError, match="not found"):
            load_communities(cfg, demo_layers)
    # asked for, they are read with the rest
    got = load_inputs(demo_cfg, communities=True).communities
    assert got is not None and got.inventory is None and got.overrides is None


def test_half_a_building_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "b.csv", "小区名称,经度,纬度,楼栋数\n甲,121.50,31.23,12\n"
                                     "乙,121.501,31.231,12.5栋\n")
    with pytest.raises(DataError, match=r"row 3 has '12.5栋', not a whole number of buildings"):
        read_inventory(path, crs=CRS)

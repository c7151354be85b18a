"""User inventories (CSV lon/lat in WGS84/GCJ-02/BD-09, GeoJSON polygons) and population rasters."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine

from urbanunits import packages as pk
from urbanunits.config import Config
from urbanunits.crs import gcj02_to_bd09, wgs84_to_gcj02
from urbanunits.errors import CRSError, DataError, InputFileError
from urbanunits.sources.inventory import read_inventory
from urbanunits.sources.osm import OSMLayers
from urbanunits.sources.population import zonal_sums

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
    comm = pk.build_inventory(demo_layers, with_inventory(demo_cfg, path,
                                                          inventory_coord_system="gcj02"))
    assert comm["geometry"].geom_type.eq("Point").all()
    for n in names:
        pt = comm.loc[comm["name"] == n].geometry.iloc[0]
        assert polygon_of(demo_layers, n).buffer(1.0).contains(pt), n
    # Declared wrongly as WGS84, the same file lands hundreds of metres away.
    wrong = pk.build_inventory(demo_layers, with_inventory(demo_cfg, path))
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
    assert got["is_old"].all() and (got["old_rule"] == "built_year").all()


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
    ("title,lon,lat", "name", "is missing"),
    ("name,lon", "lat", "is missing"),
])
def test_bad_columns_name_the_column_and_list_expected(tmp_path: Path, header: str, column: str,
                                                       hint: str) -> None:
    n = header.count(",") + 1
    path = write(tmp_path / "x.csv", header + "\n" + ",".join(["1"] * n) + "\n")
    with pytest.raises(DataError) as err:
        read_inventory(path, crs=CRS)
    msg = str(err.value)
    assert f"'{column}'" in msg and hint in msg
    assert "expected columns: name, lon, lat, built_year, floor_area_m2, households" in msg


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
    path = write(tmp_path / "v.csv", "name,lon,lat,floor_area_m2\n甲,121.5,31.23,12万\n")
    with pytest.raises(DataError, match=r"floor_area_m2.*not numbers"):
        read_inventory(path, crs=CRS)
    path2 = write(tmp_path / "y.csv", "name,lon,lat,built_year\n甲,121.5,31.23,八十年代\n")
    with pytest.raises(DataError, match="built_year"):
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
                 "c,远方新村,121.60,31.30,50000,700\n,,,\n")
    cfg = with_inventory(demo_cfg, path)
    comm = pk.build_inventory(demo_layers, cfg)
    assert comm["community_id"].tolist() == ["a", "b", "c"]
    assert comm["in_study_area"].tolist() == [True, True, False]
    assert comm["floor_area_estimated"].tolist() == [False, True, False]
    assert comm["households_estimated"].tolist() == [False, True, False]
    assert comm.loc[0, "households"] == 800
    res = pk.renewal_packages(comm, cfg)
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
    comm = pk.build_inventory(demo_layers, with_inventory(demo_cfg, path,
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
    comm = pk.build_inventory(demo_layers, cfg)
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

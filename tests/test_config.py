"""Config loading: defaults, path resolution and one clear error per mistake."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from urbanunits.config import load_config
from urbanunits.errors import ConfigError, CRSError, InputFileError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "configs" / "x.toml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


MINIMAL = 'name = "x"\n[study_area]\nbbox = [121.49, 31.23, 121.50, 31.24]\n'


def test_shipped_configs_load() -> None:
    demo = load_config(ROOT / "configs" / "lujiazui.toml")
    assert demo.inputs.osm == ROOT / "data" / "raw" / "lujiazui.osm"
    assert demo.gpkg_path == ROOT / "data" / "processed" / "lujiazui" / "lujiazui.gpkg"
    assert set(demo.lifecircle.categories) == {"elderly_care", "childcare", "clinic", "commerce"}
    assert demo.lifecircle.categories["childcare"].subtypes["kindergarten"].distance_m == 300
    nb = load_config(ROOT / "configs" / "ningbo.toml")
    assert nb.inputs.osm.name == "ningbo.osm.pbf"
    for cat in nb.lifecircle.categories.values():
        for f in cat.files:
            assert f.path.is_file(), f.path


def test_relative_paths_resolve_against_project_root(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL + '[inputs]\nosm = "data/raw/a.osm"\n'))
    assert cfg.inputs.osm == tmp_path / "data" / "raw" / "a.osm"
    assert cfg.output.dir == tmp_path / "data" / "processed"  # a default, resolved too


@pytest.mark.parametrize(("text", "key"), [
    (MINIMAL + "[units]\nmin_area_m2 = \"big\"\n", "units.min_area_m2"),
    (MINIMAL + "[units]\nmin_aera_m2 = 5.0\n", "units.min_aera_m2"),
    (MINIMAL + "colour = 1\n", "colour"),
    (MINIMAL + "[units]\nmin_area_m2 = 5e6\n", "units.min_area_m2"),
    (MINIMAL + "[packages]\nhard_barriers = [\"lava\"]\n", "packages.hard_barriers"),
    ('name = "x"\n[study_area]\nbbox = [121.5, 31.2]\n', "study_area.bbox"),
    ('name = "x"\n[study_area]\nbbox = [200, 31.2, 201, 31.3]\n', "study_area.bbox"),
    ('name = "x"\n[study_area]\nbbox = [nan, 31.2, 121.5, 31.3]\n', "study_area.bbox"),
    ('name = "x"\n[study_area]\nbbox = [121.4, 31.2, inf, 31.3]\n', "study_area.bbox"),
    ("[study_area]\nbbox = [121.49, 31.23, 121.50, 31.24]\n", "name"),
    (MINIMAL + "[lifecircle.categories.x]\nlabel = \"x\"\n", "lifecircle.categories.x.subtypes"),
    (MINIMAL + "[units]\nsplit_highways = \"tertiary\"\n", "units.split_highways"),
    (MINIMAL + "[osm]\ncache = 1\n", "osm.cache"),
    (MINIMAL + "[units]\nmin_historic_share = 0.0\n", "units.min_historic_share"),
    (MINIMAL + "[units]\nmin_old_floor_share = 1.5\n", "units.min_old_floor_share"),
])
def test_bad_keys_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    msg = info.value.one_line()
    assert key in msg
    assert "\n" not in msg


def test_crs_must_be_metric(tmp_path: Path) -> None:
    with pytest.raises(CRSError, match="not a projected CRS"):
        load_config(write(tmp_path, MINIMAL + 'crs = "EPSG:4326"\n'))
    with pytest.raises(CRSError, match="unknown CRS"):
        load_config(write(tmp_path, MINIMAL + 'crs = "EPSG:999999"\n'))


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "name = \n"))
    with pytest.raises(InputFileError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_digest_tracks_content(tmp_path: Path) -> None:
    a = load_config(write(tmp_path, MINIMAL))
    b = load_config(write(tmp_path, MINIMAL + "[units]\nmin_area_m2 = 1234.0\n"))
    assert a.digest("osm") == b.digest("osm")
    assert a.digest("units") != b.digest("units")


def test_every_config_key_is_documented() -> None:
    """Each key the code reads appears, in backticks, in configs/README.md."""
    import dataclasses

    from urbanunits import config as c

    doc = (ROOT / "configs" / "README.md").read_text(encoding="utf-8")
    missing = []
    for cls in (c.Config, c.StudyArea, c.Inputs, c.OSMConfig, c.FetchConfig, c.UnitsConfig,
                c.PackagesConfig, c.LifeCircleConfig, c.Output, c.Category, c.Subtype,
                c.FacilityFile, c.ProgrammeConfig, c.YearCap, c.SitesConfig,
                c.SiteSubtype):
        for f in dataclasses.fields(cls):
            if f.name == "source":
                continue
            forms = (f"`{f.name}`", f"`[{f.name}]`", f"{f.name}.", f".{f.name}`")
            if not any(form in doc for form in forms):
                missing.append(f"{cls.__name__}.{f.name}")
    assert not missing, missing


def test_categories_overlay_the_defaults(tmp_path: Path) -> None:
    text = MINIMAL + '''
[[lifecircle.categories.clinic.files]]
path = "data/raw/clinics.csv"
subtype = "health_station"
[lifecircle.categories.childcare.subtypes.kindergarten]
distance_m = 500.0
[lifecircle.categories.commerce]
enabled = false
[lifecircle.categories.clinic.subtypes.health_centre]
enabled = false
[lifecircle.categories.parks]
label = "公园 Parks"
[lifecircle.categories.parks.subtypes.park]
distance_m = 500.0
'''
    cfg = load_config(write(tmp_path, text))
    cats = cfg.lifecircle.categories
    assert set(cats) == {"elderly_care", "childcare", "clinic", "parks"}
    assert cats["clinic"].files[0].path == tmp_path / "data" / "raw" / "clinics.csv"
    assert set(cats["clinic"].subtypes) == {"health_station", "outpatient", "hospital"}
    assert cats["clinic"].label == "医疗卫生 Clinics"  # untouched keys keep their defaults
    kg = cats["childcare"].subtypes["kindergarten"]
    assert kg.distance_m == 500.0 and "幼儿园" in kg.name_patterns
    assert cats["elderly_care"] == load_config(write(tmp_path, MINIMAL)).lifecircle.categories[
        "elderly_care"]


def test_category_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"lifecircle.categories.parks.subtypes"):
        load_config(write(tmp_path, MINIMAL + '[lifecircle.categories.parks]\nlabel = "x"\n'))
    with pytest.raises(ConfigError, match=r"childcare.subtypes.kindergarten.distance_m"):
        load_config(write(tmp_path, MINIMAL + "[lifecircle.categories.childcare.subtypes."
                          "kindergarten]\ndistance_m = \"far\"\n"))
    with pytest.raises(ConfigError, match=r"childcare.colour"):
        load_config(write(tmp_path, MINIMAL + "[lifecircle.categories.childcare]\ncolour = 1\n"))


SUB = "lifecircle.categories.childcare.subtypes.kindergarten"


@pytest.mark.parametrize(("text", "key", "what"), [
    ("[osm]\ndefault_building_levels = -3", "osm.default_building_levels", "out of range"),
    ("[osm]\ngraph_margin_m = -500", "osm.graph_margin_m", "out of range"),
    ("[osm]\ngraph_margin_m = inf", "osm.graph_margin_m", "not a finite number"),
    ("[units]\nmin_water_share = 5", "units.min_water_share", "out of range"),
    ("[units]\nmin_water_share = 1.0000001", "units.min_water_share", "out of range"),
    ("[lifecircle]\nwalk_speed_m_s = nan", "lifecircle.walk_speed_m_s", "not a finite number"),
    ("[lifecircle]\nwalk_speed_m_s = 0.0", "lifecircle.walk_speed_m_s", "out of range"),
    ("[output]\nmap_dpi = 0", "output.map_dpi", "out of range"),
    ("[output]\nmap_dpi = 100000", "output.map_dpi", "out of range"),
    ("[fetch]\nread_timeout_s = inf", "fetch.read_timeout_s", "not a finite number"),
    ("[fetch]\nbackoff_s = -nan", "fetch.backoff_s", "not a finite number"),
    ("[packages]\npersons_per_household = 0", "packages.persons_per_household",
     "out of range"),
    (f"[{SUB}]\ndistance_m = -1.0", f"{SUB}.distance_m", "out of range"),
    (f"[{SUB}]\nlevel_minutes = 0", f"{SUB}.level_minutes", "out of range"),
    ("[lifecircle.categories.parks]\nlabel = \"p\"\n[lifecircle.categories.parks.subtypes.park]"
     "\ndistance_m = nan", "lifecircle.categories.parks.subtypes.park.distance_m",
     "not a finite number"),
])
def test_nonsense_values_are_refused_at_load(tmp_path: Path, text: str, key: str,
                                             what: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, MINIMAL + text + "\n"))
    msg = info.value.one_line()
    assert f"x.toml: {key}: " in msg and what in msg, msg
    assert "\n" not in msg
    if what == "out of range":  # the fix quotes the key's range from the table
        from urbanunits.config import RANGES

        pattern = key.replace("childcare", "*").replace("kindergarten", "*")
        assert str(RANGES[pattern]) in info.value.fix


def test_range_ends_follow_the_table(tmp_path: Path) -> None:
    """Closed ends load, open ends and one step beyond are refused, for a few real keys."""
    from urbanunits.config import Range

    assert load_config(write(tmp_path, MINIMAL + "[units]\nmin_water_share = 1.0\n"
                             )).units.min_water_share == 1.0
    assert load_config(write(tmp_path, MINIMAL + "[units]\nmin_water_share = 0.0\n"
                             )).units.min_water_share == 0.0
    assert load_config(write(tmp_path, MINIMAL + "[output]\nmap_dpi = 600\n")).output.map_dpi
    assert load_config(write(tmp_path, MINIMAL + "[osm]\ngraph_margin_m = 0.0\n"))
    r = Range(0, 5, lo_open=True)
    assert 0 not in r and 1e-9 in r and 5 in r and 5.0001 not in r
    assert float("nan") not in Range(0, 1) and True not in Range(0, 1)
    assert str(r) == "(0, 5]" and str(Range(0.1, 86_400)) == "[0.1, 86_400]"


def test_every_numeric_key_has_a_range_and_the_readme_states_it() -> None:
    """Add a numeric key without a line in RANGES (or in the README table) and this fails."""
    from urbanunits.config import RANGES, numeric_keys

    keys = numeric_keys()
    # The schema walk reaches optional, nested and per-category keys.
    assert {"fetch.read_timeout_s", "output.map_dpi",
            "lifecircle.categories.*.subtypes.*.distance_m"} <= set(keys)
    missing = sorted(set(keys) - set(RANGES))
    assert not missing, f"numeric keys without a range in urbanunits.config.RANGES: {missing}"
    stale = sorted(set(RANGES) - set(keys))
    assert not stale, f"RANGES entries that are no config key: {stale}"
    doc = (ROOT / "configs" / "README.md").read_text(encoding="utf-8")
    ranges_doc = doc.partition("## Allowed ranges")[2]
    undocumented = [k for k in keys if f"| `{k}` | {RANGES[k]} |" not in ranges_doc]
    assert not undocumented, f"configs/README.md, Allowed ranges, lacks or misstates {undocumented}"


@dataclasses.dataclass(frozen=True)
class _Inner:
    n_nodes: int = 20
    label: str = ""


@dataclasses.dataclass(frozen=True)
class _Outer:
    share: float | None = None
    flag: bool = True
    inner: _Inner = dataclasses.field(default_factory=_Inner)
    by_key: dict[str, _Inner] = dataclasses.field(default_factory=dict)
    items: list[_Inner] = dataclasses.field(default_factory=list)


def test_numeric_keys_finds_a_new_field() -> None:
    """A new numeric field anywhere in the schema shows up, so it cannot miss a range."""
    from urbanunits.config import numeric_keys

    assert numeric_keys(_Outer) == ["share", "inner.n_nodes", "by_key.*.n_nodes",
                                    "items[*].n_nodes"]


def test_bom_is_accepted_and_other_encodings_are_named(tmp_path: Path) -> None:
    text = 'title = "陆家嘴"\n' + MINIMAL
    p = write(tmp_path, "")
    p.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # Windows Notepad's UTF-8
    assert load_config(p).title == "陆家嘴"
    for encoding in ("gbk", "utf-16"):
        p.write_bytes(text.encode(encoding))
        with pytest.raises(ConfigError, match="save the file as UTF-8") as info:
            load_config(p)
        assert "syntax" not in info.value.one_line()


def test_crs_advice_follows_the_study_area(tmp_path: Path) -> None:
    helsinki = 'name = "x"\n[study_area]\nbbox = [24.85, 60.14, 25.05, 60.25]\n'
    with pytest.raises(CRSError, match="misstates areas") as info:  # default UTM 51N
        load_config(write(tmp_path, helsinki))
    assert "EPSG:32635" in info.value.fix and "32651" not in info.value.fix
    assert load_config(write(tmp_path, helsinki + 'crs = "EPSG:32635"\n'))
    nanjing = 'name = "x"\n[study_area]\nbbox = [118.70, 31.98, 118.90, 32.12]\n'
    with pytest.raises(CRSError, match="not a projected CRS") as info:
        load_config(write(tmp_path, nanjing + 'crs = "EPSG:4490"\n'))
    assert "EPSG:32650" in info.value.fix and "EPSG:4549" in info.value.fix
    assert "CM 120E" in info.value.fix and "32651" not in info.value.fix
    for ok in ("EPSG:32650", "EPSG:4549", "EPSG:4548"):  # 4548 (CM 117E) is 1.8° off: < 0.1 %
        load_config(write(tmp_path, nanjing + f'crs = "{ok}"\n'))


@pytest.mark.parametrize("bbox", ["[-180, -90, 180, 90]", "[73.5, 18.0, 135.0, 53.5]",
                                  "[20.5, 59.8, 31.6, 70.1]"])  # world, China, Finland
def test_world_or_country_is_too_large_not_a_crs_problem(tmp_path: Path, bbox: str) -> None:
    with pytest.raises(ConfigError, match="too large") as info:
        load_config(write(tmp_path, f'name = "x"\n[study_area]\nbbox = {bbox}\n'))
    assert "study_area.bbox" in info.value.where
    assert not isinstance(info.value, CRSError)


def test_country_sized_boundary_file_is_too_large(tmp_path: Path) -> None:
    import dataclasses

    import geopandas as gpd
    import shapely

    from urbanunits.config import StudyArea
    from urbanunits.errors import DataError
    from urbanunits.sources.osm import study_area_polygon

    boundary = tmp_path / "province.geojson"
    gpd.GeoDataFrame(geometry=[shapely.box(115.0, 25.0, 123.0, 32.0)],
                     crs="EPSG:4326").to_file(boundary)
    cfg = load_config(write(tmp_path, MINIMAL))
    cfg = dataclasses.replace(cfg, study_area=StudyArea(boundary=boundary))
    with pytest.raises(DataError, match="too large") as info:
        study_area_polygon(cfg)
    assert "province.geojson" in info.value.where


def test_old_before_year_is_read_as_built_by_year_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    lg = logging.getLogger("urbanunits")
    lg.addHandler(caplog.handler)
    try:
        cfg = load_config(write(tmp_path, MINIMAL + "[packages]\nold_before_year = 1995\n"))
    finally:
        lg.removeHandler(caplog.handler)
    assert cfg.packages.built_by_year == 1994  # built before 1995 = built in or before 1994
    assert "old_before_year is deprecated" in caplog.text
    assert "built_by_year = 1994" in caplog.text
    assert load_config(write(tmp_path, MINIMAL)).packages.built_by_year == 2000
    with pytest.raises(ConfigError, match=r"packages.old_before_year.*delete old_before_year"):
        load_config(write(tmp_path, MINIMAL + "[packages]\nold_before_year = 1995\n"
                          "built_by_year = 1994\n"))
    with pytest.raises(ConfigError, match=r"packages.built_by_year"):
        load_config(write(tmp_path, MINIMAL + "[packages]\nbuilt_by_year = 20\n"))

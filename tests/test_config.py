"""Config loading: defaults, path resolution and one clear error per mistake."""

from __future__ import annotations

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
    ("[study_area]\nbbox = [121.49, 31.23, 121.50, 31.24]\n", "name"),
    (MINIMAL + "[lifecircle.categories.x]\nlabel = \"x\"\n", "lifecircle.categories.x.subtypes"),
    (MINIMAL + "[units]\nsplit_highways = \"tertiary\"\n", "units.split_highways"),
    (MINIMAL + "[osm]\ncache = 1\n", "osm.cache"),
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
    for cls in (c.Config, c.StudyArea, c.Inputs, c.OSMConfig, c.UnitsConfig, c.PackagesConfig,
                c.LifeCircleConfig, c.Output, c.Category, c.Subtype, c.FacilityFile):
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
    assert set(cats["clinic"].subtypes) == {"health_station"}
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

"""Run configuration: a TOML file loaded into validated, typed, frozen dataclasses.

Every key the code reads is a field below, documented in ``configs/README.md``. Unknown keys,
wrong types and out-of-range values raise :class:`~urbanunits.errors.ConfigError` naming the key,
e.g. ``configs/x.toml: units.min_area_m2: expected a number, got 'big'``.

Relative paths in a config are resolved against the project root (the parent of the ``configs/``
folder the file sits in, or the file's own folder otherwise), so ``make`` and notebooks see the
same files whatever the working directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from urbanunits.crs import COORD_SYSTEMS, parse_crs
from urbanunits.errors import ConfigError, InputFileError

__all__ = [
    "Category",
    "Config",
    "FacilityFile",
    "FetchConfig",
    "Inputs",
    "LifeCircleConfig",
    "OSMConfig",
    "Output",
    "PackagesConfig",
    "StudyArea",
    "Subtype",
    "UnitsConfig",
    "default_config_path",
    "load_config",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def default_config_path() -> Path:
    """Return the shipped demo config, ``configs/lujiazui.toml``."""
    return PROJECT_ROOT / "configs" / "lujiazui.toml"


# --------------------------------------------------------------------------------------------
# Schema. Field comments become the documentation in configs/README.md; keep them in step.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyArea:
    """Where the run happens and in which metric CRS."""

    bbox: tuple[float, float, float, float] | None = None  # WGS84 lon/lat: min_lon, min_lat, ...
    boundary: Path | None = None  # polygon file; overrides bbox when given
    crs: str = "EPSG:32651"  # metric CRS for all geometry work


@dataclass(frozen=True)
class Inputs:
    """Input files. Only ``osm`` is required."""

    osm: Path = Path("data/raw/lujiazui.osm")
    osm_help: str = ""  # extra hint printed when the OSM file is missing
    subdistricts: Path | None = None  # sub-district (街道) polygons
    subdistrict_name_field: str = "name"
    subdistrict_codes: Path | None = None  # official NBS code list (CSV: code,name,...)
    inventory: Path | None = None  # old-community inventory (CSV lon/lat, GeoPackage, GeoJSON)
    inventory_coord_system: str = "wgs84"  # wgs84 | gcj02 | bd09
    inventory_on_missing_coords: str = "skip"  # skip | error
    population_raster: Path | None = None  # persons per cell (GeoTIFF)


@dataclass(frozen=True)
class OSMConfig:
    """How the OSM extract is read."""

    graph_margin_m: float = 500.0  # walk graph kept this far beyond the study area
    simplify_walk_graph: bool = False  # osmnx topological simplification of the walk graph
    default_building_levels: float = 6.0  # levels assumed when building:levels is untagged
    cache: bool = True  # cache parsed layers in output.dir/cache


@dataclass(frozen=True)
class FetchConfig:
    """Overpass download (``urbanunits fetch``)."""

    overpass_url: str = "https://overpass-api.de/api/interpreter"  # any Overpass interpreter URL
    timeout_s: float = 300.0  # server-side query timeout ([timeout:]), seconds
    read_timeout_s: float | None = None  # client wait for data; default timeout_s + 60
    max_size_mb: int = 1024  # server-side memory limit ([maxsize:]), MiB
    max_retries: int = 4  # retries after the first request (429/5xx, timeouts, dropped links)
    backoff_s: float = 15.0  # first retry pause; doubles each time; Retry-After wins if longer
    check_status: bool = True  # ask <server>/status for a free slot before each request


@dataclass(frozen=True)
class UnitsConfig:
    """Update-unit partition (units stage)."""

    barrier_highways: list[str] = field(default_factory=lambda: [
        "motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link",
        "secondary", "secondary_link"])
    barrier_railways: list[str] = field(default_factory=lambda: ["rail", "light_rail"])
    barrier_waterways: list[str] = field(default_factory=lambda: ["river", "canal"])
    water_edges: bool = True  # water-body outlines are barriers too
    split_highways: list[str] = field(default_factory=lambda: ["tertiary", "residential"])
    snap_tolerance_m: float = 8.0  # close gaps between barrier lines that almost meet
    sliver_width_m: float = 30.0  # faces thinner than this (2·area/perimeter) are merged
    min_area_m2: float = 20_000.0
    max_area_m2: float = 400_000.0
    min_water_share: float = 0.5  # faces at least this share water are dropped as water


@dataclass(frozen=True)
class PackagesConfig:
    """Old-community inventory rules and renewal-package clustering (packages stage)."""

    old_before_year: int = 2000  # built before this year ⇒ old
    # Name rules (regex), used when no start_date/building:age year is tagged. When both lists
    # match, the match ending later in the name wins (the type word at the end decides).
    old_name_patterns: list[str] = field(default_factory=lambda: [
        r"新[村邨]$", r"[一二三四五六七八九十\d]+村$", r"工房", r"宿舍", r"公房", r"职工住宅",
        r"家属院", r"小区$", r"大楼$"])
    new_name_patterns: list[str] = field(default_factory=lambda: [
        r"花园", r"公馆", r"名苑", r"名邸", r"天下", r"一品", r"壹号", r"公寓$", r"凯旋", r"滨江园",
        r"华庭", r"豪庭", r"国际", r"墅", r"御", r"府$", r"湾$", r"苑$", r"园$", r"城$", r"庭$"])
    fallback_far: float = 1.5  # floor-area ratio for communities without mapped footprints
    m2_per_household: float = 70.0  # gross floor area per household
    persons_per_household: float = 2.6
    link_distance_m: float = 300.0  # boundaries this close may join one package
    hard_barriers: list[str] = field(default_factory=lambda: ["river", "rail"])
    min_floor_area_m2: float = 50_000.0
    max_floor_area_m2: float = 400_000.0
    min_households: int = 500
    max_households: int = 5_000
    prefer_same_subdistrict: bool = True


@dataclass(frozen=True)
class FacilityFile:
    """A facility list from a file (CSV with lon/lat, GeoJSON or GeoPackage)."""

    path: Path
    subtype: str = ""  # subtype for every row; else subtype_field; else by name patterns
    subtype_field: str = ""
    name_field: str = "name"
    lon_field: str = "lon"
    lat_field: str = "lat"
    coord_system: str = "wgs84"  # wgs84 | gcj02 | bd09
    layer: str = ""  # GeoPackage layer (default: the first)
    filter_field: str = ""  # keep rows whose filter_field is in filter_values
    filter_values: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Subtype:
    """A facility subtype and its walking standard."""

    distance_m: float  # GB 50180-2018 walking distance
    level_min: int = 5  # life-circle level in minutes (5, 10 or 15)
    osm_tags: dict[str, list[str]] = field(default_factory=dict)  # key → values ("*" = any)
    name_patterns: list[str] = field(default_factory=list)  # regexes on name
    label: str = ""
    enabled: bool = True  # false drops a default subtype


@dataclass(frozen=True)
class Category:
    """A facility category (elderly_care, childcare, clinic, commerce...)."""

    label: str  # Chinese/English label used on maps
    subtypes: dict[str, Subtype]
    files: list[FacilityFile] = field(default_factory=list)
    enabled: bool = True  # false drops a default category


def default_categories() -> dict[str, Category]:
    """GB 50180-2018 life-circle facilities with OSM tags and Chinese name patterns.

    Distances follow GB 50180-2018 (城市居住区规划设计标准), table 4.0.1 and appendix B/C:
    5-minute ≈ 300 m, 10-minute ≈ 500 m, 15-minute ≈ 800–1000 m walking distance.
    """
    return {
        "elderly_care": Category(label="养老服务 Elderly care", subtypes={
            "day_care": Subtype(
                distance_m=300.0, level_min=5, label="日间照料中心 Day care",
                osm_tags={"social_facility": ["day_care", "outreach"],
                          "amenity": ["social_centre"]},
                name_patterns=["日间照料", "托老", "老年活动", "居家养老", "养老服务站", "助餐",
                               "长者"]),
            "nursing_home": Subtype(
                distance_m=1000.0, level_min=15, label="养老院 Nursing home",
                osm_tags={"amenity": ["nursing_home"],
                          "social_facility": ["nursing_home", "assisted_living"]},
                name_patterns=["养老", "敬老", "福利院", "护理院", "老年公寓", "颐养"]),
        }),
        "childcare": Category(label="托幼 Childcare", subtypes={
            "kindergarten": Subtype(
                distance_m=300.0, level_min=5, label="幼儿园/托育 Kindergarten, nursery",
                osm_tags={"amenity": ["kindergarten", "childcare"]},
                name_patterns=["幼儿园", "托育", "托儿所", "早教"]),
        }),
        "clinic": Category(label="医疗卫生 Clinics", subtypes={
            "health_station": Subtype(
                distance_m=300.0, level_min=5, label="卫生服务站 Health station",
                osm_tags={"amenity": ["clinic", "doctors"],
                          "healthcare": ["clinic", "doctor", "centre"]},
                name_patterns=["卫生站", "卫生室", "诊所", "门诊部", "卫生服务站"]),
            "health_centre": Subtype(
                distance_m=1000.0, level_min=15, label="卫生服务中心/医院 Health centre",
                osm_tags={"amenity": ["hospital"], "healthcare": ["hospital"]},
                name_patterns=["卫生服务中心", "卫生院", "医院"]),
        }),
        "commerce": Category(label="商业服务 Daily commerce", subtypes={
            "convenience": Subtype(
                distance_m=300.0, level_min=5, label="便利店 Convenience store",
                osm_tags={"shop": ["convenience", "kiosk"]},
                name_patterns=["便利店", "便利", "全家", "罗森", "7-11", "快客", "好德", "可的"]),
            "market": Subtype(
                distance_m=500.0, level_min=10, label="菜场/生鲜超市 Market, supermarket",
                osm_tags={"shop": ["supermarket", "greengrocer"], "amenity": ["marketplace"]},
                name_patterns=["菜场", "菜市场", "农贸", "生鲜", "超市"]),
            "mall": Subtype(
                distance_m=1000.0, level_min=15, label="商场 Shopping centre",
                osm_tags={"shop": ["mall", "department_store"]},
                name_patterns=["商场", "购物中心", "百货"]),
        }),
    }


@dataclass(frozen=True)
class LifeCircleConfig:
    """15-minute life circle (lifecircle stage)."""

    walk_speed_m_s: float = 1.0
    elderly_walk_speed_m_s: float = 0.8
    max_snap_m: float = 150.0  # farther from the network ⇒ unreachable
    entry_buffer_m: float = 15.0  # nodes this close to a community polygon are its entry points
    dedupe_m: float = 100.0  # same-category facilities this close with the same name merge
    search_limit_m: float = 3000.0  # nearest-facility search stops here (≥ every distance_m)
    isochrones: bool = False
    isochrone_buffer_m: float = 25.0  # half-width of the walkable strip in isochrone polygons
    categories: dict[str, Category] = field(default_factory=lambda: default_categories())


@dataclass(frozen=True)
class Output:
    """Where results go: one folder per run, ``<dir>/<name>/``, replaced whole by each run.

    The GeoPackage, maps and tables share that folder so that a run can stage them together and
    swap them in at once; configs with different names never overwrite each other's files.
    """

    dir: Path = Path("data/processed")  # holds <name>/ (the run) and cache/ (parsed extracts)
    map_dpi: int = 200


@dataclass(frozen=True)
class Config:
    """A whole run."""

    name: str
    study_area: StudyArea = field(default_factory=StudyArea)
    inputs: Inputs = field(default_factory=Inputs)
    osm: OSMConfig = field(default_factory=OSMConfig)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    units: UnitsConfig = field(default_factory=UnitsConfig)
    packages: PackagesConfig = field(default_factory=PackagesConfig)
    lifecircle: LifeCircleConfig = field(default_factory=LifeCircleConfig)
    output: Output = field(default_factory=Output)
    title: str = ""  # place name shown on maps
    source: Path | None = None  # the TOML file this came from (set by load_config)

    @property
    def run_dir(self) -> Path:
        """The run's output folder, ``<output.dir>/<name>``: GeoPackage, maps and tables."""
        return self.output.dir / self.name

    @property
    def gpkg_path(self) -> Path:
        """The run's GeoPackage, ``<output.dir>/<name>/<name>.gpkg``."""
        return self.run_dir / f"{self.name}.gpkg"

    @property
    def maps_dir(self) -> Path:
        """Folder for PNG maps, ``<output.dir>/<name>/maps``."""
        return self.run_dir / "maps"

    @property
    def tables_dir(self) -> Path:
        """Folder for CSV/XLSX tables, ``<output.dir>/<name>/tables``."""
        return self.run_dir / "tables"

    @property
    def cache_dir(self) -> Path:
        """Folder for parsed-input caches."""
        return self.output.dir / "cache"

    def digest(self, *sections: str) -> str:
        """Hash of the named config sections (all when none), for cache keys."""
        data = dataclasses.asdict(self)
        data.pop("source", None)
        if sections:
            data = {k: data[k] for k in sections}
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if tp is Path:
        return "a file path (string)"
    if origin in (list, tuple):
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a table"
    return str(tp)


def _convert(tp: Any, value: Any, key: str, src: str, root: Path) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if origin in (Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if (value is None or value == "") and type(None) in args:
            return None
        return _convert(non_none[0], value, key, src, root)

    def bad() -> ConfigError:
        return ConfigError(f"{src}: {key}", f"expected {_type_name(tp)}, got {value!r}",
                           "fix the value in the config (see configs/README.md)")

    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise bad()
        p = Path(value).expanduser()
        return p if p.is_absolute() else root / p
    if origin is list:
        if not isinstance(value, list):
            raise bad()
        return [_convert(args[0], v, f"{key}[{i}]", src, root) for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list) or len(value) != len(args):
            raise ConfigError(f"{src}: {key}", f"expected a list of {len(args)} numbers, "
                              f"got {value!r}", "fix the value in the config")
        return tuple(_convert(a, v, f"{key}[{i}]", src, root)
                     for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise bad()
        return {str(k): _convert(args[1], v, f"{key}.{k}", src, root) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad()
        return _build(typing.cast(type, tp), value, key, src, root)
    raise bad()  # pragma: no cover - schema uses only the types above


def _merge_categories(user: Any) -> Any:
    """Overlay the config's ``lifecircle.categories`` on the GB 50180-2018 defaults.

    A table for a default category changes only the keys it gives (``files`` added to the default
    clinic, a subtype's ``distance_m``...); subtypes merge the same way; a new key adds a
    category; ``enabled = false`` drops one.
    """
    if not isinstance(user, dict):
        return user  # the type check reports it
    merged: dict[str, Any] = {k: dataclasses.asdict(v) for k, v in default_categories().items()}
    for key, table in user.items():
        if key not in merged or not isinstance(table, dict):
            merged[key] = table
            continue
        base = merged[key]
        for name, value in table.items():
            if name == "subtypes" and isinstance(value, dict):
                subs = dict(base["subtypes"])
                for sk, sv in value.items():
                    subs[sk] = ({**subs[sk], **sv} if sk in subs and isinstance(sv, dict)
                                else sv)
                base["subtypes"] = subs
            else:
                base[name] = value
    return merged


def _enabled_only(lc: LifeCircleConfig) -> LifeCircleConfig:
    cats = {}
    for key, cat in lc.categories.items():
        if cat.enabled:
            subs = {k: st for k, st in cat.subtypes.items() if st.enabled}
            cats[key] = dataclasses.replace(cat, subtypes=subs)
    return dataclasses.replace(lc, categories=cats)


def _build(cls: type, data: dict[str, Any], prefix: str, src: str, root: Path) -> Any:
    if cls is LifeCircleConfig and "categories" in data:
        data = {**data, "categories": _merge_categories(data["categories"])}
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{src}: {full}", "unknown key",
                              f"check the spelling; known keys here: {known}")
        kwargs[key] = _convert(hints[key], value, full, src, root)
    for name, f in fields.items():
        if (name not in kwargs and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING):
            full = f"{prefix}.{name}" if prefix else name
            raise ConfigError(f"{src}: {full}", "missing required key",
                              "add it (see configs/README.md)")
    obj = cls(**kwargs)
    return _enabled_only(obj) if cls is LifeCircleConfig else obj


def _absolutize(obj: Any, root: Path) -> Any:
    """Resolve relative paths left at their defaults against the project root."""
    if isinstance(obj, Path):
        return obj if obj.is_absolute() else root / obj
    if isinstance(obj, list):
        return [_absolutize(v, root) for v in obj]
    if isinstance(obj, dict):
        return {k: _absolutize(v, root) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: _absolutize(getattr(obj, f.name), root)
                   for f in dataclasses.fields(obj) if f.name != "source"}
        return dataclasses.replace(obj, **changes)
    return obj


def _root_for(path: Path) -> Path:
    path = path.resolve()
    return path.parent.parent if path.parent.name == "configs" else path.parent


def _check(cfg: Config, src: str) -> None:
    def err(key: str, what: str, fix: str = "fix the value in the config") -> ConfigError:
        return ConfigError(f"{src}: {key}", what, fix)

    if not cfg.name or not all(c.isalnum() or c in "-_" for c in cfg.name):
        raise err("name", f"{cfg.name!r} must be letters, digits, '-' or '_'",
                  "it names the output files, e.g. name = \"ningbo\"")
    parse_crs(cfg.study_area.crs, where=f"{src}: study_area.crs")
    if cfg.study_area.bbox is None and cfg.study_area.boundary is None:
        raise err("study_area", "neither bbox nor boundary is set",
                  "set study_area.bbox = [min_lon, min_lat, max_lon, max_lat]")
    if cfg.study_area.bbox is not None:
        x0, y0, x1, y1 = cfg.study_area.bbox
        if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
            raise err("study_area.bbox", f"{list(cfg.study_area.bbox)} is not "
                      "[min_lon, min_lat, max_lon, max_lat] in WGS84 degrees",
                      "give WGS84 longitude/latitude with min < max")
    for key, val in [("inputs.inventory_coord_system", cfg.inputs.inventory_coord_system)]:
        if val not in COORD_SYSTEMS:
            raise err(key, f"unknown coord_system {val!r}", "use wgs84, gcj02 or bd09")
    if cfg.inputs.inventory_on_missing_coords not in {"skip", "error"}:
        raise err("inputs.inventory_on_missing_coords",
                  f"{cfg.inputs.inventory_on_missing_coords!r}", "use 'skip' or 'error'")
    f = cfg.fetch
    if not f.overpass_url.startswith(("http://", "https://")):
        raise err("fetch.overpass_url", f"{f.overpass_url!r} is not an http(s) URL",
                  "use e.g. https://overpass-api.de/api/interpreter")
    for key in ("timeout_s", "max_size_mb"):
        if getattr(f, key) <= 0:
            raise err(f"fetch.{key}", "must be > 0")
    if f.read_timeout_s is not None and f.read_timeout_s <= 0:
        raise err("fetch.read_timeout_s", "must be > 0")
    if f.max_retries < 0 or f.backoff_s < 0:
        raise err("fetch.max_retries" if f.max_retries < 0 else "fetch.backoff_s", "must be ≥ 0")
    u = cfg.units
    if not 0 < u.min_area_m2 < u.max_area_m2:
        raise err("units.min_area_m2", "must be > 0 and below units.max_area_m2")
    for key in ("snap_tolerance_m", "sliver_width_m"):
        if getattr(u, key) < 0:
            raise err(f"units.{key}", "must be ≥ 0")
    p = cfg.packages
    if not 0 <= p.min_floor_area_m2 <= p.max_floor_area_m2:
        raise err("packages.min_floor_area_m2", "must be ≥ 0 and ≤ packages.max_floor_area_m2")
    if not 0 <= p.min_households <= p.max_households:
        raise err("packages.min_households", "must be ≥ 0 and ≤ packages.max_households")
    for key in ("m2_per_household", "persons_per_household", "link_distance_m", "fallback_far"):
        if getattr(p, key) <= 0:
            raise err(f"packages.{key}", "must be > 0")
    bad = set(p.hard_barriers) - {"river", "rail", "trunk", "motorway", "primary"}
    if bad:
        raise err("packages.hard_barriers", f"unknown barrier class(es) {sorted(bad)}",
                  "use river, rail, motorway, trunk or primary")
    lc = cfg.lifecircle
    for key in ("walk_speed_m_s", "elderly_walk_speed_m_s", "max_snap_m", "search_limit_m",
                "isochrone_buffer_m"):
        if getattr(lc, key) <= 0:
            raise err(f"lifecircle.{key}", "must be > 0")
    for key in ("entry_buffer_m", "dedupe_m"):
        if getattr(lc, key) < 0:
            raise err(f"lifecircle.{key}", "must be ≥ 0")
    longest = max((st.distance_m for c in lc.categories.values() for st in c.subtypes.values()),
                  default=0.0)
    if lc.search_limit_m < longest:
        raise err("lifecircle.search_limit_m", f"{lc.search_limit_m:g} m is shorter than the "
                  f"longest standard ({longest:g} m)", f"set it to at least {longest:g}")
    for cat_key, cat in lc.categories.items():
        if not cat.subtypes:
            raise err(f"lifecircle.categories.{cat_key}.subtypes", "no subtypes",
                      "give at least one subtype with a distance_m")
        for st_key, st in cat.subtypes.items():
            if st.distance_m <= 0:
                raise err(f"lifecircle.categories.{cat_key}.subtypes.{st_key}.distance_m",
                          "must be > 0")
        for i, ff in enumerate(cat.files):
            key = f"lifecircle.categories.{cat_key}.files[{i}]"
            if ff.coord_system not in COORD_SYSTEMS:
                raise err(f"{key}.coord_system", f"unknown coord_system {ff.coord_system!r}",
                          "use wgs84, gcj02 or bd09")
            if ff.subtype and ff.subtype not in cat.subtypes:
                raise err(f"{key}.subtype", f"{ff.subtype!r} is not a subtype of {cat_key}",
                          f"use one of {sorted(cat.subtypes)}")


def load_config(path: str | Path | None = None, **overrides: Any) -> Config:
    """Load and validate a TOML config.

    Parameters
    ----------
    path
        The TOML file; ``None`` loads the shipped demo, ``configs/lujiazui.toml``.
    **overrides
        Top-level sections to replace after loading, e.g. ``output=Output(dir=tmp)``.

    Returns
    -------
    Config
        The validated configuration.
    """
    p = Path(path) if path is not None else default_config_path()
    if not p.is_file():
        raise InputFileError(p, "config file not found",
                             "pass --config configs/<name>.toml (see configs/README.md)")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(p, f"not valid TOML ({exc})", "fix the syntax at that line") from exc
    root = _root_for(p)
    cfg = _absolutize(_build(Config, raw, "", str(p), root), root)
    cfg = dataclasses.replace(cfg, source=p.resolve(), **overrides)
    _check(cfg, str(p))
    return typing.cast(Config, cfg)

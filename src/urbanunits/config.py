"""Run configuration: a TOML file loaded into validated, typed, frozen dataclasses.

Every key the code reads is a field below, documented in ``configs/README.md``. Unknown keys,
wrong types and out-of-range values raise :class:`~urbanunits.errors.ConfigError` naming the key,
e.g. ``configs/x.toml: units.min_area_m2: expected a number, got 'big'``. Every numeric key has
its allowed range in :data:`RANGES` (NaN and infinity are always refused).

Relative paths in a config are resolved against the project root (the parent of the ``configs/``
folder the file sits in, or the file's own folder otherwise), so ``make`` and notebooks see the
same files whatever the working directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import tomllib
import types
import typing
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from urbanunits.crs import COORD_SYSTEMS, UNSET, check_distortion, check_extent, parse_crs
from urbanunits.errors import ConfigError, InputFileError

__all__ = [
    "RANGES",
    "Category",
    "Config",
    "FacilityFile",
    "FetchConfig",
    "Inputs",
    "LifeCircleConfig",
    "OSMConfig",
    "Output",
    "PackagesConfig",
    "ProgrammeConfig",
    "Range",
    "SiteSubtype",
    "SitesConfig",
    "StudyArea",
    "Subtype",
    "UnitsConfig",
    "YearCap",
    "default_config_path",
    "load_config",
    "numeric_keys",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]

logger = logging.getLogger(__name__)


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
    # text encoding of a sub-district Shapefile (e.g. "GB18030"); "" = its .cpg, else detected
    subdistricts_encoding: str = ""
    subdistrict_codes: Path | None = None  # official NBS code list (CSV: code,name,...)
    inventory: Path | None = None  # old-community inventory (CSV/XLSX lon/lat, GeoPackage...)
    inventory_sheet: str = ""  # sheet of an XLSX inventory; empty = the first sheet
    # wgs84 | gcj02 | bd09; unset ("") reads WGS84 and is checked against the streets
    inventory_coord_system: str = ""
    inventory_on_missing_coords: str = "skip"  # skip | error
    community_overrides: Path | None = None  # CSV/XLSX: name or community_id/osm_id + old/new
    population_raster: Path | None = None  # persons per cell (GeoTIFF)
    heritage_areas: Path | None = None  # designated conservation areas (any polygon file)
    candidate_sites: Path | None = None  # idle public buildings / vacant land (sites stage)
    candidate_sites_sheet: str = ""  # sheet of an XLSX register; empty = the first sheet
    candidate_sites_coord_system: str = "wgs84"  # wgs84 | gcj02 | bd09 (lon/lat columns)


@dataclass(frozen=True)
class OSMConfig:
    """How the OSM extract is read."""

    graph_margin_m: float = 500.0  # walk graph kept this far beyond the study area
    simplify_walk_graph: bool = False  # osmnx topological simplification of the walk graph
    default_building_levels: float = 6.0  # levels assumed when building:levels is untagged
    cache: bool = True  # cache parsed layers in output.dir/cache
    min_coverage_share: float = 0.8  # error when the extract covers less of the study area


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
    # Historic conservation needs designated conservation areas over at least this share of the
    # unit: a quarter is a large enough part that its conservation plan governs the unit's
    # renewal; a fringe or a single listed building is a constraint inside another class.
    min_historic_share: float = 0.25
    # Old-community renewal needs old communities to hold at least this share of the unit's
    # residential floor area: most of the housing, not one small community in a large unit.
    min_old_floor_share: float = 0.5


@dataclass(frozen=True)
class PackagesConfig:
    """Old-community inventory rules and renewal-package clustering (packages stage)."""

    # Built in or before this year ⇒ old. The national guideline (国办发〔2020〕23号) targets
    # communities 2000年底前建成 (built by the end of 2000). Replaces old_before_year (= this + 1).
    built_by_year: int = 2000
    # Name rules (regex), used when no start_date/building:age year is tagged. When both lists
    # match, the match ending later in the name wins (the type word at the end decides). 小区 is
    # not among them: every community is a 小区, old or new.
    old_name_patterns: list[str] = field(default_factory=lambda: [
        r"新[村邨]$", r"[一二三四五六七八九十\d]+村$", r"工房", r"宿舍", r"公房", r"职工住宅",
        r"家属院", r"大楼$"])
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
class YearCap:
    """What one programme year can take (``[[programme.years]]``); an unset cap is no limit."""

    floor_area_cap_m2: float | None = None  # gross floor area of the packages begun that year
    households_cap: int | None = None  # households in those packages
    budget_cap_yuan: float | None = None  # estimated cost (unit costs × floor area + lifts)


#: 改造类型 keys (国办发〔2020〕23号: 基础类, 完善类, 提升类) in increasing scope.
RENOVATION_TYPES = ("basic", "improvement", "enhancement")


@dataclass(frozen=True)
class ProgrammeConfig:
    """Rolling three-year project library (programme stage): scores, phasing, lift retrofits."""

    start_year: int = 2026  # first programme year (实施); the next are 生成, then 谋划
    # One table per programme year, in order; the default is three years without caps.
    years: list[YearCap] = field(default_factory=lambda: [YearCap(), YearCap(), YearCap()])
    # Criterion weights (any scale; the score divides by their sum). 0 leaves a criterion out.
    weight_age: float = 1.0  # years since built
    weight_floor_area: float = 1.0  # gross floor area renewed
    weight_households: float = 1.0  # households served
    weight_gaps: float = 1.0  # residents × life-circle items missing (service_gaps)
    weight_elevator: float = 1.0  # households in 4–6 storey walk-ups without a lift
    weight_unmanaged: float = 1.0  # share of floor area without property management (无物业)
    weight_consent: float = 1.0  # residents' consent share (居民意愿)
    weight_colocation: float = 0.5  # other packages within colocation_distance_m
    colocation_distance_m: float = 500.0
    # Readiness: a package is scheduled only when its households-weighted consent reaches this.
    # Two thirds echoes the Civil Code's art. 278 quorum for works on common parts.
    min_consent_share: float = 0.667
    unknown_consent_ready: bool = True  # no consent figure ⇒ may be scheduled (flagged)
    # Each later year counts this share less, so that higher scores go first when both fit.
    year_discount: float = 0.1
    # Unit costs by 改造类型 (yuan per m² of floor area): placeholders, a bureau supplies its own.
    cost_basic_yuan_m2: float = 300.0
    cost_improvement_yuan_m2: float = 500.0
    cost_enhancement_yuan_m2: float = 800.0
    default_renovation_type: str = "basic"  # basic | improvement | enhancement, when not listed
    elevator_min_levels: int = 4  # lift retrofit candidates: walk-ups of this many storeys…
    elevator_max_levels: int = 6  # …up to this (GB 50096: 7+ storeys must have lifts)
    households_per_lift: float = 12.0  # one lift per stairwell: 6 storeys × 2 flats a landing
    # Public funds per retrofitted lift (the subsidy, not the whole installed cost, which
    # owners share): a placeholder, a bureau supplies its own.
    elevator_cost_yuan: float = 300_000.0
    elevator_cost_in_budget: bool = True  # lifts count against budget_cap_yuan
    solver: str = "milp"  # milp (HiGHS, exact) | greedy (by score, for comparison)
    # HiGHS stops once its plan is proved within mip_rel_gap of the optimum: 0.1 % is far below
    # the precision of the scores, and stopping on a gap (unlike on time) repeats exactly.
    mip_rel_gap: float = 1e-3
    time_limit_s: float = 60.0  # safety net; a plan stopped by time is reported with its gap


@dataclass(frozen=True)
class FacilityFile:
    """A facility list from a file (CSV with lon/lat, GeoJSON or GeoPackage)."""

    path: Path
    subtype: str = ""  # subtype for every row; else subtype_field; else by name patterns
    subtype_field: str = ""
    name_field: str = "name"
    lon_field: str = "lon"
    lat_field: str = "lat"
    # wgs84 | gcj02 | bd09; unset ("") reads WGS84, but stops when the points fit the streets
    # markedly better as GCJ-02 or BD-09 (an explicit "wgs84" skips the check)
    coord_system: str = ""
    layer: str = ""  # GeoPackage layer (default: the first)
    filter_field: str = ""  # keep rows whose filter_field is in filter_values
    filter_values: list[str] = field(default_factory=list)
    capacity_field: str = ""  # places or beds per facility (sites stage supply); empty = none


#: GB 50180-2018 item kinds: ▲ "应配建" (mandatory), △ "宜配建" (optional), or not an item of the
#: standard at all (a general hospital, recorded as itself and never counted for a standard item).
REQUIREMENTS = ("mandatory", "optional", "none")


@dataclass(frozen=True)
class Subtype:
    """A facility subtype, its walking standard and how OSM features and names are recognised."""

    distance_m: float  # GB 50180-2018 walking distance (m)
    level_minutes: int = 5  # life-circle level (5, 10 or 15); levels are not inclusive
    requirement: str = "mandatory"  # mandatory (▲) | optional (△) | none (not a standard item)
    gb50180: str = ""  # the standard's table and item, for reports
    osm_tags: dict[str, list[str]] = field(default_factory=dict)  # any one tag: key → values
    osm_rules: list[dict[str, list[str]]] = field(default_factory=list)  # all tags of one rule
    exclude_tags: dict[str, list[str]] = field(default_factory=dict)  # never with these tags
    name_patterns: list[str] = field(default_factory=list)  # regexes on name
    name_exclude: list[str] = field(default_factory=list)  # a name matching these is never it
    label: str = ""
    enabled: bool = True  # false drops a default subtype


@dataclass(frozen=True)
class Category:
    """A facility category (elderly_care, childcare, clinic, commerce...)."""

    label: str  # Chinese/English label used on maps
    subtypes: dict[str, Subtype]
    files: list[FacilityFile] = field(default_factory=list)
    enabled: bool = True  # false drops a default category


# Names that look like a facility but are something else. Shared by the subtypes they threaten.
_NOT_MEDICAL = ["宠物", "动物", "兽", "口腔", "牙", "齿科", "美容", "整形", "医美", "眼镜", "视光",
                "养生", "足疗", "按摩", "药业", "医药公司", "器械"]
_NOT_FOOD_SHOP = ["酒家", "酒楼", "饭店", "餐", "面馆", "火锅", "烧烤", "咖啡", "茶楼", "宠物"]
_NOT_ELDERLY = ["活动室", "活动中心", "老年大学", "老干部", "协会", "保险", "公司", "用品", "宠物",
                "儿童", "孤儿", "残疾"]
_DENTAL_VET = {"amenity": ["dentist", "veterinary"], "healthcare": ["dentist"]}


def default_categories() -> dict[str, Category]:
    """GB 50180-2018 life-circle facilities with OSM tag rules and Chinese name patterns.

    Items, levels and ▲/△ follow GB 50180-2018 appendix B (tables B.0.1 fifteen/ten-minute,
    B.0.2 five-minute, B.0.3 street block); walking distances follow appendix C's service radii
    where it gives one (300 m five-minute items, 500 m markets, 1000 m health centre) and the
    level's walk otherwise (5 ≈ 300 m, 10 ≈ 500 m, 15 ≈ 1000 m). configs/README.md cites each.
    """
    return {
        "elderly_care": Category(label="养老服务 Elderly care", subtypes={
            "day_care": Subtype(
                distance_m=300.0, level_minutes=5, label="日间照料中心 Day care",
                gb50180="B.0.2 老年人日间照料中心（托老所）▲; C.0.2 服务半径≤300 m",
                osm_rules=[{"social_facility": ["day_care", "outreach"],
                            "social_facility:for": ["senior"]}],
                name_patterns=["日间照料", "托老所", "托老中心", "居家养老服务", "养老服务站",
                               "为老服务站", "社区养老服务"],
                name_exclude=_NOT_ELDERLY),
            "nursing_home": Subtype(
                distance_m=1000.0, level_minutes=15, label="养老院 Nursing home",
                gb50180="B.0.1 养老院 ▲, 老年养护院 ▲ (15-minute)",
                osm_tags={"amenity": ["nursing_home"]},
                osm_rules=[{"social_facility": ["nursing_home", "assisted_living"],
                            "social_facility:for": ["senior", ""]}],
                exclude_tags={"social_facility:for": ["child", "juvenile", "orphan"]},
                name_patterns=["养老院", "敬老院", "护理院", "养护院", "老年公寓", "颐养院",
                               "社会福利院", "福利院", "长者照护之家", "养老中心"],
                name_exclude=[*_NOT_ELDERLY, "服务站", "日间照料"]),
        }),
        "childcare": Category(label="托幼 Childcare", subtypes={
            "kindergarten": Subtype(
                distance_m=300.0, level_minutes=5, label="幼儿园 Kindergarten (3–6)",
                gb50180="B.0.2 幼儿园 ▲; C.0.2 服务半径≤300 m",
                osm_tags={"amenity": ["kindergarten"]},
                name_patterns=["幼儿园", "幼稚园"],
                name_exclude=["早教", "用品", "培训", "托管", "宠物", "玩具", "服装"]),
            "nursery": Subtype(
                distance_m=300.0, level_minutes=5, requirement="optional",
                label="托育/托儿所 Nursery (0–3)", gb50180="B.0.2 托儿所 △",
                osm_tags={"amenity": ["childcare"]},
                name_patterns=["托育", "托儿所", "育婴园"],
                name_exclude=["早教", "托管", "托老", "用品", "培训", "宠物"]),
        }),
        "clinic": Category(label="医疗卫生 Clinics", subtypes={
            "health_station": Subtype(
                distance_m=300.0, level_minutes=5, requirement="optional",
                label="卫生服务站 Health station", gb50180="B.0.2 社区卫生服务站 △",
                osm_tags={"amenity": ["clinic", "doctors"], "healthcare": ["clinic", "doctor"]},
                exclude_tags=_DENTAL_VET,
                name_patterns=["卫生服务站", "卫生站", "卫生室", "医务室", "诊所"],
                name_exclude=_NOT_MEDICAL),
            "health_centre": Subtype(
                distance_m=1000.0, level_minutes=15, label="社区卫生服务中心 Health centre",
                gb50180="B.0.1 卫生服务中心（社区医院）▲; C.0.1 服务半径≤1000 m",
                osm_tags={"healthcare": ["centre"]}, exclude_tags=_DENTAL_VET,
                name_patterns=["卫生服务中心", "卫生院", "社区医院"],
                name_exclude=[*_NOT_MEDICAL, "疾病预防", "疾控", "体检", "急救", "血液"]),
            "outpatient": Subtype(
                distance_m=1000.0, level_minutes=15, label="门诊部 Outpatient department",
                gb50180="B.0.1 门诊部 ▲ (15-minute)", exclude_tags=_DENTAL_VET,
                name_patterns=["门诊部"], name_exclude=_NOT_MEDICAL),
            "hospital": Subtype(
                distance_m=1000.0, level_minutes=15, requirement="none",
                label="医院 Hospital (not a standard item)",
                gb50180="— (city-level; never stands in for a health centre)",
                osm_tags={"amenity": ["hospital"], "healthcare": ["hospital"]},
                exclude_tags=_DENTAL_VET,
                name_patterns=["医院"], name_exclude=["宠物", "动物", "兽"]),
        }),
        "commerce": Category(label="商业服务 Daily commerce", subtypes={
            "convenience": Subtype(
                distance_m=300.0, level_minutes=5, label="便利店 Convenience store",
                gb50180="B.0.3 便利店（菜店、日杂等）▲ (street block)",
                osm_tags={"shop": ["convenience"]},
                name_patterns=["便利店", "便利超市", "全家便利", r"^全家(?!福)", "罗森",
                               "7-?(?:11|eleven)", "快客", "好德", "可的", "喜士多", "美宜佳",
                               "便利蜂", "十足", "易捷"],
                name_exclude=_NOT_FOOD_SHOP),
            "market": Subtype(
                distance_m=500.0, level_minutes=10, label="菜市场/生鲜超市 Market",
                gb50180="B.0.1 菜市场或生鲜超市 ▲ (10-minute); C.0.1 服务半径≤500 m",
                osm_tags={"shop": ["supermarket", "greengrocer", "butcher", "seafood"],
                          "amenity": ["marketplace"]},
                name_patterns=["菜场", "菜市场", "农贸市场", "生鲜超市", "生鲜市场", "永辉",
                               "华润万家", "联华超市", "世纪联华", "大润发", "家乐福", "盒马",
                               "物美", "三江购物"],
                name_exclude=[*_NOT_FOOD_SHOP, "建材", "家具", "服装", "小商品", "花鸟",
                              "汽车", "二手", "电子", "手机", "公司"]),
            "mall": Subtype(
                distance_m=1000.0, level_minutes=15, label="商场 Shopping centre",
                gb50180="B.0.1 商场 ▲ (15- and 10-minute)",
                osm_tags={"shop": ["mall", "department_store"]},
                name_patterns=["商场", "购物中心", "百货"],
                name_exclude=["建材", "家具", "汽车", "电子", "手机"]),
            "pharmacy": Subtype(
                distance_m=300.0, level_minutes=5, requirement="optional",
                label="药店 Pharmacy", gb50180="B.0.2 社区商业网点（药店等）▲ as a group; "
                "counted alone as optional",
                osm_tags={"amenity": ["pharmacy"], "healthcare": ["pharmacy"]},
                name_patterns=["药房", "药店"], name_exclude=["宠物", "兽", "公司", "批发"]),
        }),
    }


#: Tags that say what a feature is. A name pattern never overrules them: 全家福酒家 tagged
#: amenity=restaurant is no convenience store, whatever its name contains.
def default_contradicting_tags() -> dict[str, list[str]]:
    """Tags that stop a name-pattern match (see :class:`LifeCircleConfig`)."""
    return {
        "amenity": ["restaurant", "fast_food", "cafe", "bar", "pub", "food_court", "veterinary",
                    "dentist", "school", "college", "university", "bank", "atm",
                    "place_of_worship", "fuel", "parking", "car_wash", "cinema", "theatre",
                    "community_centre", "arts_centre", "library", "police", "townhall",
                    "post_office"],
        "shop": ["pet", "beauty", "cosmetics", "hairdresser", "massage", "clothes", "car",
                 "car_repair", "furniture", "hardware", "mobile_phone", "jewelry", "optician",
                 "medical_supply", "baby_goods", "toys"],
        "healthcare": ["dentist", "optometrist"],
        "tourism": ["hotel", "guest_house", "hostel"],
        "office": ["insurance", "company", "estate_agent", "financial"],
    }


@dataclass(frozen=True)
class LifeCircleConfig:
    """15-minute life circle (lifecircle stage)."""

    walk_speed_m_s: float = 1.0
    elderly_walk_speed_m_s: float = 0.8
    max_snap_m: float = 150.0  # farther from the network ⇒ unreachable
    min_component_nodes: int = 50  # smaller pieces of the walk network are islands (see docs)
    entry_buffer_m: float = 15.0  # nodes this close to a community polygon are its entry points
    dedupe_m: float = 100.0  # same-category facilities this close with the same name merge
    search_limit_m: float = 3000.0  # nearest-facility search stops here (≥ every distance_m)
    isochrones: bool = False
    isochrone_buffer_m: float = 25.0  # half-width of the walkable strip in isochrone polygons
    contradicting_tags: dict[str, list[str]] = field(
        default_factory=lambda: default_contradicting_tags())  # stop name matches
    categories: dict[str, Category] = field(default_factory=lambda: default_categories())


#: Who needs a subtype: the age group whose head count is its demand in the supply-demand index.
DEMAND_GROUPS = ("all", "age_0_3", "age_3_6", "age_60_plus")

#: Kinds of OSM candidate sites (see :func:`urbanunits.sites.osm_candidates`).
OSM_CANDIDATE_KINDS = ("vacant", "public", "parking")


@dataclass(frozen=True)
class SiteSubtype:
    """What a site must offer to host a subtype, and its capacity and demand (sites stage)."""

    min_floor_area_m2: float = 200.0  # candidates with less floor area cannot host it
    places_per_facility: float = 0.0  # capacity (places/beds) of a facility; 0 = unknown
    demand_group: str = "all"  # all | age_0_3 | age_3_6 | age_60_plus
    places_per_1000: float = 0.0  # target places per 1000 persons of the demand group


def default_site_subtypes() -> dict[str, SiteSubtype]:
    """Floor areas from GB 50180-2018 appendix B; capacities and targets are planning norms.

    Minimum floor areas are the smallest building area GB 50180-2018 gives for the item
    (B.0.1/B.0.2 建筑面积 ranges). Capacities are a typical facility of that size; targets
    follow national 14th five-year-plan indicators (4.5 nursery places per 1000 residents ≈ 180
    per 1000 children under 3 at a 2.5 % share; ≥ 90 % pre-school enrolment) and the common
    provincial norm of about 40 care beds per 1000 older residents. configs/README.md cites them.
    """
    return {
        "day_care": SiteSubtype(min_floor_area_m2=350.0, places_per_facility=30.0,
                                demand_group="age_60_plus", places_per_1000=20.0),
        "nursing_home": SiteSubtype(min_floor_area_m2=3500.0, places_per_facility=150.0,
                                    demand_group="age_60_plus", places_per_1000=40.0),
        "kindergarten": SiteSubtype(min_floor_area_m2=2200.0, places_per_facility=270.0,
                                    demand_group="age_3_6", places_per_1000=900.0),
        "nursery": SiteSubtype(min_floor_area_m2=300.0, places_per_facility=60.0,
                               demand_group="age_0_3", places_per_1000=180.0),
        "health_centre": SiteSubtype(min_floor_area_m2=1700.0),
        "outpatient": SiteSubtype(min_floor_area_m2=300.0),
        "convenience": SiteSubtype(min_floor_area_m2=50.0),
        "market": SiteSubtype(min_floor_area_m2=750.0),
        "mall": SiteSubtype(min_floor_area_m2=5000.0),
    }


@dataclass(frozen=True)
class SitesConfig:
    """Sites for new facilities and supply-demand accessibility (sites stage)."""

    max_sites: int = 5  # p: at most this many suggested sites per subtype (maximal covering)
    osm_candidates: bool = True  # also take candidate sites from OSM
    osm_kinds: list[str] = field(default_factory=lambda: list(OSM_CANDIDATE_KINDS))
    land_far: float = 1.0  # floor area per m² of vacant land or surface parking
    share_age_0_3: float = 0.025  # residents aged 0–3, when communities lack a count
    share_age_3_6: float = 0.03  # residents aged 3–6
    share_age_60_plus: float = 0.25  # residents aged 60 and over
    # Enhanced 2SFCA weights for the inner, middle and outer third of the catchment (Luo & Qi
    # 2009); [1.0] gives the plain two-step floating catchment area method.
    fca_weights: list[float] = field(default_factory=lambda: [1.0, 0.68, 0.22])
    time_limit_s: float = 60.0  # solver time limit per subtype (s); the best set found is kept
    subtypes: dict[str, SiteSubtype] = field(default_factory=lambda: default_site_subtypes())


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
    programme: ProgrammeConfig = field(default_factory=ProgrammeConfig)
    sites: SitesConfig = field(default_factory=SitesConfig)
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
# Ranges. Every numeric key has one line here (a test fails for a numeric field without one) and
# the same range in configs/README.md, "Allowed ranges". Keys are dotted config paths; ``*``
# stands for any table key (a category or subtype name), ``[*]`` for any list position.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric key: ``lo`` to ``hi``, ends included unless marked open."""

    lo: float
    hi: float
    lo_open: bool = False  # True: lo itself is refused (e.g. a speed must be > 0)
    hi_open: bool = False

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def __str__(self) -> str:
        def num(v: float) -> str:  # as TOML would write it: 10_000_000, 0.1
            if not float(v).is_integer():
                return f"{v:g}"
            return f"{int(v):_}" if abs(v) >= 10_000 else str(int(v))

        return (f"{'(' if self.lo_open else '['}{num(self.lo)}, {num(self.hi)}"
                f"{')' if self.hi_open else ']'}")


def _pos(hi: float) -> Range:
    """``(0, hi]``: a positive quantity."""
    return Range(0, hi, lo_open=True)


RANGES: dict[str, Range] = {
    # Ends are generous: they refuse nonsense (negative sizes, shares above 1, a 100000-dpi map),
    # not unusual but meaningful choices.
    "osm.graph_margin_m": Range(0, 10_000),
    "osm.default_building_levels": _pos(200),
    "osm.min_coverage_share": Range(0, 1),
    "fetch.timeout_s": _pos(86_400),
    "fetch.read_timeout_s": _pos(86_400),
    "fetch.max_size_mb": Range(1, 65_536),
    "fetch.max_retries": Range(0, 20),
    "fetch.backoff_s": Range(0, 900),  # sources/fetch.py gives up on waits above 900 s
    "units.snap_tolerance_m": Range(0, 100),
    "units.sliver_width_m": Range(0, 500),
    "units.min_area_m2": _pos(1e7),
    "units.max_area_m2": _pos(1e8),
    "units.min_water_share": Range(0, 1),
    "packages.built_by_year": Range(1800, 2100),
    "packages.fallback_far": _pos(20),
    "packages.m2_per_household": _pos(1_000),
    "packages.persons_per_household": _pos(20),
    "packages.link_distance_m": _pos(5_000),
    "packages.min_floor_area_m2": Range(0, 1e8),
    "packages.max_floor_area_m2": _pos(1e8),
    "packages.min_households": Range(0, 1_000_000),
    "packages.max_households": _pos(1_000_000),
    "lifecircle.walk_speed_m_s": Range(0.1, 3),
    "lifecircle.elderly_walk_speed_m_s": Range(0.1, 3),
    "lifecircle.max_snap_m": _pos(5_000),
    "lifecircle.entry_buffer_m": Range(0, 500),
    "lifecircle.dedupe_m": Range(0, 1_000),
    "lifecircle.search_limit_m": _pos(50_000),
    "lifecircle.isochrone_buffer_m": _pos(500),
    "lifecircle.categories.*.subtypes.*.distance_m": _pos(10_000),
    "lifecircle.categories.*.subtypes.*.level_minutes": Range(5, 15),  # and one of 5, 10, 15
    "lifecircle.min_component_nodes": Range(1, 100_000),
    "units.min_historic_share": _pos(1),
    "units.min_old_floor_share": _pos(1),
    "output.map_dpi": Range(50, 600),
    "programme.start_year": Range(1990, 2100),
    "programme.years[*].floor_area_cap_m2": _pos(1e9),
    "programme.years[*].households_cap": _pos(1e8),
    "programme.years[*].budget_cap_yuan": _pos(1e13),
    "programme.weight_age": Range(0, 100),
    "programme.weight_floor_area": Range(0, 100),
    "programme.weight_households": Range(0, 100),
    "programme.weight_gaps": Range(0, 100),
    "programme.weight_elevator": Range(0, 100),
    "programme.weight_unmanaged": Range(0, 100),
    "programme.weight_consent": Range(0, 100),
    "programme.weight_colocation": Range(0, 100),
    "programme.colocation_distance_m": Range(0, 10_000),
    "programme.min_consent_share": Range(0, 1),
    "programme.year_discount": Range(0, 1, hi_open=True),
    "programme.cost_basic_yuan_m2": Range(0, 100_000),
    "programme.cost_improvement_yuan_m2": Range(0, 100_000),
    "programme.cost_enhancement_yuan_m2": Range(0, 100_000),
    "programme.elevator_min_levels": Range(2, 30),
    "programme.elevator_max_levels": Range(2, 30),
    "programme.households_per_lift": _pos(1_000),
    "programme.elevator_cost_yuan": Range(0, 1e8),
    "programme.time_limit_s": _pos(3_600),
    "programme.mip_rel_gap": Range(0, 0.5),
    "sites.max_sites": Range(1, 1_000),
    "sites.land_far": _pos(20),
    "sites.share_age_0_3": Range(0, 1),
    "sites.share_age_3_6": Range(0, 1),
    "sites.share_age_60_plus": Range(0, 1),
    "sites.time_limit_s": _pos(86_400),
    "sites.subtypes.*.min_floor_area_m2": Range(0, 1e7),
    "sites.subtypes.*.places_per_facility": Range(0, 100_000),
    "sites.subtypes.*.places_per_1000": Range(0, 1_000_000),
}


def _is_numeric_type(tp: Any) -> bool:
    if get_origin(tp) in (Union, types.UnionType):
        return any(_is_numeric_type(a) for a in get_args(tp) if a is not type(None))
    return tp in (int, float)


def numeric_keys(cls: type | None = None, prefix: str = "") -> list[str]:
    """Every numeric key of the schema as a :data:`RANGES` pattern, e.g. ``osm.graph_margin_m``.

    Tuples (``study_area.bbox``) have checks of their own and are not listed.
    """
    cls = Config if cls is None else cls
    keys: list[str] = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        path = f"{prefix}.{f.name}" if prefix else f.name
        origin, args = get_origin(tp), get_args(tp)
        if _is_numeric_type(tp):
            keys.append(path)
        elif dataclasses.is_dataclass(tp):
            keys += numeric_keys(typing.cast(type, tp), path)
        elif origin is dict and dataclasses.is_dataclass(args[1]):
            keys += numeric_keys(typing.cast(type, args[1]), f"{path}.*")
        elif origin is list and dataclasses.is_dataclass(args[0]):
            keys += numeric_keys(typing.cast(type, args[0]), f"{path}[*]")
    return keys


def _numeric_values(obj: Any, path: str = "", pattern: str = ""
                    ) -> Iterator[tuple[str, str, Any]]:
    """``(key, RANGES pattern, value)`` for every numeric value set in a config."""
    for f in dataclasses.fields(obj):
        if f.name == "source":
            continue
        value = getattr(obj, f.name)
        key = f"{path}.{f.name}" if path else f.name
        pat = f"{pattern}.{f.name}" if pattern else f.name
        if isinstance(value, int | float) and not isinstance(value, bool):
            yield key, pat, value
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            yield from _numeric_values(value, key, pat)
        elif isinstance(value, dict):
            for k, v in value.items():
                if dataclasses.is_dataclass(v) and not isinstance(v, type):
                    yield from _numeric_values(v, f"{key}.{k}", f"{pat}.*")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                if dataclasses.is_dataclass(v) and not isinstance(v, type):
                    yield from _numeric_values(v, f"{key}[{i}]", f"{pat}[*]")


def _check_ranges(cfg: Config, src: str) -> None:
    for key, pattern, value in _numeric_values(cfg):
        if not math.isfinite(value):
            raise ConfigError(f"{src}: {key}", f"{value} is not a finite number",
                              "give a number (see configs/README.md, 'Allowed ranges')")
        rng = RANGES.get(pattern)
        if rng is None:  # pragma: no cover - tests/test_config.py requires a range per key
            raise ConfigError(f"{src}: {key}", "has no allowed range",
                              f"add {pattern!r} to urbanunits.config.RANGES")
        if value not in rng:
            raise ConfigError(f"{src}: {key}", f"{value:g} is out of range",
                              f"use a value in {rng} (see configs/README.md, 'Allowed ranges')")


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


def _renamed_level(sub: Any, key: str) -> Any:
    """Accept the 0.1 key ``level_min`` (renamed ``level_minutes``) for one release."""
    if isinstance(sub, dict) and "level_min" in sub:
        warnings.warn(f"lifecircle.categories.{key}.level_min is renamed level_minutes; the "
                      "old name will stop working in the next release", FutureWarning,
                      stacklevel=2)
        level = sub["level_min"]
        sub = {k: v for k, v in sub.items() if k != "level_min"}
        sub.setdefault("level_minutes", level)
    return sub


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
            if isinstance(table, dict) and isinstance(table.get("subtypes"), dict):
                table = {**table, "subtypes": {
                    sk: _renamed_level(sv, f"{key}.subtypes.{sk}")
                    for sk, sv in table["subtypes"].items()}}
            merged[key] = table
            continue
        base = merged[key]
        for name, value in table.items():
            if name == "subtypes" and isinstance(value, dict):
                subs = dict(base["subtypes"])
                for sk, sv in value.items():
                    sv = _renamed_level(sv, f"{key}.subtypes.{sk}")
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


def _deprecated_packages_keys(data: dict[str, Any], src: str) -> dict[str, Any]:
    """Read ``packages.old_before_year`` (renamed) for one release, as ``built_by_year``.

    ``old_before_year = N`` meant "built before N"; for whole years that is exactly
    ``built_by_year = N - 1``, so an old config keeps its results, and the warning names the new
    key and value to write.
    """
    if "old_before_year" not in data:
        return data
    data = dict(data)
    old = data.pop("old_before_year")
    if isinstance(old, bool) or not isinstance(old, int):
        raise ConfigError(f"{src}: packages.old_before_year", f"expected an integer, got {old!r}",
                          "replace it with packages.built_by_year (built in or before ⇒ old)")
    if "built_by_year" in data:
        raise ConfigError(f"{src}: packages.old_before_year",
                          "is given together with its replacement packages.built_by_year",
                          "delete old_before_year")
    data["built_by_year"] = old - 1
    logger.warning("%s: packages.old_before_year is deprecated and will be removed in the next "
                   "release; read as built_by_year = %d (built in or before ⇒ old) — write "
                   "built_by_year = %d instead", src, old - 1, old - 1)
    return data


def _build(cls: type, data: dict[str, Any], prefix: str, src: str, root: Path) -> Any:
    if cls is LifeCircleConfig and "categories" in data:
        data = {**data, "categories": _merge_categories(data["categories"])}
    if cls is PackagesConfig:
        data = _deprecated_packages_keys(data, src)
    if cls is SitesConfig and isinstance(data.get("subtypes"), dict):
        # A subtype's table changes only the keys it gives; the other defaults stay.
        base = {k: dataclasses.asdict(v) for k, v in default_site_subtypes().items()}
        data = {**data, "subtypes": {**base, **{
            k: ({**base[k], **v} if k in base and isinstance(v, dict) else v)
            for k, v in data["subtypes"].items()}}}
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
    if cfg.study_area.bbox is None and cfg.study_area.boundary is None:
        raise err("study_area", "neither bbox nor boundary is set",
                  "set study_area.bbox = [min_lon, min_lat, max_lon, max_lat]")
    centre = None
    if cfg.study_area.bbox is not None:
        x0, y0, x1, y1 = cfg.study_area.bbox
        if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
            raise err("study_area.bbox", f"{list(cfg.study_area.bbox)} is not "
                      "[min_lon, min_lat, max_lon, max_lat] in WGS84 degrees",
                      "give WGS84 longitude/latitude with min < max")
        # Size first: a country-sized box is the problem, whatever CRS it would be blamed on.
        check_extent(cfg.study_area.bbox, where=f"{src}: study_area.bbox")
        centre = ((x0 + x1) / 2, (y0 + y1) / 2)
    crs = parse_crs(cfg.study_area.crs, where=f"{src}: study_area.crs", near=centre)
    if centre is not None:  # a boundary file is checked when it is read (sources/osm.py)
        check_distortion(crs, *centre, where=f"{src}: study_area.crs")
    _check_ranges(cfg, src)
    for key, val in [("inputs.inventory_coord_system", cfg.inputs.inventory_coord_system),
                     ("inputs.candidate_sites_coord_system",
                      cfg.inputs.candidate_sites_coord_system)]:
        if val not in COORD_SYSTEMS | {UNSET}:
            raise err(key, f"unknown coord_system {val!r}", "use wgs84, gcj02 or bd09")
    if cfg.inputs.subdistricts_encoding:
        import codecs

        try:
            codecs.lookup(cfg.inputs.subdistricts_encoding)
        except LookupError:
            raise err("inputs.subdistricts_encoding",
                      f"unknown encoding {cfg.inputs.subdistricts_encoding!r}",
                      "use e.g. \"GB18030\" (GBK), \"UTF-8\" or \"BIG5\", or leave it unset "
                      "to detect it") from None
    if cfg.inputs.inventory_on_missing_coords not in {"skip", "error"}:
        raise err("inputs.inventory_on_missing_coords",
                  f"{cfg.inputs.inventory_on_missing_coords!r}", "use 'skip' or 'error'")
    if not 0 <= cfg.osm.min_coverage_share <= 1:
        raise err("osm.min_coverage_share", f"{cfg.osm.min_coverage_share:g} is not a share",
                  "use a number from 0 to 1, e.g. 0.8")
    f = cfg.fetch
    if not f.overpass_url.startswith(("http://", "https://")):
        raise err("fetch.overpass_url", f"{f.overpass_url!r} is not an http(s) URL",
                  "use e.g. https://overpass-api.de/api/interpreter")
    # Single-key bounds are in RANGES; what remains here relates keys to each other.
    u = cfg.units
    if not u.min_area_m2 < u.max_area_m2:
        raise err("units.min_area_m2", "must be below units.max_area_m2")
    p = cfg.packages
    if not p.min_floor_area_m2 <= p.max_floor_area_m2:
        raise err("packages.min_floor_area_m2", "must be ≤ packages.max_floor_area_m2")
    if not p.min_households <= p.max_households:
        raise err("packages.min_households", "must be ≤ packages.max_households")
    bad = set(p.hard_barriers) - {"river", "rail", "trunk", "motorway", "primary"}
    if bad:
        raise err("packages.hard_barriers", f"unknown barrier class(es) {sorted(bad)}",
                  "use river, rail, motorway, trunk or primary")
    g = cfg.programme
    if not 1 <= len(g.years) <= 10:
        raise err("programme.years", f"{len(g.years)} years", "give 1 to 10 [[programme.years]] "
                  "tables (three for a rolling three-year library)")
    if g.default_renovation_type not in RENOVATION_TYPES:
        raise err("programme.default_renovation_type", f"unknown type "
                  f"{g.default_renovation_type!r}", "use basic, improvement or enhancement")
    if g.elevator_min_levels > g.elevator_max_levels:
        raise err("programme.elevator_min_levels", "must be ≤ programme.elevator_max_levels")
    if g.solver not in {"milp", "greedy"}:
        raise err("programme.solver", f"unknown solver {g.solver!r}", "use milp or greedy")
    weights = [getattr(g, f.name) for f in dataclasses.fields(g) if f.name.startswith("weight_")]
    if not any(w > 0 for w in weights):
        raise err("programme.weight_age", "every programme.weight_* is 0, so no package could "
                  "be ranked", "give at least one criterion a positive weight")
    lc = cfg.lifecircle
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
            sk = f"lifecircle.categories.{cat_key}.subtypes.{st_key}"
            if st.requirement not in REQUIREMENTS:
                raise err(f"{sk}.requirement", f"unknown value {st.requirement!r}",
                          "use mandatory (GB 50180 ▲), optional (△) or none")
            if st.level_minutes not in (5, 10, 15):
                raise err(f"{sk}.level_minutes", f"{st.level_minutes} is not a life-circle "
                          "level", "use 5, 10 or 15")
            for what in ("name_patterns", "name_exclude"):
                for i, pat in enumerate(getattr(st, what)):
                    try:
                        re.compile(pat)
                    except re.error as exc:
                        raise err(f"{sk}.{what}[{i}]", f"{pat!r} is not a valid regular "
                                  f"expression ({exc})", "fix or remove the pattern") from exc
        if not any(st.requirement == "mandatory" for st in cat.subtypes.values()):
            raise err(f"lifecircle.categories.{cat_key}.subtypes",
                      "no subtype is mandatory, so the category could never be judged",
                      "set requirement = \"mandatory\" on the subtypes the standard requires")
        for i, ff in enumerate(cat.files):
            key = f"lifecircle.categories.{cat_key}.files[{i}]"
            if ff.coord_system not in COORD_SYSTEMS | {UNSET}:
                raise err(f"{key}.coord_system", f"unknown coord_system {ff.coord_system!r}",
                          "use wgs84, gcj02 or bd09")
            if ff.subtype and ff.subtype not in cat.subtypes:
                raise err(f"{key}.subtype", f"{ff.subtype!r} is not a subtype of {cat_key}",
                          f"use one of {sorted(cat.subtypes)}")
    _check_sites(cfg, err)


def _check_sites(cfg: Config, err: Any) -> None:
    """Keys of ``[sites]`` that a range alone cannot check."""
    st = cfg.sites
    bad = sorted(set(st.osm_kinds) - set(OSM_CANDIDATE_KINDS))
    if bad:
        raise err("sites.osm_kinds", f"unknown kind(s) {bad}",
                  f"use {', '.join(OSM_CANDIDATE_KINDS)}")
    w = st.fca_weights
    if not w or any(not (math.isfinite(v) and 0 < v <= 1) for v in w):
        raise err("sites.fca_weights", f"{w} must be one or more weights in (0, 1]",
                  "e.g. [1.0, 0.68, 0.22], or [1.0] for plain 2SFCA")
    known = {s for c in cfg.lifecircle.categories.values() for s in c.subtypes}
    for key, sub in st.subtypes.items():
        if sub.demand_group not in DEMAND_GROUPS:
            raise err(f"sites.subtypes.{key}.demand_group", f"unknown value {sub.demand_group!r}",
                      f"use one of {', '.join(DEMAND_GROUPS)}")
        if key not in known and key not in default_site_subtypes():
            raise err(f"sites.subtypes.{key}", "is no life-circle subtype",
                      f"use one of {sorted(known)}")


def _read_utf8(path: Path) -> str:
    """The config's text; a UTF-8 byte-order mark (Windows Notepad) is dropped, not refused."""
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(path, "the file is UTF-16 (Notepad's 'Unicode'), TOML must be UTF-8",
                          "save the file as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(path, f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}; "
                          "GBK/GB18030 or another local encoding?)",
                          "save the file as UTF-8 (e.g. Notepad: Save As, Encoding: UTF-8)"
                          ) from exc


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
        raw = tomllib.loads(_read_utf8(p))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(p, f"not valid TOML ({exc})", "fix the syntax at that line") from exc
    root = _root_for(p)
    cfg = _absolutize(_build(Config, raw, "", str(p), root), root)
    cfg = dataclasses.replace(cfg, source=p.resolve(), **overrides)
    _check(cfg, str(p))
    return typing.cast(Config, cfg)

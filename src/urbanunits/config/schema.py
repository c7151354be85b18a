"""The config schema: typed, frozen dataclasses of every section, and the shipped defaults.

Field comments become the documentation in ``configs/README.md``; keep them in step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]

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
    def html_path(self) -> Path:
        """The run's HTML map, beside its GeoPackage: ``<output.dir>/<name>/<name>.html``."""
        return self.gpkg_path.with_suffix(".html")

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



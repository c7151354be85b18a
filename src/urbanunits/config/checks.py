"""Config checks: the allowed range of every numeric key, and the rules relating keys.

Every numeric key has its range in :data:`RANGES` (a test fails for a numeric field without one;
``configs/README.md`` lists the same ranges). NaN and infinity are always refused.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin, get_type_hints

from urbanunits.config.schema import (
    DEMAND_GROUPS,
    OSM_CANDIDATE_KINDS,
    RENOVATION_TYPES,
    REQUIREMENTS,
    Config,
    default_site_subtypes,
)
from urbanunits.crs import COORD_SYSTEMS, UNSET, check_distortion, check_extent, parse_crs
from urbanunits.errors import ConfigError

logger = logging.getLogger(__name__)

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


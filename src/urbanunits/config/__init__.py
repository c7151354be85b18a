"""Run configuration: a TOML file loaded into validated, typed, frozen dataclasses.

Every key the code reads is a field of :mod:`urbanunits.config.schema`, documented in
``configs/README.md``. Unknown keys, wrong types and out-of-range values raise
:class:`~urbanunits.errors.ConfigError` naming the key, e.g. ``configs/x.toml: units.min_area_m2:
expected a number, got 'big'``. Every numeric key has its allowed range in :data:`RANGES`
(:mod:`urbanunits.config.checks`; NaN and infinity are always refused); :func:`load_config`
(:mod:`urbanunits.config.load`) reads a file.

The three modules are one concept each: the schema imports neither of the others, the checks
read the schema, and loading uses both.
"""

from __future__ import annotations

from urbanunits.config.checks import (
    RANGES,
    Range,
    numeric_keys,
)
from urbanunits.config.load import (
    load_config,
)
from urbanunits.config.schema import (
    DEMAND_GROUPS,
    OSM_CANDIDATE_KINDS,
    PROJECT_ROOT,
    RENOVATION_TYPES,
    REQUIREMENTS,
    Category,
    Config,
    FacilityFile,
    FetchConfig,
    Inputs,
    LifeCircleConfig,
    OSMConfig,
    Output,
    PackagesConfig,
    ProgrammeConfig,
    SitesConfig,
    SiteSubtype,
    StudyArea,
    Subtype,
    UnitsConfig,
    YearCap,
    default_categories,
    default_config_path,
    default_contradicting_tags,
    default_site_subtypes,
)

__all__ = [
    "DEMAND_GROUPS",
    "OSM_CANDIDATE_KINDS",
    "PROJECT_ROOT",
    "RANGES",
    "RENOVATION_TYPES",
    "REQUIREMENTS",
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
    "default_categories",
    "default_config_path",
    "default_contradicting_tags",
    "default_site_subtypes",
    "load_config",
    "numeric_keys",
]

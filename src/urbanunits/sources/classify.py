"""Which life-circle facility an OSM feature or a named row is: tag rules, names, look-alikes.

A feature is tried against every subtype of every category (a 社区卫生服务中心 with a 日间照料
centre may serve two categories). Within a category:

1. **Exclusions first.** A subtype never takes a feature that has one of its ``exclude_tags``
   (``amenity=dentist`` is no health station) or whose name matches one of its
   ``name_exclude`` patterns (宠物医院 is no hospital, 全家福酒家 no FamilyMart).
2. **Specific names beat generic tags.** A name pattern decides when one matches, unless the
   feature carries one of the ``contradicting_tags`` (``amenity=restaurant``…) that its subtype's
   own tag rules do not ask for: an explicit tag saying what a thing is is never overruled by a
   name. Among several subtypes whose patterns match, the longest matched text wins (社区医院
   beats 医院), then config order.
3. **Tag rules** decide the rest: ``osm_tags`` (any one tag) or ``osm_rules`` (all tags of one
   rule, e.g. ``social_facility=day_care`` *and* ``social_facility:for=senior``). In a rule the
   value ``"*"`` means any value and ``""`` means the tag is absent.

Every classified row records ``matched_by``: ``name:<pattern>`` or ``tag:<key>=<value>[&...]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd

from urbanunits.config import Category, Subtype

__all__ = ["classify_facilities", "tag_rules"]

_COLUMNS = ["category", "subtype", "name", "source", "osm_id", "matched_by"]


def tag_rules(st: Subtype) -> list[dict[str, list[str]]]:
    """A subtype's tag conditions as a list of AND-rules (``osm_tags`` become one-tag rules)."""
    return [{k: list(v)} for k, v in st.osm_tags.items()] + [dict(r) for r in st.osm_rules]


def _col(df: pd.DataFrame, key: str) -> pd.Series:
    if key in df.columns:
        return df[key].where(df[key].notna() & (df[key].astype(str) != ""), None)
    return pd.Series([None] * len(df), index=df.index, dtype="object")


def _cond(df: pd.DataFrame, key: str, values: Sequence[str]) -> pd.Series:
    c = _col(df, key)
    present = c.notna()
    hit = pd.Series(False, index=df.index)
    if "*" in values:
        hit |= present
    if "" in values:
        hit |= ~present
    named = [v for v in values if v not in ("*", "")]
    if named:
        # A value list such as "senior;disabled" counts when one of its parts is wanted.
        parts = c.fillna("").astype(str).str.split(";")
        hit |= parts.map(lambda xs: any(x.strip() in named for x in xs)).astype(bool)
    return hit


def _rule_hits(df: pd.DataFrame, st: Subtype) -> tuple[pd.Series, pd.Series]:
    """Whether any tag rule holds, and the text of the first rule that does."""
    hit = pd.Series(False, index=df.index)
    how = pd.Series([None] * len(df), index=df.index, dtype="object")
    for rule in tag_rules(st):
        ok = pd.Series(True, index=df.index)
        for key, values in rule.items():
            ok &= _cond(df, key, values)
        new = ok & ~hit
        if new.any():
            vals = _col(df, next(iter(rule)))
            text = "&".join(f"{k}={'|'.join(v)}" for k, v in rule.items())
            first_key = next(iter(rule))
            how[new] = [f"tag:{first_key}={v}" if len(rule) == 1 else f"tag:{text}"
                        for v in vals[new]]
        hit |= ok
    return hit, how


def _any_tag(df: pd.DataFrame, tags: Mapping[str, Sequence[str]]) -> pd.Series:
    out = pd.Series(False, index=df.index)
    for key, values in tags.items():
        out |= _cond(df, key, [v for v in values if v != ""])
    return out


def _longest_match(names: pd.Series, patterns: Sequence[str]) -> tuple[pd.Series, pd.Series]:
    """Length of the longest match of any pattern per name, and that pattern."""
    length = pd.Series(0, index=names.index, dtype="int64")
    which = pd.Series([None] * len(names), index=names.index, dtype="object")
    for pat in patterns:
        found = names.str.extract(f"({pat})", flags=re.IGNORECASE, expand=False)
        n = found.fillna("").str.len()
        # An empty match (a pattern such as "^") is no evidence.
        better = n > length
        length = length.where(~better, n)
        which[better] = pat
    return length, which


def classify_facilities(pois: gpd.GeoDataFrame | pd.DataFrame,
                        categories: Mapping[str, Category], *,
                        contradicting_tags: Mapping[str, Sequence[str]] | None = None,
                        source: str = "osm") -> gpd.GeoDataFrame:
    """Classify points of interest into life-circle categories by tags and name patterns.

    Parameters
    ----------
    pois
        Features with ``name`` and any OSM tag columns (``amenity``, ``shop``, ``healthcare``,
        ``social_facility``, ``social_facility:for``…) and ``osm_id``; a geometry column when
        it is a GeoDataFrame (kept as is, any CRS).
    categories
        ``config.lifecircle.categories``.
    contradicting_tags
        ``config.lifecircle.contradicting_tags``: tags that stop a name-pattern match unless the
        subtype's own tag rules ask for them. None: no such tags.
    source
        Value of the ``source`` column.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per feature × category it belongs to: ``category``, ``subtype``, ``name``,
        ``source``, ``osm_id``, ``matched_by`` (the rule), geometry.
    """
    contradict = dict(contradicting_tags or {})
    names = _col(pois, "name").fillna("").astype(str)
    geom = pois.geometry if isinstance(pois, gpd.GeoDataFrame) else None
    crs = pois.crs if isinstance(pois, gpd.GeoDataFrame) else None
    frames = []
    for cat_key, cat in categories.items():
        best_len = pd.Series(0, index=pois.index, dtype="int64")
        assigned = pd.Series([None] * len(pois), index=pois.index, dtype="object")
        how = pd.Series([None] * len(pois), index=pois.index, dtype="object")
        tag_hit: dict[str, tuple[pd.Series, pd.Series]] = {}
        blocked: dict[str, pd.Series] = {}
        for st_key, st in cat.subtypes.items():
            excluded = _any_tag(pois, st.exclude_tags)
            if st.name_exclude:
                rx = "|".join(f"(?:{p})" for p in st.name_exclude)
                excluded |= names.str.contains(rx, regex=True, flags=re.IGNORECASE)
            blocked[st_key] = excluded
            tag_hit[st_key] = _rule_hits(pois, st)
            if not st.name_patterns:
                continue
            own_keys = {k for rule in tag_rules(st) for k in rule}
            foreign = {k: v for k, v in contradict.items() if k not in own_keys}
            contra = _any_tag(pois, foreign) & ~tag_hit[st_key][0]
            n, pat = _longest_match(names, st.name_patterns)
            better = (n > best_len) & ~excluded & ~contra
            best_len = best_len.where(~better, n)
            assigned[better] = st_key
            how[better] = "name:" + pat[better].astype(str)
        for st_key in cat.subtypes:
            hit, rule = tag_hit[st_key]
            new = hit & ~blocked[st_key] & assigned.isna()
            assigned[new] = st_key
            how[new] = rule[new]
        m = assigned.notna().to_numpy()
        if m.any():
            frames.append(pd.DataFrame({
                "category": cat_key, "subtype": assigned[m].to_numpy(),
                "name": _col(pois, "name")[m].to_numpy(), "source": source,
                "osm_id": (pois["osm_id"].to_numpy()[m] if "osm_id" in pois.columns
                           else np.flatnonzero(m)),
                "matched_by": how[m].to_numpy(),
                "geometry": geom.to_numpy()[m] if geom is not None else None}))
    if not frames:
        empty = {c: pd.Series(dtype="object") for c in _COLUMNS}
        return gpd.GeoDataFrame(empty, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=crs)

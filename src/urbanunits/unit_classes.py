"""Update units, step 7: land-use shares, counts and the class rules of units.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from urbanunits.catalog import CLASS_COLORS, CLASS_LABELS
from urbanunits.config import UnitsConfig
from urbanunits.crs import require_projected
from urbanunits.floor_area import estimate_floor_area
from urbanunits.unit_lines import _repair

__all__ = [
    "CLASS_COLORS",
    "CLASS_LABELS",
    "ClassRules",
    "class_counts_line",
    "classify_units",
    "reclassify_units",
    "recount_old_communities",
    "residential_floor_area",
]

logger = logging.getLogger(__name__)

_SHARE_CLASSES = ("residential", "commercial", "industrial", "green", "public")
_DOMINANT_TO_CLASS = {"residential": "residential_upgrading", "commercial": "commercial_mixed",
                      "industrial": "industrial_transformation", "green": "green_open_space",
                      "public": "public_service"}


@dataclass(frozen=True)
class ClassRules:
    """Thresholds of the unit-class rules (see :func:`reclassify_units`).

    Attributes
    ----------
    min_share
        A land use must cover at least this share of a unit to give it its class.
    old_residential_share
        Residential land share needed, besides ``min_old_floor_share``, for old-community
        renewal.
    min_historic_share
        Share of the unit that designated conservation areas must cover for historic
        conservation (``units.min_historic_share``).
    min_old_floor_share
        Share of the unit's residential floor area that old communities must hold for
        old-community renewal (``units.min_old_floor_share``).
    """

    min_share: float = 0.3
    old_residential_share: float = 0.2
    min_historic_share: float = 0.25
    min_old_floor_share: float = 0.5

    @classmethod
    def from_config(cls, units_cfg: UnitsConfig) -> ClassRules:
        """The rules with the thresholds the config sets (``[units]``)."""
        return cls(min_historic_share=units_cfg.min_historic_share,
                   min_old_floor_share=units_cfg.min_old_floor_share)


def _num(df: pd.DataFrame, name: str, default: float = 0.0) -> NDArray[np.float64]:
    if name not in df.columns:
        return np.full(len(df), default)
    return np.nan_to_num(df[name].to_numpy(dtype=float), nan=default)


def reclassify_units(units: gpd.GeoDataFrame, *, rules: ClassRules = ClassRules()
                     ) -> gpd.GeoDataFrame:
    """Apply the class rules to units that already carry shares and counts.

    Rules, first match wins:

    1. ``historic_conservation`` (历史风貌保护): designated conservation areas cover at least
       ``min_historic_share`` of the unit (``historic_share``). Historic points and small
       monuments (``n_historic_points``) never decide the class.
    2. ``old_community_renewal`` (老旧小区改造): old communities hold at least
       ``min_old_floor_share`` of the unit's residential floor area (``old_floor_share`` =
       ``old_floor_area_m2`` / ``residential_floor_area_m2``, set here) and
       ``share_residential`` ≥ ``old_residential_share``. Old communities are only known after
       the packages stage, which fills ``n_old_communities``/``old_floor_area_m2`` and calls this
       function again.
    3. The land use with the largest share, if that share is ≥ ``min_share``: residential →
       ``residential_upgrading`` (居住品质提升), commercial → ``commercial_mixed``
       (商业商务综合), industrial → ``industrial_transformation`` (产业转型), public →
       ``public_service`` (公共服务), green → ``green_open_space`` (绿地开敞空间).
    4. Otherwise ``general_renewal`` (综合更新): OSM land use too sparse to say more.

    Parameters
    ----------
    units
        Units with ``share_*``, ``historic_share``, ``n_old_communities``,
        ``old_floor_area_m2`` and ``residential_floor_area_m2`` columns (missing ones count as
        0; without ``residential_floor_area_m2`` the old communities' floor area is all the
        residential floor area there is).
    rules
        Thresholds.

    Returns
    -------
    geopandas.GeoDataFrame
        A copy with ``old_floor_share``, ``unit_class`` and ``class_label`` set.
    """
    out = units.copy()
    shares = np.column_stack([_num(out, f"share_{c}") for c in _SHARE_CLASSES])
    dom = shares.argmax(axis=1) if len(out) else np.zeros(0, dtype=int)
    dom_share = shares.max(axis=1) if len(out) else np.zeros(0)
    cls = np.array([_DOMINANT_TO_CLASS[_SHARE_CLASSES[d]] for d in dom], dtype=object)
    cls[dom_share < rules.min_share] = "general_renewal"
    old = _num(out, "old_floor_area_m2")
    # The old communities are part of the housing: their floor area (an inventory's figure may
    # exceed the OSM estimate) bounds the residential floor area from below.
    total = np.maximum(_num(out, "residential_floor_area_m2"), old)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["old_floor_share"] = np.round(np.where(total > 0, old / np.where(total > 0, total, 1),
                                                   0.0), 4)
    n_old = _num(out, "n_old_communities")
    cls[(n_old >= 1) & (out["old_floor_share"].to_numpy() >= rules.min_old_floor_share)
        & (_num(out, "share_residential") >= rules.old_residential_share)] = \
        "old_community_renewal"
    cls[_num(out, "historic_share") >= rules.min_historic_share] = "historic_conservation"
    out["unit_class"] = cls
    out["class_label"] = [CLASS_LABELS[c] for c in cls]
    return out


def class_counts_line(units: pd.DataFrame) -> str:
    """One summary line: how many units of each class (most frequent first)."""
    counts = units["unit_class"].value_counts()
    return f"classes ({len(counts)}): " + ", ".join(
        f"{CLASS_LABELS.get(c, c)} {n}" for c, n in counts.items())


def _union_parts(geoms: Any) -> NDArray[Any]:
    """The polygons of the union of ``geoms``, unioning only the ones that meet.

    The same polygons as ``get_parts(union_all(geoms))``, without GEOS's cascaded union over
    thousands of disjoint polygons (which grows faster than their number): polygons that
    intersect no other (and are valid) are kept as they are, and each group of meeting ones is
    unioned on its own.
    """
    g = np.asarray(geoms, dtype=object)
    g = g[~shapely.is_missing(g)]
    g = g[~shapely.is_empty(g)]
    n = len(g)
    if n == 0:
        return np.empty(0, dtype=object)
    p, q = shapely.STRtree(g).query(g, predicate="intersects")
    pair = p < q
    m = coo_matrix((np.ones(int(pair.sum())), (p[pair], q[pair])), shape=(n, n))
    _, comp = connected_components(m, directed=False)
    size = np.bincount(comp)
    alone = (size[comp] == 1) & shapely.is_valid(g)
    out = [shapely.get_parts(g[alone])]
    rest = np.flatnonzero(~alone)
    if len(rest):
        order = rest[np.argsort(comp[rest], kind="stable")]
        cuts = np.flatnonzero(np.diff(comp[order])) + 1
        groups = np.split(order, cuts)
        out.append(shapely.get_parts(np.array([shapely.union_all(g[k]) for k in groups],
                                              dtype=object)))
    return np.concatenate(out)


def _overlap_share(units: gpd.GeoDataFrame, polys: gpd.GeoDataFrame) -> NDArray[np.float64]:
    out = np.zeros(len(units))
    if polys.empty or units.empty:
        return out
    parts = _union_parts(polys.geometry.values)
    p, q = shapely.STRtree(parts).query(units.geometry.values, predicate="intersects")
    np.add.at(out, p, shapely.area(shapely.intersection(units.geometry.values[p], parts[q])))
    return np.clip(out / units.geometry.area.to_numpy(), 0.0, 1.0)


def _count_in(units: gpd.GeoDataFrame, features: gpd.GeoDataFrame | None) -> NDArray[np.int64]:
    if features is None or features.empty or units.empty:
        return np.zeros(len(units), dtype=np.int64)
    pts = shapely.point_on_surface(features.geometry.values)
    _, q = shapely.STRtree(units.geometry.values).query(pts, predicate="within")
    return np.bincount(q, minlength=len(units)).astype(np.int64)


def _polygon_only(geoms: NDArray[Any]) -> NDArray[Any]:
    """The polygonal part of each geometry (intersections may add stray lines and points)."""
    out = geoms.copy()
    mixed = np.flatnonzero(shapely.get_type_id(geoms) == 7)
    for k in mixed:
        parts = [g for g in shapely.get_parts(geoms[k]) if shapely.get_type_id(g) in (3, 6)]
        out[k] = shapely.union_all(parts) if parts else shapely.Polygon()
    return out


def residential_floor_area(units: gpd.GeoDataFrame, landuse: gpd.GeoDataFrame | None,
                           buildings: gpd.GeoDataFrame | None, *, fallback_far: float
                           ) -> NDArray[np.float64]:
    """Gross residential floor area of each unit (m²).

    The residential land (``luclass == "residential"``, overlapping polygons counted once) is cut
    by the units; each piece counts as a community does in
    :func:`urbanunits.floor_area.estimate_floor_area`: the building footprints inside it × their
    levels, or, where no footprint is mapped, its area × ``fallback_far``.

    Parameters
    ----------
    units
        Unit polygons, metric CRS.
    landuse
        Land-use polygons with ``luclass``, same CRS.
    buildings
        Footprints with ``levels`` and ``levels_tagged``, same CRS.
    fallback_far
        Floor-area ratio of residential land with no mapped footprint.

    Returns
    -------
    numpy.ndarray
        Floor area per unit, aligned with ``units``.
    """

    out = np.zeros(len(units))
    if landuse is None or landuse.empty or units.empty:
        return out
    res = landuse[landuse["luclass"] == "residential"]
    if res.empty:
        return out
    parts = _union_parts(res.geometry.values)
    ui, pi = shapely.STRtree(parts).query(units.geometry.values, predicate="intersects")
    pieces = _polygon_only(shapely.intersection(units.geometry.values[ui], parts[pi]))
    keep = shapely.area(pieces) > 0
    if not keep.any():
        return out
    frame = gpd.GeoDataFrame(geometry=pieces[keep], crs=units.crs)
    blds = buildings if buildings is not None and "levels_tagged" in buildings.columns else \
        gpd.GeoDataFrame({"levels": [], "levels_tagged": []}, geometry=[], crs=units.crs)
    est = estimate_floor_area(frame, blds, fallback_far=fallback_far)
    np.add.at(out, ui[keep], np.nan_to_num(est["floor_area_m2"].to_numpy(dtype=float)))
    return out


def classify_units(units: gpd.GeoDataFrame, *, landuse: gpd.GeoDataFrame | None = None,
                   residential: gpd.GeoDataFrame | None = None,
                   historic: gpd.GeoDataFrame | None = None,
                   heritage_areas: gpd.GeoDataFrame | None = None,
                   buildings: gpd.GeoDataFrame | None = None, fallback_far: float = 1.5,
                   rules: ClassRules = ClassRules()) -> gpd.GeoDataFrame:
    """Land-use shares, counts and the unit class (rules in :func:`reclassify_units`).

    Parameters
    ----------
    units
        Unit polygons in a metric CRS.
    landuse
        Polygons with ``luclass`` in residential, commercial, industrial, green, public
        (:class:`~urbanunits.layers.OSMLayers` ``landuse``).
    residential
        Named communities; counted by a point on their surface.
    historic
        Historic/heritage features (points or polygons) with a ``designated`` column
        (:class:`~urbanunits.layers.OSMLayers` ``historic``): designated areas give
        ``historic_share``, the rest (or all, without the column) are counted by a point on their
        surface.
    heritage_areas
        More designated conservation areas (``inputs.heritage_areas``), polygons.
    buildings
        Footprints with ``levels`` and ``levels_tagged``, for the residential floor area
        (:func:`residential_floor_area`).
    fallback_far
        Floor-area ratio of residential land with no mapped footprint
        (``packages.fallback_far``).
    rules
        Class thresholds.

    Returns
    -------
    geopandas.GeoDataFrame
        A copy with ``share_residential``, ``share_commercial``, ``share_industrial``,
        ``share_green``, ``share_public`` (0–1 of the unit's area; a landuse polygon nested in
        another counts for both, so shares may sum above 1), ``historic_share`` (0–1 of the
        unit covered by designated conservation areas), ``n_residential_areas``,
        ``n_historic_points``, ``residential_floor_area_m2``, ``n_old_communities`` (0),
        ``old_floor_area_m2`` (0.0), ``old_floor_share``, ``unit_class`` and ``class_label``.
    """
    require_projected(units, "classify_units")
    out = units.copy()

    def to_units(gdf: gpd.GeoDataFrame | None, what: str) -> gpd.GeoDataFrame | None:
        if gdf is None or gdf.empty:
            return None
        return _repair(gdf.to_crs(units.crs) if gdf.crs != units.crs else gdf, what)

    lu = to_units(landuse, "land-use polygons")
    for c in _SHARE_CLASSES:
        sel = lu[lu["luclass"] == c] if lu is not None else None
        out[f"share_{c}"] = np.round(_overlap_share(out, sel), 4) if sel is not None \
            else np.zeros(len(out))
    hist = to_units(historic, "historic features")
    areas = [] if heritage_areas is None else [heritage_areas]
    if hist is not None:
        # Only designated polygons measure; points and undesignated monuments are counted.
        flag = (hist["designated"].fillna(False).astype(bool).to_numpy()
                if "designated" in hist.columns else np.zeros(len(hist), dtype=bool))
        flag = flag & np.isin(shapely.get_type_id(hist.geometry.values), [3, 6])
        areas.append(hist[flag])
        hist = hist[~flag]
    parts = [a.to_crs(units.crs)[["geometry"]] for a in areas if not a.empty]
    hareas = to_units(gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=units.crs),
                      "heritage areas") if parts else None
    out["historic_share"] = (np.round(_overlap_share(out, hareas), 4) if hareas is not None
                             else np.zeros(len(out)))
    out["n_residential_areas"] = _count_in(out, residential)
    out["n_historic_points"] = _count_in(out, hist)
    b = buildings.to_crs(units.crs) if buildings is not None and not buildings.empty \
        and buildings.crs != units.crs else buildings
    out["residential_floor_area_m2"] = np.round(
        residential_floor_area(out, lu, b, fallback_far=fallback_far), 0)
    if "n_old_communities" not in out.columns:
        out["n_old_communities"] = np.zeros(len(out), dtype=np.int64)
    if "old_floor_area_m2" not in out.columns:
        out["old_floor_area_m2"] = np.zeros(len(out), dtype=float)
    return reclassify_units(out, rules=rules)


def recount_old_communities(units: gpd.GeoDataFrame, communities: pd.DataFrame, *,
                            rules: ClassRules = ClassRules()) -> gpd.GeoDataFrame:
    """Count the packages stage's communities into the units and re-apply the class rules.

    Parameters
    ----------
    units
        Update units with ``unit_id`` and the columns :func:`classify_units` adds.
    communities
        Old and new communities with ``unit_id``, ``is_old`` and ``floor_area_m2``
        (:func:`urbanunits.packages.build_inventory`; ``unit_id`` None outside every unit).
    rules
        Class thresholds (:meth:`ClassRules.from_config`).

    Returns
    -------
    geopandas.GeoDataFrame
        A copy with ``n_old_communities``, ``old_floor_area_m2`` (sums over the old
        communities in each unit) and ``residential_floor_area_m2`` (the larger of the
        land-use estimate and the communities' total, so that an inventory's floor areas are
        never outweighed by a missing OSM estimate), then the classes.
    """
    out = units.copy()
    comm = communities[communities["unit_id"].notna()]
    floor = comm["floor_area_m2"].astype(float).fillna(0.0)
    old = comm["is_old"].astype(bool)
    total = floor.groupby(comm["unit_id"]).sum()
    old_floor = floor[old].groupby(comm.loc[old, "unit_id"]).sum()
    n_old = old[old].groupby(comm.loc[old, "unit_id"]).size()
    ids = out["unit_id"]
    out["n_old_communities"] = ids.map(n_old).fillna(0).astype(np.int64).to_numpy()
    out["old_floor_area_m2"] = ids.map(old_floor).fillna(0.0).astype(float).to_numpy()
    own = _num(out, "residential_floor_area_m2")
    out["residential_floor_area_m2"] = np.maximum(
        own, ids.map(total).fillna(0.0).astype(float).to_numpy()).round(0)
    return reclassify_units(out, rules=rules)

"""Update units (更新单元): barrier lines → faces → blocks → units, with classes and stable ids.

Method
------
1. **Lines.** Barrier lines are the configured road classes, surface rail, rivers/canals, the
   outlines of water bodies of at least ``min_area_m2`` (smaller ponds stay inside their block),
   sub-district (街道) boundaries and the study-area outline. Tunnels (``is_tunnel``, as the
   ingest reads the tag: :mod:`urbanunits.sources.tags`) are not barriers. Bridge spans over
   water are cut away, so a bridge never splits the water it crosses; the river itself still
   separates its banks. Minor roads of the ``split_highways`` classes (tertiary, then
   residential) are added as *split lines*: they only cut blocks that are too large.
2. **Faces.** A dangling end of a line that stops within ``snap_tolerance_m`` of another line
   is extended to it (lines that "almost meet"); one within max(50 m, 4 × ``snap_tolerance_m``)
   of the study-area edge is extended to the edge, since extracts cut roads there. All lines are
   then noded together with snap rounding on a 1 cm grid and polygonized into the finest faces
   (*atoms*); dangles that still lead nowhere are ignored by the polygonizer. Shared-edge
   lengths between atoms, and which kind of line runs along each shared edge, come from matching
   the atoms' boundary segments: all atoms come from one noding, so neighbours share identical
   vertices and the match is exact and vectorised (no pairwise geometry work).
3. **Water.** Atoms that are at least ``min_water_share`` water are dropped.
4. **Blocks.** Atoms joined across edges that lie on no barrier line form barrier-bounded blocks
   (connected components, :func:`scipy.sparse.csgraph.connected_components`).
5. **Split.** A block above ``max_area_m2`` is cut along the first split class, then the first
   two, and so on; at each level tiny pieces are merged back (step 6 within the block). The first
   level whose parts are all within bounds is used; failing that, the level that puts the most
   area within bounds; failing that, the block stays whole and is reported.
6. **Merge.** Blocks below ``min_area_m2`` or thinner than ``sliver_width_m`` (2·area/perimeter,
   about the width of a long strip: dual-carriageway medians, corner triangles) are merged,
   smallest first, into the neighbour with the longest shared edge in the same sub-district. A
   small block merges only across a road and only if the result stays within ``max_area_m2``; a
   sliver joins the block it runs along whatever the size, and crosses rail or water only when
   it has no road edge. Sub-district boundaries are never crossed. Blocks that cannot merge stay
   as units and are reported with the reason.
7. **Attributes, classes and ids.** See :func:`classify_units` for the class rules and
   :func:`assign_unit_ids` for the id scheme.

The steps live in their own modules: lines (1) in :mod:`urbanunits.unit_lines`, faces and
their adjacency (2–3) in :mod:`urbanunits.unit_faces`, blocks, splitting and merging (4–6) in
:mod:`urbanunits.unit_regions`, classes in :mod:`urbanunits.unit_classes` and ids in
:mod:`urbanunits.unit_ids`. This module runs them (:func:`update_units`) and re-exports their
public names, so ``from urbanunits.units import X`` keeps working.

A study area with no barrier line inside it is a single block (then split along minor roads if it
is too large); a warning says so. A study area that is all water is a :class:`DataError`.

All geometry is in the run's projected, metric CRS (metres, m²).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from urbanunits._gc import fewer_gc_sweeps
from urbanunits.config import Config, PackagesConfig, UnitsConfig
from urbanunits.crs import require_projected
from urbanunits.errors import DataError
from urbanunits.layers import OSMLayers
from urbanunits.unit_classes import (
    _SHARE_CLASSES,
    CLASS_COLORS,
    CLASS_LABELS,
    ClassRules,
    class_counts_line,
    classify_units,
    reclassify_units,
    recount_old_communities,
    residential_floor_area,
)
from urbanunits.unit_faces import (
    assign_subdistricts,
    face_adjacency,
    polygonize_blocks,
    water_share,
)
from urbanunits.unit_ids import assign_unit_ids
from urbanunits.unit_lines import (
    _GRID_M,
    HARD_KINDS,
    _empty_lines,
    _repair,
    _study_geom,
    barrier_lines,
    prepare_lines,
    prepare_subdistricts,
    split_lines,
    subdistrict_lines,
)
from urbanunits.unit_regions import _aggregate, _thin, label_blocks, merge_small, split_large

__all__ = [
    "CLASS_COLORS",
    "CLASS_LABELS",
    "HARD_KINDS",
    "ClassRules",
    "UnitsResult",
    "assign_subdistricts",
    "assign_unit_ids",
    "barrier_lines",
    "class_counts_line",
    "classify_units",
    "face_adjacency",
    "label_blocks",
    "merge_small",
    "polygonize_blocks",
    "prepare_lines",
    "prepare_subdistricts",
    "reclassify_units",
    "recount_old_communities",
    "residential_floor_area",
    "split_large",
    "split_lines",
    "subdistrict_lines",
    "update_units",
    "water_share",
]

logger = logging.getLogger(__name__)


@dataclass
class UnitsResult:
    """What :func:`update_units` produced.

    Attributes
    ----------
    units
        Layer ``update_units``: one row per unit (see :func:`update_units`).
    blocks
        Layer ``blocks``: the barrier-bounded blocks (or their parts, where a block was split)
        that units are made of.
    report
        Units outside the size bounds: ``unit_id``, ``subdistrict``, ``area_m2``,
        ``size_status``, ``reason``.
    barriers
        The prepared lines (barriers, split roads, sub-district and study-area outlines,
        connectors), for maps and checks.
    min_area_m2, max_area_m2
        The size bounds used.
    timings
        Seconds per step.
    """

    units: gpd.GeoDataFrame
    blocks: gpd.GeoDataFrame
    report: pd.DataFrame
    barriers: gpd.GeoDataFrame
    min_area_m2: float
    max_area_m2: float
    timings: dict[str, float] = field(default_factory=dict)

    def share_within_bounds(self) -> float:
        """Share (0–1) of units whose area lies within the bounds."""
        if self.units.empty:
            return 0.0
        return float((self.units["size_status"] == "within").mean())

    def summary_lines(self) -> list[str]:
        """Counts, classes, share within bounds and out-of-bound reasons, for the terminal."""
        u = self.units
        n_sd = u["subdistrict"].nunique(dropna=True)
        lines = [f"units: {len(u)}" + (f" in {n_sd} sub-districts" if n_sd else "")
                 + f", from {len(self.blocks)} blocks; land area {u['area_m2'].sum() / 1e4:.1f} ha"]
        lines.append(class_counts_line(u))
        n_ok = int((u["size_status"] == "within").sum())
        lines.append(f"within {self.min_area_m2 / 1e4:g}–{self.max_area_m2 / 1e4:g} ha: "
                     f"{n_ok} of {len(u)} ({100 * self.share_within_bounds():.1f} %)")
        for r in self.report.itertuples(index=False):
            lines.append(f"  {r.unit_id}: {r.area_m2 / 1e4:.2f} ha, {r.size_status} — {r.reason}")
        return lines


def _small_reasons(units: gpd.GeoDataFrame, adj: pd.DataFrame, *, max_area_m2: float
                   ) -> list[str]:
    """Why each unit below the minimum could not merge (post hoc, from unit adjacency)."""
    sd = units["subdistrict"].astype("object").fillna("\0none").to_numpy()
    area = units["area_m2"].to_numpy()
    nbrs: dict[int, list[tuple[int, float, float]]] = {}
    for i, j, ln, hd in adj[["i", "j", "length_m", "hard_m"]].itertuples(index=False):
        nbrs.setdefault(int(i), []).append((int(j), ln, hd))
        nbrs.setdefault(int(j), []).append((int(i), ln, hd))
    out = []
    for k in range(len(units)):
        nb = nbrs.get(k, [])
        same = [(j, ln, hd) for j, ln, hd in nb if sd[j] == sd[k]]
        if not nb:
            out.append("isolated: bounded only by water, the study-area edge or dropped faces")
        elif not same:
            out.append("its only neighbours lie in other sub-districts")
        elif all(ln - hd <= 0 for _, ln, hd in same):
            out.append("separated from its neighbours by river, rail or water")
        elif all(area[k] + area[j] > max_area_m2 for j, ln, hd in same if ln - hd > 0):
            out.append("merging with any neighbour would exceed the maximum area")
        else:
            out.append("not merged")
    return out


def update_units(layers: OSMLayers, options: UnitsConfig | Config, *,
                 subdistricts: gpd.GeoDataFrame | None = None,
                 heritage_areas: gpd.GeoDataFrame | None = None,
                 rules: ClassRules | None = None,
                 fallback_far: float | None = None) -> UnitsResult:
    """Divide the study area into update units (更新单元).

    See the module docstring for the method.

    Parameters
    ----------
    layers
        Parsed OSM layers (metric CRS).
    options
        The ``[units]`` section (:class:`~urbanunits.config.UnitsConfig`), or the whole run
        configuration, whose ``units`` section is used (as notebooks call it).
    subdistricts
        Sub-district polygons (``subdistrict`` or ``name`` column; any CRS, re-projected).
        Units never cross their boundaries and merge only within one sub-district.
    heritage_areas
        Designated conservation areas besides OSM's (``inputs.heritage_areas``, read by
        :func:`urbanunits.sources.heritage.read_heritage_areas`).
    rules
        Unit-class thresholds (default: :meth:`ClassRules.from_config` of the units section).
    fallback_far
        Floor-area ratio of residential land with no mapped footprint, for the residential
        floor area (default: ``packages.fallback_far`` of a whole configuration, else that
        key's default).

    Returns
    -------
    UnitsResult
        ``units`` columns: ``unit_id``, ``subdistrict``, ``area_m2``, ``size_status``
        (``within``, ``below_min`` or ``above_max``), ``size_note`` (why a unit is out of
        bounds, else ""), ``n_blocks``, ``share_residential``,
        ``share_commercial``, ``share_industrial``, ``share_green``, ``share_public``,
        ``historic_share``, ``n_residential_areas``, ``n_historic_points``,
        ``residential_floor_area_m2``, ``n_old_communities``, ``old_floor_area_m2``,
        ``old_floor_share``, ``unit_class``, ``class_label``, geometry (see
        :func:`classify_units`). ``blocks`` columns: ``block_id``,
        ``unit_id``, ``subdistrict``, ``area_m2``, ``origin``, ``sliver``, geometry.
    """
    with fewer_gc_sweeps():
        return _update_units(layers, options, subdistricts=subdistricts,
                             heritage_areas=heritage_areas, rules=rules, fallback_far=fallback_far)


def _update_units(layers: OSMLayers, options: UnitsConfig | Config, *,
                  subdistricts: gpd.GeoDataFrame | None, heritage_areas: gpd.GeoDataFrame | None,
                  rules: ClassRules | None, fallback_far: float | None) -> UnitsResult:
    if isinstance(options, Config):
        u = options.units
        far = options.packages.fallback_far if fallback_far is None else fallback_far
    else:
        u = options
        far = PackagesConfig().fallback_far if fallback_far is None else fallback_far
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def tick(step: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[step] = now - t
        t = now

    require_projected(layers.study_area, "update_units")
    crs = layers.study_area.crs
    area = _study_geom(layers.study_area)
    if area is None or area.is_empty:
        raise DataError("study area", "is empty", "check study_area in the config")
    sd = prepare_subdistricts(subdistricts, crs=crs, study_area=area)
    # Repair input polygons once (counted in the log), not in every helper that reads them.
    layers = dataclasses.replace(layers, water=_repair(layers.water, "water polygons"),
                                 landuse=_repair(layers.landuse, "land-use polygons"))

    bar = barrier_lines(layers, highways=u.barrier_highways, railways=u.barrier_railways,
                        waterways=u.barrier_waterways, water_edges=u.water_edges,
                        min_water_body_m2=u.min_area_m2)
    n_inside = int(shapely.intersects(bar.geometry.values, area).sum()) if len(bar) else 0
    if n_inside == 0:
        logger.warning("no barrier lines (%s) inside the study area: it is one block",
                       ", ".join([*u.barrier_highways[:3], "..."]))
    spl = split_lines(layers, split_highways=u.split_highways)
    parts = [f for f in (bar, spl, subdistrict_lines(sd)) if not f.empty]
    raw = (gpd.GeoDataFrame(pd.concat([f.set_crs(crs, allow_override=True) for f in parts],
                                      ignore_index=True), crs=crs)
           if parts else _empty_lines(crs))
    # OSM ingest keeps lines up to this far beyond the study area, so a line that stops this
    # close to the edge was cut by the extract rather than ending there.
    edge_snap_m = max(50.0, 4 * u.snap_tolerance_m)
    lines = prepare_lines(raw, area, snap_tolerance_m=u.snap_tolerance_m, edge_snap_m=edge_snap_m)
    tick("lines")

    atoms = polygonize_blocks(lines, area, grid_size_m=_GRID_M)
    adj = face_adjacency(atoms, lines)
    tick("faces")

    ws = water_share(atoms, layers.water)
    land = ws < u.min_water_share
    if not land.any():
        raise DataError("study area", "no land left after removing water faces",
                        "check study_area and units.min_water_share")
    keep = np.flatnonzero(land)
    remap = np.full(len(atoms), -1)
    remap[keep] = np.arange(len(keep))
    atoms = atoms.iloc[keep].reset_index(drop=True)
    atoms["water_share"] = ws[keep]
    adj = adj.assign(i=remap[adj["i"]], j=remap[adj["j"]])
    adj = adj[(adj["i"] >= 0) & (adj["j"] >= 0)].reset_index(drop=True)
    logger.info("%d faces, %d dropped as water", len(land), int((~land).sum()))
    atoms["subdistrict"] = assign_subdistricts(atoms, sd).to_numpy()
    groups = pd.factorize(atoms["subdistrict"].astype("object").fillna("\0none"))[0]
    tick("water")

    blocks0 = label_blocks(len(atoms), adj, level=0, groups=groups)
    labels, info = split_large(atoms, adj, blocks0, min_area_m2=u.min_area_m2,
                               max_area_m2=u.max_area_m2, sliver_width_m=u.sliver_width_m,
                               level_names=u.split_highways, groups=groups)
    tick("split")

    b_area, b_perim, b_adj = _aggregate(labels, atoms["area_m2"].to_numpy(),
                                        atoms["perimeter_m"].to_numpy(), adj)
    b_sd = np.empty(len(b_area), dtype=object)
    b_sd[labels] = atoms["subdistrict"].to_numpy()
    blocks_tab = pd.DataFrame({"area_m2": b_area, "perimeter_m": b_perim, "subdistrict": b_sd})
    merge = merge_small(blocks_tab, b_adj, min_area_m2=u.min_area_m2, max_area_m2=u.max_area_m2,
                        sliver_width_m=u.sliver_width_m, group_col="subdistrict").to_numpy()
    tick("merge")

    unit_of_atom = merge[labels]
    units = _dissolve(atoms, unit_of_atom, crs)
    blocks = _dissolve(atoms, labels, crs)
    m_area, _, u_adj = _aggregate(merge, b_area, b_perim, b_adj)
    units["area_m2"] = shapely.area(units.geometry.values)
    u_sd = np.empty(len(m_area), dtype=object)
    u_sd[merge] = b_sd
    units["subdistrict"] = u_sd
    units["n_blocks"] = np.bincount(merge, minlength=len(units))
    status = np.where(units["area_m2"] < u.min_area_m2, "below_min",
                      np.where(units["area_m2"] > u.max_area_m2, "above_max", "within"))
    units["size_status"] = status
    tick("dissolve")

    units = classify_units(units, landuse=layers.landuse, residential=layers.residential,
                           historic=layers.historic, heritage_areas=heritage_areas,
                           buildings=layers.buildings, fallback_far=far,
                           rules=rules or ClassRules.from_config(u))
    tick("classify")

    # Rows about one typical unit high read naturally on the map.
    band = math.sqrt(float(np.median(units["area_m2"])))
    units["unit_id"] = assign_unit_ids(units, band_m=band, subdistrict_order=(
        list(sd["subdistrict"]) if sd is not None else None))
    reasons = np.array([""] * len(units), dtype=object)
    small = np.flatnonzero(status == "below_min")
    if len(small):
        why = _small_reasons(units, u_adj, max_area_m2=u.max_area_m2)
        reasons[small] = [why[k] for k in small]
    # The first block (in block order) with a split note speaks for its unit.
    noted = np.flatnonzero(info["split_note"].to_numpy(dtype=object) != "")
    first_note: dict[int, str] = {}
    for b in noted[::-1]:
        first_note[int(merge[b])] = info["split_note"].iat[b]
    for k in np.flatnonzero(status == "above_max"):
        reasons[k] = first_note.get(int(k), "grew above the maximum absorbing slivers")
    units["size_note"] = reasons
    report = pd.DataFrame({"unit_id": units["unit_id"], "subdistrict": units["subdistrict"],
                           "area_m2": units["area_m2"].round(1), "size_status": status,
                           "reason": reasons})
    report = report[report["size_status"] != "within"].sort_values("unit_id")
    report = report.reset_index(drop=True)

    cols = ["unit_id", "subdistrict", "area_m2", "size_status", "size_note", "n_blocks",
            *[f"share_{c}" for c in _SHARE_CLASSES], "historic_share", "n_residential_areas",
            "n_historic_points", "residential_floor_area_m2", "n_old_communities",
            "old_floor_area_m2", "old_floor_share", "unit_class", "class_label", "geometry"]
    units["area_m2"] = units["area_m2"].round(1)
    id_of_label = units["unit_id"].to_numpy()  # units are still in merge-label order here
    units = units[cols].sort_values("unit_id").reset_index(drop=True)

    blocks["unit_id"] = id_of_label[merge]
    blocks["subdistrict"] = b_sd
    blocks["area_m2"] = np.round(shapely.area(blocks.geometry.values), 1)
    blocks["origin"] = info["origin"].to_numpy()
    blocks["sliver"] = [_thin(a, p, u.sliver_width_m) for a, p in zip(b_area, b_perim,
                                                                        strict=True)]
    pts = shapely.point_on_surface(blocks.geometry.values)
    order = np.lexsort((np.round(shapely.get_x(pts), 3), -np.round(shapely.get_y(pts), 3),
                        blocks["unit_id"].to_numpy()))
    blocks = blocks.iloc[order].reset_index(drop=True)
    blocks.insert(0, "block_id", [f"B{k + 1:0{max(4, len(str(len(blocks))))}d}"
                                  for k in range(len(blocks))])
    blocks = blocks[["block_id", "unit_id", "subdistrict", "area_m2", "origin", "sliver",
                     "geometry"]]
    tick("attributes")
    logger.info("update units: %d units from %d blocks (%d faces)", len(units), len(blocks),
                len(atoms))
    return UnitsResult(units=units, blocks=blocks, report=report, barriers=lines,
                       min_area_m2=u.min_area_m2, max_area_m2=u.max_area_m2, timings=timings)


def _dissolve(atoms: gpd.GeoDataFrame, labels: NDArray[np.intp], crs: Any) -> gpd.GeoDataFrame:
    """Union atoms by label (coverage union: exact and fast for edge-matched faces)."""
    m = int(labels.max()) + 1
    order = np.argsort(labels, kind="stable")
    geoms = np.asarray(atoms.geometry.values, dtype=object)[order]  # plain array: cheap slices
    bounds = np.searchsorted(labels[order], np.arange(m + 1))
    size = np.diff(bounds)
    out = np.empty(m, dtype=object)
    single = size == 1
    out[single] = geoms[bounds[:-1][single]]
    for k in np.flatnonzero(~single):
        out[k] = shapely.coverage_union_all(geoms[bounds[k]:bounds[k + 1]])
    bad = ~shapely.is_valid(out)
    if bad.any():
        logger.warning("repaired %d invalid unit polygon(s) after union", int(bad.sum()))
        out[bad] = shapely.make_valid(out[bad])
    return gpd.GeoDataFrame(geometry=shapely.normalize(out), crs=crs)

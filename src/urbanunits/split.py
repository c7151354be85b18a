"""One large area as many Dask tasks: split into parts with a halo, run each, merge by ownership.

``urbanunits batch CONFIG --split-by grid:KM|subdistrict|district`` cuts the study area into parts
(square cells of KM km, the sub-districts of the sub-district file or the extract's OSM
``admin_level=8`` relations, or its districts, ``admin_level=6``). Each part is run as its own
study area: the part grown by a *halo* and clipped to the whole area. The halo is the larger of
``osm.graph_margin_m`` and ``lifecircle.search_limit_m``: every walk that a community in the part
can take to its nearest facility (never longer than the search limit) stays inside the part's
study area and walk graph, so life-circle distances are those of the unsplit run.

The parts are merged by ownership: an update unit, a community and its life-circle row belong to
the part that holds their representative point; a facility to the part that holds it. Packages
never cross a part boundary, as they never cross a district: a part keeps its packages restricted
to the communities it owns, and a package cut that way is flagged (``cut_by_part``). Ids get the
part as a prefix (``g02-U004``) so that they stay unique.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from urbanunits import pipeline
from urbanunits.config import Config, StudyArea, load_config
from urbanunits.errors import ConfigError, DataError
from urbanunits.sources.boundaries import read_polygons
from urbanunits.sources.osm import read_osm, study_area_polygon

__all__ = ["SplitResult", "halo_m", "merge_parts", "part_configs", "split_parts"]

logger = logging.getLogger(__name__)

#: Layers merged from the parts, with the id column each is owned through.
_OWNED = {"update_units": "unit_id", "communities": "community_id",
          "lifecircle": "community_id", "facilities": "facility_id"}


def halo_m(cfg: Config) -> float:
    """Metres each part is grown by (see the module docstring)."""
    return max(cfg.osm.graph_margin_m, cfg.lifecircle.search_limit_m)


def split_parts(cfg: Config, how: str, *, layers: Any = None) -> gpd.GeoDataFrame:
    """The parts of the study area: ``part_id`` and polygons in the metric CRS.

    Parameters
    ----------
    cfg
        The run's config.
    how
        ``grid:KM`` (square cells of KM kilometres), ``subdistrict`` or ``district``.
    layers
        Parsed OSM layers (for the OSM admin boundaries); read when needed and not given.
    """

    area = study_area_polygon(cfg).geometry.iloc[0]
    if how.startswith("grid:"):
        try:
            km = float(how.split(":", 1)[1])
        except ValueError:
            km = math.nan
        if not (math.isfinite(km) and km > 0):
            raise ConfigError("--split-by", f"{how!r} has no cell size",
                              "give the cell size in km, e.g. grid:5")
        x0, y0, x1, y1 = area.bounds
        step = km * 1000.0
        cells = [shapely.box(x, y, x + step, y + step)
                 for x in np.arange(x0, x1, step) for y in np.arange(y1 - step, y0 - step, -step)]
        geoms = [c.intersection(area) for c in cells]
        prefix = "g"
    elif how in ("subdistrict", "district"):
        if layers is None:
            layers = read_osm(cfg)
        if how == "subdistrict" and cfg.inputs.subdistricts is not None:

            polys = read_polygons(cfg.inputs.subdistricts, crs=cfg.study_area.crs,
                                  what="sub-districts")
        else:
            level = 8 if how == "subdistrict" else 6
            polys = layers.admin[layers.admin["admin_level"] == level]
            if polys.empty:
                raise DataError(f"{cfg.inputs.osm}: admin_level={level}",
                                f"the extract has no {how} boundaries",
                                "use --split-by grid:KM, or give inputs.subdistricts")
        geoms = [g.intersection(area) for g in polys.geometry]
        # What no boundary covers (a gap between relations) is a part of its own, never lost.
        rest = area.difference(shapely.union_all(geoms))
        if rest.area > 1.0:
            geoms.append(rest)
        prefix = "s" if how == "subdistrict" else "d"
    else:
        raise ConfigError("--split-by", f"unknown value {how!r}",
                          "use grid:KM, subdistrict or district")
    keep = [g for g in geoms if not g.is_empty and g.area > 1.0]
    width = max(2, len(str(len(keep))))
    return gpd.GeoDataFrame({"part_id": [f"{prefix}{i + 1:0{width}d}" for i in range(len(keep))]},
                            geometry=keep, crs=cfg.study_area.crs)


def part_configs(cfg: Config, parts: gpd.GeoDataFrame, folder: Path) -> list[Config]:
    """A config per part: the part plus the halo, clipped to the study area, as its boundary."""

    folder.mkdir(parents=True, exist_ok=True)
    area = study_area_polygon(cfg).geometry.iloc[0]
    out = []
    for pid, geom in zip(parts["part_id"], parts.geometry, strict=True):
        grown = geom.buffer(halo_m(cfg)).intersection(area)
        # FlatGeobuf, not GeoPackage: the same part gives the same bytes on every run (a
        # GeoPackage stamps the time), so its parse cache, keyed by the file's hash, is reused
        path = folder / f"{pid}.fgb"
        gpd.GeoDataFrame({"part_id": [pid]}, geometry=[grown], crs=parts.crs).to_file(
            path, driver="FlatGeobuf", engine="pyogrio")
        out.append(dataclasses.replace(
            cfg, name=f"{cfg.name}_{pid}", study_area=StudyArea(boundary=path,
                                                                crs=cfg.study_area.crs)))
    return out


def run_part(cfg: Config) -> dict[str, gpd.GeoDataFrame | pd.DataFrame]:
    """Units, packages and life circles of one part in memory (a Dask task); nothing is written.

    The merge keeps only these stages' layers, so the programme and sites stages (and the maps)
    are not computed per part.
    """

    res = pipeline.run_lifecircle(cfg, write=False, draw=False)
    keep = {*_OWNED, "renewal_packages", "service_gaps"}
    return {k: v for k, v in res.layers.items() if k in keep}


def _owner(gdf: gpd.GeoDataFrame, parts: gpd.GeoDataFrame) -> np.ndarray:
    """Position of the part holding each feature's representative point.

    A point in no part (on the outer edge, a float's width outside) goes to the nearest part,
    and a point on a shared edge to the first of the parts it touches: every feature has
    exactly one owner.
    """
    pts = gdf.geometry.representative_point().to_numpy()
    geoms = parts.geometry.to_numpy()
    dist = np.stack([shapely.distance(pts, g) for g in geoms], axis=1)
    return np.asarray(np.argmin(dist, axis=1))


def merge_parts(parts: gpd.GeoDataFrame, results: list[dict[str, Any]]
                ) -> dict[str, gpd.GeoDataFrame]:
    """Merge the parts' layers by ownership (see the module docstring)."""
    merged: dict[str, list[gpd.GeoDataFrame]] = {}
    for i, (pid, layers) in enumerate(zip(parts["part_id"], results, strict=True)):
        own: dict[str, set[Any]] = {}
        for name, key in _OWNED.items():
            gdf = layers.get(name)
            if gdf is None or len(gdf) == 0:
                continue
            mask = _owner(gdf, parts) == i
            sub = gdf[mask].copy()
            own[name] = set(sub[key])
            sub[key] = pid + "-" + sub[key].astype(str)
            for ref in ("unit_id", "package_id"):
                if ref in sub.columns and ref != key:
                    sub[ref] = np.where(sub[ref].notna(), pid + "-" + sub[ref].astype(str), None)
            sub.insert(0, "part_id", pid)
            merged.setdefault(name, []).append(sub)
        gaps = layers.get("service_gaps")
        if gaps is not None and len(gaps):
            sub = gaps[gaps["community_id"].isin(own.get("lifecircle", set()))].copy()
            sub["community_id"] = pid + "-" + sub["community_id"].astype(str)
            sub.insert(0, "part_id", pid)
            merged.setdefault("service_gaps", []).append(sub)
        pk = layers.get("renewal_packages")
        comm = layers.get("communities")
        if pk is not None and len(pk) and comm is not None:
            mine = comm[comm["community_id"].isin(own.get("communities", set()))]
            members = mine.groupby("package_id")["community_id"].size()
            total = comm.groupby("package_id")["community_id"].size()
            sub = pk[pk["package_id"].isin(members.index)].copy()
            sub["cut_by_part"] = [members[p] < total[p] for p in sub["package_id"]]
            sub["package_id"] = pid + "-" + sub["package_id"].astype(str)
            sub.insert(0, "part_id", pid)
            merged.setdefault("renewal_packages", []).append(sub)
    out = {}
    for name, frames in merged.items():
        crs = frames[0].crs
        out[name] = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=crs)
    return out


@dataclass
class SplitResult:
    """The merged layers, the parts and the time taken."""

    layers: dict[str, gpd.GeoDataFrame]
    parts: gpd.GeoDataFrame
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        """What was merged, for the terminal."""
        lines = [f"{len(self.parts)} parts merged in {self.seconds:.1f} s"]
        lines += [f"layer {k}: {len(v)} rows" for k, v in self.layers.items()]
        pk = self.layers.get("renewal_packages")
        if pk is not None and "cut_by_part" in pk and pk["cut_by_part"].any():
            lines.append(f"{int(pk['cut_by_part'].sum())} package(s) cut at a part boundary "
                         "(cut_by_part)")
        return lines + self.notes


def run_split(config: str | Path, how: str, *, client: Any, write: bool = True) -> SplitResult:
    """Split one config's area, run the parts on ``client`` (a Dask client) and merge them.

    With ``write`` the merged layers go to the config's GeoPackage, with the ``parts`` layer.
    """
    from dask.distributed import wait


    t0 = time.perf_counter()
    cfg = load_config(config)
    parts = split_parts(cfg, how)
    work = cfg.output.dir / f".{cfg.name}.parts"
    cfgs = part_configs(cfg, parts, work)
    futures = [client.submit(run_part, c, pure=False, key=f"part-{c.name}") for c in cfgs]
    wait(futures)
    results = []
    for fut, c in zip(futures, cfgs, strict=True):
        try:
            results.append(fut.result())
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"{config}: part {c.name}", f"failed ({first})",
                            "run that part's area alone with -v to see why") from exc
    layers = merge_parts(parts, results)
    res = SplitResult(layers=layers, parts=parts, seconds=time.perf_counter() - t0)
    if write:
        pipeline.write_run(cfg, {**layers, "parts": parts})
        res.notes.append(f"written to {cfg.gpkg_path}")
    return res

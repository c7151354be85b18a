"""Update units: stable, readable unit ids (sub-district, then rows north to south).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from urbanunits.crs import require_projected

__all__ = [
    "assign_unit_ids",
]

logger = logging.getLogger(__name__)

def assign_unit_ids(units: gpd.GeoDataFrame, *, band_m: float,
                    subdistrict_order: Sequence[str] | None = None) -> pd.Series:
    """Stable ids ordered by sub-district, then position (rows north to south, west to east).

    Units are sorted by sub-district (``subdistrict_order``, else by name; units outside every
    sub-district last), then by the row of ``band_m`` metres their surface point falls in,
    counted from the northern edge, then by x. Ids are ``U001``... without sub-districts, and
    ``S01-U001``... with them (``S00`` outside every sub-district). The same geometry always
    gets the same id.

    Parameters
    ----------
    units
        Units in a metric CRS with a ``subdistrict`` column (may be all null).
    band_m
        Height of the reading rows (m).
    subdistrict_order
        Sub-district names in id order (default: sorted names present).

    Returns
    -------
    pandas.Series
        ``unit_id`` indexed like ``units``.
    """
    require_projected(units, "assign_unit_ids")
    if units.empty:
        return pd.Series([], index=units.index, dtype="object", name="unit_id")
    sd = units["subdistrict"] if "subdistrict" in units.columns else pd.Series(
        [None] * len(units), index=units.index)
    names = list(subdistrict_order) if subdistrict_order is not None else sorted(
        {str(s) for s in sd.dropna()})
    rank = {s: k + 1 for k, s in enumerate(names)}
    sd_rank = np.array([rank.get(s, len(rank) + 1) if s is not None and s == s else len(rank) + 1
                        for s in sd])
    pts = shapely.point_on_surface(units.geometry.values)
    x, y = shapely.get_x(pts), shapely.get_y(pts)
    top = units.total_bounds[3]
    row = np.floor((top - y) / max(band_m, 1.0)).astype(int)
    order = np.lexsort((np.round(y, 3) * -1, np.round(x, 3), row, sd_rank))
    ids = np.empty(len(units), dtype=object)
    with_sd = bool(rank)
    width = max(3, len(str(len(units))))
    counter: dict[int, int] = {}
    for k in order:
        r = int(sd_rank[k])
        counter[r] = counter.get(r, 0) + 1
        num = f"U{counter[r]:0{width}d}"
        ids[k] = f"S{(r if r <= len(rank) else 0):02d}-{num}" if with_sd else num
    return pd.Series(ids, index=units.index, name="unit_id")

"""Area-weighted zonal sums over a count grid already in memory (no file is opened here).

Community polygons are often smaller than a raster cell (a 1 ha compound in a 100 m WorldPop grid),
so counting whole cells by their centres would give zero or a whole cell: each cell contributes its
value times the share of the cell that the polygon covers. :mod:`urbanunits.sources.population`
reads the grid (:func:`~urbanunits.sources.population.read_population`); the packages stage sums
it here, so the stage reads no file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from numpy.typing import NDArray

__all__ = ["CountGrid", "area_weighted_sums"]


@dataclass(frozen=True)
class CountGrid:
    """A window of a count raster (persons per cell), nodata and negative cells set to 0.

    Attributes
    ----------
    data
        ``(rows, cols)`` cell values; may be empty (the polygons lie outside the raster).
    transform
        The window's affine transform (:class:`affine.Affine`: cell → raster CRS).
    crs
        The raster's CRS (anything :meth:`geopandas.GeoSeries.to_crs` accepts).
    """

    data: NDArray[np.float64]
    transform: Any
    crs: Any


def area_weighted_sums(polygons: gpd.GeoSeries, grid: CountGrid) -> NDArray[np.float64]:
    """Area-weighted sum of ``grid`` over each polygon.

    Parameters
    ----------
    polygons
        Polygons with a CRS (projected to the grid's CRS). Non-polygonal or empty geometries get 0.
    grid
        The count grid (:class:`CountGrid`).

    Returns
    -------
    numpy.ndarray
        One sum per polygon, in input order (persons).
    """
    out = np.zeros(len(polygons), dtype=float)
    g = polygons.to_crs(grid.crs)
    arr = np.asarray(g.values)
    ok = ~(shapely.is_empty(arr) | shapely.is_missing(arr)) & np.isin(
        shapely.get_type_id(arr), [3, 6])
    data = grid.data
    if not ok.any() or data.size == 0:
        return out
    tr = grid.transform
    rows, cols = np.nonzero(data)
    if rows.size == 0:
        return out
    # Cell polygons of the non-zero cells only; the affine transform may be rotated, so the
    # four corners are transformed rather than assuming a north-up box.
    corners_c = np.stack([cols, cols + 1, cols + 1, cols], axis=1).astype(float)
    corners_r = np.stack([rows, rows, rows + 1, rows + 1], axis=1).astype(float)
    xs = tr.c + tr.a * corners_c + tr.b * corners_r
    ys = tr.f + tr.d * corners_c + tr.e * corners_r
    rings = np.stack([xs, ys], axis=2)
    cells = shapely.polygons(np.concatenate([rings, rings[:, :1]], axis=1))
    values = data[rows, cols]
    cell_area = np.abs(tr.a * tr.e - tr.b * tr.d)
    tree = shapely.STRtree(cells)
    idx = np.flatnonzero(ok)
    poly_i, cell_i = tree.query(arr[idx], predicate="intersects")
    if poly_i.size == 0:
        return out
    share = shapely.area(shapely.intersection(arr[idx][poly_i], cells[cell_i])) / cell_area
    np.add.at(out, idx[poly_i], share * values[cell_i])
    return out

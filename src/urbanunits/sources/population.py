"""Population rasters (persons per cell, e.g. WorldPop or a census grid) summed over polygons.

Community polygons are often smaller than a raster cell (a 1 ha community in a 100 m WorldPop grid),
so counting whole cells by their centres would give zero or a whole cell. :func:`zonal_sums` is an
*area-weighted* zonal sum instead: each cell contributes its value times the share of the cell that
the polygon covers. Only the window of cells under the polygons is read (:func:`read_population`);
the sum itself is :func:`urbanunits._raster.area_weighted_sums`, which the packages stage calls on
the grid the pipeline read.
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from numpy.typing import NDArray

from urbanunits._raster import CountGrid, area_weighted_sums
from urbanunits.errors import CRSError, DataError, InputFileError

__all__ = ["CountGrid", "read_population", "zonal_sums"]

logger = logging.getLogger(__name__)

# Cells read at once; a study area of Ningbo's central city in a 100 m grid is ~1e5 cells.
_MAX_CELLS = 50_000_000


def zonal_sums(polygons: gpd.GeoSeries | gpd.GeoDataFrame, raster: str | Path, *,
               band: int = 1) -> NDArray[np.float64]:
    """Area-weighted sum of a count raster over each polygon.

    :func:`read_population` then :func:`urbanunits._raster.area_weighted_sums`.

    Parameters
    ----------
    polygons
        Polygons in any CRS (they are projected to the raster's CRS). Non-polygonal or empty
        geometries get 0.
    raster
        GeoTIFF (or any GDAL raster) whose cells hold counts (persons per cell). Nodata and
        negative cells count as 0.
    band
        Band to read (1-based).

    Returns
    -------
    numpy.ndarray
        One sum per polygon, in input order (persons).
    """
    geoms = polygons.geometry if isinstance(polygons, gpd.GeoDataFrame) else polygons
    return area_weighted_sums(geoms, read_population(raster, geoms, band=band))


def read_population(raster: str | Path, polygons: gpd.GeoSeries, *, band: int = 1) -> CountGrid:
    """Read the window of a count raster that lies under the polygons.

    Parameters
    ----------
    raster
        GeoTIFF (or any GDAL raster) whose cells hold counts (persons per cell). Nodata and
        negative cells are read as 0.
    polygons
        The polygons that will be summed (any CRS); only their extent is used.
    band
        Band to read (1-based).

    Returns
    -------
    CountGrid
        The window's cells, transform and the raster's CRS; no cells when the polygons lie
        outside the raster (logged) or none is a non-empty polygon.
    """
    # rasterio (and GDAL's raster drivers) load here, not at import: most runs have no raster
    import rasterio
    import rasterio.windows
    from rasterio.errors import RasterioIOError

    path = Path(raster)
    if not path.is_file():
        raise InputFileError(path, "population raster not found",
                             "fix inputs.population_raster or remove it to estimate population "
                             "from households")
    if polygons.crs is None:
        raise CRSError("zonal_sums", "polygons have no CRS", "set their CRS first")
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputFileError(path, f"could not read the population raster ({exc})",
                             "use a GeoTIFF of persons per cell") from exc
    with src:
        if src.crs is None:
            raise CRSError(path, "population raster has no CRS",
                           "save the raster with its CRS (e.g. EPSG:4326 for WorldPop)")
        if not (1 <= band <= src.count):
            raise DataError(path, f"has no band {band} (bands: {src.count})", "use band 1")
        none = CountGrid(data=np.zeros((0, 0)), transform=src.transform, crs=src.crs)
        g = polygons.to_crs(src.crs)
        arr = np.asarray(g.values)
        ok = ~(shapely.is_empty(arr) | shapely.is_missing(arr)) & np.isin(
            shapely.get_type_id(arr), [3, 6])
        if not ok.any():
            return none
        # Window arithmetic by hand with `@`: rasterio's helpers still use affine's deprecated
        # `*` operator, which the test suite turns into errors.
        x0, y0, x1, y1 = shapely.total_bounds(arr[ok])
        inv = ~src.transform
        cr = np.array([inv @ (x, y) for x in (x0, x1) for y in (y0, y1)])
        c0 = int(np.clip(np.floor(cr[:, 0].min()), 0, src.width))
        c1 = int(np.clip(np.ceil(cr[:, 0].max()), 0, src.width))
        r0 = int(np.clip(np.floor(cr[:, 1].min()), 0, src.height))
        r1 = int(np.clip(np.ceil(cr[:, 1].max()), 0, src.height))
        if c1 <= c0 or r1 <= r0:
            logger.warning("%s: the polygons lie outside the population raster", path)
            return none
        if (c1 - c0) * (r1 - r0) > _MAX_CELLS:
            raise DataError(path, f"the study area covers {(c1 - c0) * (r1 - r0)} cells",
                            "use a coarser raster or a smaller study area")
        win = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
        data = src.read(band, window=win, masked=True).astype(float).filled(0.0)
        data[~np.isfinite(data) | (data < 0)] = 0.0
        return CountGrid(data=data, transform=src.transform @ Affine.translation(c0, r0),
                         crs=src.crs)

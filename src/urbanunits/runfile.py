"""A finished run's GeoPackage read back whole: layers, QGIS styles and run metadata.

Shared by :mod:`urbanunits.publish` (PostGIS, FileGDB) and :mod:`urbanunits.webmap` (HTML map),
which hand a run over without recomputing it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

from urbanunits.catalog import canonical_name
from urbanunits.errors import InputFileError
from urbanunits.export import METADATA_TABLE, STYLES_TABLE, list_layers

__all__ = ["RunData", "read_run"]


@dataclass(frozen=True)
class RunData:
    """A finished run as read from its GeoPackage.

    Attributes
    ----------
    layers
        Layer name → GeoDataFrame (spatial) or DataFrame (attribute table), in file order,
        without ``layer_styles`` and ``run_metadata``; a layer written under a former name
        (:data:`urbanunits.catalog.LAYER_ALIASES`) is named by its current one.
    styles
        The ``layer_styles`` rows (empty when the run has none).
    metadata
        The ``run_metadata`` key/value rows (empty when the run has none).
    """

    layers: dict[str, gpd.GeoDataFrame | pd.DataFrame]
    styles: pd.DataFrame
    metadata: pd.DataFrame


def read_run(gpkg: str | Path, *, only: Collection[str] | None = None) -> RunData:
    """Read every layer of a run's GeoPackage, with its styles and metadata.

    Parameters
    ----------
    gpkg
        The run's GeoPackage (``cfg.gpkg_path``).
    only
        Read just these layers (current names; styles and metadata are read as ever): each
        layer costs a read, and the HTML map needs a handful of the run's twenty.

    Returns
    -------
    RunData
        The run's layers, styles and metadata.
    """
    gpkg = Path(gpkg)
    if not gpkg.is_file():
        raise InputFileError(gpkg, "GeoPackage not found", "run `make all` (urbanunits all) "
                             "with this config first")
    layers: dict[str, gpd.GeoDataFrame | pd.DataFrame] = {}
    styles = pd.DataFrame(columns=["f_table_name", "styleQML"])
    metadata = pd.DataFrame(columns=["key", "value"])
    for name in list_layers(gpkg):
        if only is not None and name not in (STYLES_TABLE, METADATA_TABLE) \
                and canonical_name(name) not in only:
            continue
        if pyogrio.read_info(gpkg, layer=name).get("geometry_type") is None:
            table: pd.DataFrame = pyogrio.read_dataframe(gpkg, layer=name, read_geometry=False)
            if name == STYLES_TABLE:
                styles = table
            elif name == METADATA_TABLE:
                metadata = table
            else:
                layers[canonical_name(name)] = table
        else:
            layers[canonical_name(name)] = _one_geometry_type(
                gpd.read_file(gpkg, layer=name, engine="pyogrio"))
    if not layers and only is None:  # with ``only`` the caller says what it lacks
        raise InputFileError(gpkg, "has no layers", "run `make all` with this config first")
    if len(styles):
        styles = styles.assign(f_table_name=styles["f_table_name"].map(canonical_name))
    return RunData(layers=layers, styles=styles, metadata=metadata)


def _one_geometry_type(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Promote Polygon+MultiPolygon (etc.) to the multi type: servers want one type per layer."""
    types = set(gdf.geometry.geom_type.dropna())
    if any({t, f"Multi{t}"} <= types for t in ("Point", "LineString", "Polygon")):
        multi = {"Point": shapely.multipoints, "LineString": shapely.multilinestrings,
                 "Polygon": shapely.multipolygons}
        geoms = [multi[g.geom_type]([g]) if g is not None and g.geom_type in multi else g
                 for g in gdf.geometry]
        return gdf.set_geometry(gpd.GeoSeries(geoms, index=gdf.index, crs=gdf.crs,
                                              name=gdf.geometry.name))
    return gdf

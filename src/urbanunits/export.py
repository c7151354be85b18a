"""Atomic output: the run's GeoPackage and tables.

Nothing is written in place. Each write goes to a temporary file next to the destination and is
renamed over it only when complete, so a failed or interrupted run never leaves a half-written file
and never destroys the previous good one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from urbanunits.errors import InputFileError

__all__ = ["atomic_path", "list_layers", "read_layer", "write_layers"]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_path(dest: str | Path, *, copy_existing: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it over ``dest`` on success.

    Parameters
    ----------
    dest
        Final file path.
    copy_existing
        Start from a copy of ``dest`` (to add layers to an existing GeoPackage).

    Yields
    ------
    pathlib.Path
        The temporary file to write.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part" + dest.suffix,
                                dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()
    try:
        if copy_existing and dest.exists():
            shutil.copy2(dest, tmp)
        yield tmp
        tmp.replace(dest)
    finally:
        for leftover in (tmp, Path(str(tmp) + "-journal"), Path(str(tmp) + "-wal"),
                         Path(str(tmp) + "-shm")):
            if leftover.exists():
                leftover.unlink()


def write_layers(gpkg: str | Path, layers: Mapping[str, gpd.GeoDataFrame | pd.DataFrame]) -> Path:
    """Write (or replace) layers in a GeoPackage atomically, keeping its other layers.

    Parameters
    ----------
    gpkg
        The GeoPackage path.
    layers
        Layer name → GeoDataFrame (spatial) or DataFrame (attribute-only table).

    Returns
    -------
    pathlib.Path
        ``gpkg``.
    """
    gpkg = Path(gpkg)
    with atomic_path(gpkg, copy_existing=True) as tmp:
        existing = set(list_layers(tmp)) if tmp.exists() else set()
        for name, df in layers.items():
            if name in existing:
                pyogrio.write_dataframe(df.iloc[0:0], tmp, layer=name, driver="GPKG",
                                        layer_options={"OVERWRITE": "YES"})
            _write_one(tmp, name, df)
    logger.info("wrote %s to %s", ", ".join(layers), gpkg)
    return gpkg


def _write_one(path: Path, name: str, df: gpd.GeoDataFrame | pd.DataFrame) -> None:
    df = df.copy()
    for col in df.columns:
        if col == getattr(df, "_geometry_column_name", None):
            continue
        if df[col].map(lambda v: isinstance(v, list | tuple | set | dict)).any():
            df[col] = df[col].map(
                lambda v: ";".join(map(str, v)) if isinstance(v, list | tuple | set) else v)
    if isinstance(df, gpd.GeoDataFrame):
        pyogrio.write_dataframe(df, path, layer=name, driver="GPKG",
                                layer_options={"OVERWRITE": "YES"}, promote_to_multi=False)
    else:
        pyogrio.write_dataframe(df, path, layer=name, driver="GPKG",
                                layer_options={"OVERWRITE": "YES"})


def list_layers(gpkg: str | Path) -> list[str]:
    """Names of the layers (spatial and attribute tables) in a GeoPackage."""
    return [str(r[0]) for r in pyogrio.list_layers(gpkg)]


def read_layer(gpkg: str | Path, layer: str) -> gpd.GeoDataFrame:
    """Read one layer, with a clear error if the file or layer is missing.

    Parameters
    ----------
    gpkg
        The run's GeoPackage.
    layer
        Layer name, e.g. ``"update_units"``.

    Returns
    -------
    geopandas.GeoDataFrame
        The layer in its stored CRS.
    """
    gpkg = Path(gpkg)
    if not gpkg.is_file():
        raise InputFileError(gpkg, "GeoPackage not found", "run the earlier stage first "
                             "(e.g. `make units`)")
    names = list_layers(gpkg)
    if layer not in names:
        raise InputFileError(gpkg, f"has no layer {layer!r} (layers: {', '.join(names)})",
                             "run the stage that makes it first")
    return gpd.read_file(gpkg, layer=layer, engine="pyogrio")

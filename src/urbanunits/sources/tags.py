"""What OSM tags on lines mean, decided once for every stage.

The ingest (:mod:`urbanunits.sources.osm`) turns the tags into typed columns with
:func:`flag_lines`; the stages read the columns (:func:`urbanunits.layers.line_flag`), never the
tags, so that one tag cannot be read two ways.

* ``is_tunnel``: ``tunnel`` is present and not ``no``. Every other value (``yes``, ``culvert``,
  ``building_passage``, ``flooded``...) puts the way below ground or inside a structure: it
  separates nothing on the surface.
* ``is_bridge``: ``bridge`` is present and not ``no`` (``yes``, ``viaduct``, ``movable``...).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from urbanunits.layers import LINE_FLAGS

__all__ = ["flag_lines", "is_yes"]


def is_yes(values: pd.Series) -> pd.Series:
    """OSM yes-like flag: the tag is present and its value is not ``no`` (any case)."""
    s = values.astype("object")
    return s.notna() & (s.astype(str).str.lower() != "no")


def flag_lines(lines: pd.DataFrame) -> pd.DataFrame:
    """A copy of a line layer with the boolean flags of :data:`urbanunits.layers.LINE_FLAGS`.

    Parameters
    ----------
    lines
        Lines with (some of) the ``tunnel`` and ``bridge`` tags as columns; a missing tag
        column means the tag is absent everywhere.

    Returns
    -------
    pandas.DataFrame
        The same rows, with ``is_tunnel`` and ``is_bridge`` (bool) set from the tags.
    """
    out = lines.drop(columns=[f for f in LINE_FLAGS if f in lines.columns])
    geom = getattr(lines, "_geometry_column_name", None)
    for flag, tag in LINE_FLAGS.items():
        values = (is_yes(lines[tag]).to_numpy(dtype=bool) if tag in lines.columns
                  else np.zeros(len(lines), dtype=bool))
        # before the geometry column, as the other attributes (and as the parse cache keeps it)
        at = out.columns.get_loc(geom) if geom in out.columns else len(out.columns)
        out.insert(int(at), flag, values)
    return out

"""The packages stage's communities as the pipeline builds them, for tests that start from a config."""

from __future__ import annotations

import geopandas as gpd

from urbanunits.config import Config
from urbanunits.packages import build_inventory
from urbanunits.sources.inputs import load_communities
from urbanunits.sources.osm import OSMLayers


def inventory_of(layers: OSMLayers, cfg: Config, *,
                units: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """:func:`load_communities` (inventory, overrides, raster) then :func:`build_inventory`."""
    return build_inventory(layers, cfg=cfg.packages, inputs=load_communities(cfg, layers),
                           units=units)

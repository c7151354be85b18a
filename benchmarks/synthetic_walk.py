"""Seeded synthetic city for the life-circle benchmark: walk network, communities, facilities.

The network is a perturbed square grid of footpaths and streets (20 m node spacing, like an
unsimplified OSM walk graph where every crossing and bend is a node) with a share of edges
removed (blocks, walls, dead ends) and diagonal footpaths across some cells. Communities are
community rectangles holding several network nodes; facilities are points scattered over the city.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

from urbanunits.config import Category

__all__ = ["SyntheticCity", "make_city"]

CRS = "EPSG:32651"
X0, Y0 = 350_000.0, 3_400_000.0


@dataclass
class SyntheticCity:
    """Node coordinates, undirected edges and the point/polygon layers, in EPSG:32651."""

    x: np.ndarray
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    length_m: np.ndarray
    communities: gpd.GeoDataFrame
    facilities: gpd.GeoDataFrame


def make_city(*, side: int = 520, spacing_m: float = 20.0, drop: float = 0.07,
              diagonals: float = 0.03, n_communities: int = 5000,
              facilities_per_category: int = 320, categories: dict[str, Category],
              seed: int = 20261127) -> SyntheticCity:
    """Build the synthetic city (``side``² nodes).

    Parameters
    ----------
    side
        Nodes per grid side (520 → 270,400 nodes, a 10.4 km square).
    spacing_m
        Grid spacing in metres.
    drop
        Share of grid edges removed.
    diagonals
        Share of cells crossed by a diagonal footpath.
    n_communities
        Community rectangles, 40–140 m a side.
    facilities_per_category
        Facilities per category, spread over its subtypes.
    categories
        The configured categories (keys and subtypes).
    seed
        Seed of the random generator.

    Returns
    -------
    SyntheticCity
        The network arrays and layers.
    """
    rng = np.random.default_rng(seed)
    n = side * side
    ii, jj = np.divmod(np.arange(n), side)
    x = X0 + jj * spacing_m + rng.uniform(-0.2, 0.2, n) * spacing_m
    y = Y0 + ii * spacing_m + rng.uniform(-0.2, 0.2, n) * spacing_m
    idx = np.arange(n).reshape(side, side)
    h = np.column_stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()])
    vert = np.column_stack([idx[:-1, :].ravel(), idx[1:, :].ravel()])
    cells = idx[:-1, :-1].ravel()
    diag_cells = cells[rng.random(len(cells)) < diagonals]
    flip = rng.random(len(diag_cells)) < 0.5
    diag = np.column_stack([np.where(flip, diag_cells + 1, diag_cells),
                            np.where(flip, diag_cells + side, diag_cells + side + 1)])
    grid = np.vstack([h, vert])
    grid = grid[rng.random(len(grid)) >= drop]
    edges = np.vstack([grid, diag])
    u, v = edges[:, 0], edges[:, 1]
    length = np.hypot(x[u] - x[v], y[u] - y[v])

    extent = side * spacing_m
    cx = X0 + rng.uniform(0, extent, n_communities)
    cy = Y0 + rng.uniform(0, extent, n_communities)
    w = rng.uniform(40, 140, n_communities)
    hgt = rng.uniform(40, 140, n_communities)
    communities = gpd.GeoDataFrame(
        {"community_id": np.arange(n_communities),
         "population": rng.integers(300, 6000, n_communities).astype(float),
         "unit_id": (cx - X0) // 1000 * 100 + (cy - Y0) // 1000,
         "package_id": (cx - X0) // 500 * 1000 + (cy - Y0) // 500},
        geometry=shapely.box(cx - w / 2, cy - hgt / 2, cx + w / 2, cy + hgt / 2), crs=CRS)

    rows_cat, rows_sub = [], []
    for key, cat in categories.items():
        subs = list(cat.subtypes)
        rows_cat += [key] * facilities_per_category
        rows_sub += [subs[i % len(subs)] for i in range(facilities_per_category)]
    m = len(rows_cat)
    facilities = gpd.GeoDataFrame(
        {"category": rows_cat, "subtype": rows_sub, "name": [f"f{i}" for i in range(m)],
         "source": "synthetic"},
        geometry=shapely.points(X0 + rng.uniform(0, extent, m), Y0 + rng.uniform(0, extent, m)),
        crs=CRS)
    return SyntheticCity(x, y, u, v, length, communities, facilities)

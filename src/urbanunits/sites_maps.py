"""Maps of the sites stage: where new facilities would close a category's gaps.

Apart from :mod:`urbanunits.maps` (the shared style and the units, life-circle and packages
maps) so that each module stays one concept; uses the same basemap, furniture and colours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
from matplotlib.figure import Figure

from urbanunits.catalog import SITES_COLORS
from urbanunits.maps import (
    _SUBTYPE_MARKERS,
    _draw_communities,
    add_map_furniture,
    draw_basemap,
    map_style,
    new_map,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from urbanunits.layers import OSMLayers

__all__ = ["plot_sites"]


def plot_sites(lc: gpd.GeoDataFrame, suggestions: gpd.GeoDataFrame, category: str, *,
               layers: OSMLayers, cfg: Any, newly: Any = (), ax: Axes | None = None
               ) -> tuple[Figure, Axes]:
    """Map current coverage of one category, the suggested sites and what they would cover.

    Parameters
    ----------
    lc
        The ``lifecircle`` layer (``community_id``, ``<category>_ok``).
    suggestions
        The ``site_suggestions`` layer; its ``mclp`` rows of this category are drawn.
    category
        Category key, e.g. ``"elderly_care"``.
    layers
        Parsed OSM layers for the basemap.
    cfg
        The run's :class:`~urbanunits.config.Config`.
    newly
        Community ids the suggested sites would newly bring within every missing item's
        distance (drawn as newly covered).
    ax
        Axes to draw on; a new figure when None.

    Returns
    -------
    tuple
        ``(fig, ax)``.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    cat = cfg.lifecircle.categories[category]
    ok = lc[f"{category}_ok"].to_numpy(dtype=bool)
    new = lc["community_id"].isin(list(newly)).to_numpy() & ~ok
    polys = lc.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    sites = suggestions[(suggestions["category"] == category)
                        & (suggestions["method"] == "mclp")] if len(suggestions) else suggestions
    with map_style():
        fig, ax = new_map(ax)
        draw_basemap(ax, layers, extent=lc)
        handles: list[Any] = []
        for sel, key, text in ((ok, "ok", "达标 meets the standard today"),
                               (new, "new", "建议选址后达标 meets every ▲ item with the sites"),
                               (~ok & ~new, "missing", "仍未达标 still missing an item")):
            if sel.any():
                _draw_communities(ax, lc[sel & polys], lc[sel & ~polys], SITES_COLORS[key])
                handles.append(Patch(facecolor=SITES_COLORS[key], edgecolor="#555555",
                                     linewidth=0.4, label=f"{text} ({int(sel.sum())})"))
        subtypes = list(dict.fromkeys(sites["subtype"])) if len(sites) else []
        for i, s in enumerate(subtypes):
            sub = sites[sites["subtype"] == s]
            marker = _SUBTYPE_MARKERS[i % len(_SUBTYPE_MARKERS)]
            # One site can be suggested for two items: earlier items' markers are larger and
            # drawn below, so that both show (nested), and their ranks are set one above the
            # other instead of on top of each other.
            size = 70.0 + 120.0 * (len(subtypes) - 1 - i)
            ax.scatter(sub.geometry.x, sub.geometry.y, marker=marker, s=size, c="#2c7bb6",
                       edgecolors="white", linewidths=1.0, zorder=9 + 0.1 * i)
            for r in sub.itertuples():
                ax.annotate(f"{r.rank}", (r.geometry.x, r.geometry.y), xytext=(5, 4 + 8 * i),
                            textcoords="offset points", fontsize=7, zorder=10)
            label = cat.subtypes[s].label or s
            handles.append(Line2D([], [], marker=marker, linestyle="none",
                                  markersize=float(np.sqrt(size)),
                                  markerfacecolor="#2c7bb6", markeredgecolor="white",
                                  label=f"建议选址 suggested: {label} ({len(sub)}, "
                                  f"+{sub['new_residents'].sum():,.0f} residents)"))
        title = f"{cat.label} — 建议选址 suggested sites"
        if cfg.title:
            title += f"\n{cfg.title}"
        note = (f"最大覆盖 maximal covering, ≤{cfg.sites.max_sites} sites per item, on idle "
                "buildings, vacant land and car parks; 步行网络距离 network distance")
        add_map_furniture(ax, title=title, legend_handles=handles, legend_loc="upper left",
                          legend_title="按标准 by the standard", note=note)
    return fig, ax

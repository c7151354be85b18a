"""Report maps: one consistent matplotlib style for every stage.

Every map has a basemap drawn from the extract itself (water, roads; tile servers are out of reach
offline), a legend, a scale bar (matplotlib-scalebar), a north arrow, the OSM attribution and
Chinese labels set in a CJK font. Plot functions take ``ax=None`` and return ``(fig, ax)``; they
never call ``show()``. :func:`save_map` writes PNGs atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from urbanunits import ATTRIBUTION
from urbanunits._fonts import cjk_font_family, cjk_font_path
from urbanunits.catalog import (
    CLASS_COLORS,
    CLASS_LABELS,
    LIFECIRCLE_CLASSES,
    UNREACHABLE_COLOR,
    legend_title,
)
from urbanunits.config import UnitsConfig
from urbanunits.map_files import map_style, save_map, saving_in_parallel
from urbanunits.units import barrier_lines

if TYPE_CHECKING:
    import geopandas as gpd
    from matplotlib.axes import Axes

    from urbanunits.sources.osm import OSMLayers

__all__ = [
    "add_map_furniture",
    "cjk_font_family",
    "cjk_font_path",
    "draw_basemap",
    "label_points",
    "least_covered_corner",
    "map_style",
    "new_map",
    "prepare_basemap",
    "save_map",
    "saving_in_parallel",
]

logger = logging.getLogger(__name__)

ROAD_STYLE: dict[str, tuple[float, str]] = {
    "motorway": (2.2, "#8c8c8c"), "trunk": (2.0, "#8c8c8c"), "primary": (1.6, "#9a9a9a"),
    "secondary": (1.2, "#a8a8a8"), "tertiary": (0.8, "#b8b8b8"),
}
WATER_COLOR = "#bcd7ee"



def new_map(ax: Axes | None = None, *, figsize: tuple[float, float] = (9.0, 9.0)
            ) -> tuple[Figure, Axes]:
    """A figure and axes for a map, or the given axes and their figure."""
    if ax is None:
        ax = Figure(figsize=figsize, layout="constrained").add_subplot()
    root = ax.get_figure(root=True)
    assert isinstance(root, Figure)
    ax.set_aspect("equal")
    ax.set_axis_off()
    # Hidden as well as off: the layout engine and the title placement otherwise still measure
    # the (undrawn) tick labels on every pass, a third of a map's drawing time.
    ax.xaxis.set_visible(False)
    ax.yaxis.set_visible(False)
    return root, ax


def draw_basemap(ax: Axes, layers: OSMLayers, *, roads: bool = True, water: bool = True,
                 study_area: bool = True, zorder: float = 0,
                 extent: gpd.GeoDataFrame | None = None) -> None:
    """Draw water, main roads and the study-area outline from the extract (metric CRS).

    The view is the study area, widened to show whole any ``extent`` features that touch it
    (communities are kept whole where the study-area edge cuts them). The basemap of one
    ``layers`` is built once and copied onto each map drawn from it.
    """
    for coll in _basemap(layers, (roads, water, study_area, zorder)):
        ax.add_collection(_copy_collection(coll, ax), autolim=False)
    x0, y0, x1, y1 = layers.study_area.total_bounds
    if extent is not None and not extent.empty:
        touching = extent[extent.intersects(layers.study_area.geometry.iloc[0])]
        if not touching.empty:
            ex0, ey0, ex1, ey1 = touching.total_bounds
            x0, y0, x1, y1 = min(x0, ex0), min(y0, ey0), max(x1, ex1), max(y1, ey1)
    pad = 0.02 * max(x1 - x0, y1 - y0)
    ax.set_xlim(x0 - pad, x1 + pad)
    ax.set_ylim(y0 - pad, y1 + pad)


#: draw_basemap's options (roads, water, study_area, zorder) as every map of a run draws it.
_DEFAULT_BASEMAP = (True, True, True, 0.0)


def prepare_basemap(layers: OSMLayers) -> None:
    """Build the basemap of ``layers`` (as :func:`draw_basemap` draws it by default) now.

    Maps built later copy it; processes forked afterwards (parallel map workers) share it
    instead of each building its own.
    """
    _basemap(layers, _DEFAULT_BASEMAP)


# The basemap collections of the last OSM layers drawn: (layers, options) → collections. The
# layers object is held, so its id cannot be reused by another while it is cached.
_BASEMAPS: dict[tuple[int, tuple[bool, bool, bool, float]], tuple[OSMLayers, list[Any]]] = {}


def _basemap(layers: OSMLayers, options: tuple[bool, bool, bool, float]) -> list[Any]:
    """The basemap's matplotlib collections for ``layers``, drawn once on a scratch axes.

    Turning a few thousand road and water geometries into matplotlib paths is most of a
    basemap's cost, and every map of a run draws the same one.
    """
    key = (id(layers), options)
    hit = _BASEMAPS.get(key)
    if hit is not None and hit[0] is layers:
        return hit[1]
    if hit is None and any(k[0] != id(layers) for k in _BASEMAPS):
        _BASEMAPS.clear()  # another run's layers: keep one run's basemaps only
    roads, water, study_area, zorder = options
    ax = Figure().add_subplot()
    _draw_basemap_layers(ax, layers, roads=roads, water=water, study_area=study_area,
                         zorder=zorder)
    _BASEMAPS[key] = (layers, list(ax.collections))
    return _BASEMAPS[key][1]


def _copy_collection(coll: Any, ax: Axes) -> Any:
    """A copy of a line or polygon collection for another axes (same paths and style)."""
    from matplotlib.collections import LineCollection, PathCollection

    new: LineCollection | PathCollection
    if isinstance(coll, LineCollection):
        paths = coll.get_paths()
        # a path without codes is its vertices: handed over as they are, where get_segments()
        # walks every vertex in Python (most of a basemap copy's cost)
        new = LineCollection([p.vertices for p in paths] if all(p.codes is None for p in paths)
                             else coll.get_segments())
    else:
        new = PathCollection(coll.get_paths())
    new.update_from(coll)  # colours, widths, dashes, alpha; also the scratch axes' transform
    new.set_transform(ax.transData)  # and clipping, which are reset to the new axes'
    new.set_clip_path(None)
    new.set_clip_box(None)
    new.set_zorder(coll.get_zorder())
    return new


def _draw_basemap_layers(ax: Axes, layers: OSMLayers, *, roads: bool, water: bool,
                         study_area: bool, zorder: float) -> None:
    if water and not layers.water.empty:
        layers.water.plot(ax=ax, color=WATER_COLOR, linewidth=0, zorder=zorder)
    if water and not layers.waterways.empty:
        ww = layers.waterways[layers.waterways["waterway"].isin(["river", "canal"])]
        if not ww.empty:
            ww.plot(ax=ax, color=WATER_COLOR, linewidth=1.5, zorder=zorder)
    if roads and not layers.roads.empty:
        r = layers.roads
        for cls, (lw, color) in ROAD_STYLE.items():
            sub = r[r["highway"].astype(str).str.replace("_link", "") == cls]
            if not sub.empty:
                sub.plot(ax=ax, color=color, linewidth=lw * 0.6, zorder=zorder + 0.1)
        minor = r[r["highway"].isin(["residential", "unclassified", "living_street"])]
        if not minor.empty:
            minor.plot(ax=ax, color="#d0d0d0", linewidth=0.3, zorder=zorder + 0.05)
    if study_area:
        layers.study_area.boundary.plot(ax=ax, color="#555555", linewidth=0.8, linestyle="--",
                                        zorder=zorder + 5)


def _water_in_view(ax: Axes, layers: OSMLayers) -> bool:
    """Whether any water is drawn inside the current view (a legend entry otherwise misleads)."""
    import shapely

    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    view = shapely.box(x0, y0, x1, y1)
    ww = layers.waterways
    if not ww.empty:
        ww = ww[ww["waterway"].isin(["river", "canal"])]
    return bool((not layers.water.empty and layers.water.intersects(view).any())
                or (not ww.empty and ww.intersects(view).any()))


def add_north_arrow(ax: Axes, *, xy: tuple[float, float] = (0.95, 0.90)) -> None:
    """A north arrow in axes coordinates (maps are in a projected CRS with north up)."""
    x, y = xy
    ax.annotate("N", xy=(x, y), xytext=(x, y - 0.08), xycoords="axes fraction",
                textcoords="axes fraction", ha="center", va="center", fontsize=11,
                zorder=20,  # regular weight: the bundled CJK font has no bold face
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.8,
                      "edgecolor": "none"},
                arrowprops={"facecolor": "black", "edgecolor": "black", "width": 3,
                            "headwidth": 9, "headlength": 10})


def add_map_furniture(ax: Axes, *, title: str = "", legend: bool = True,
                      legend_handles: Sequence[Any] | None = None, legend_title: str = "",
                      legend_loc: str = "lower left", note: str = "") -> None:
    """Title, legend, scale bar, north arrow and attribution.

    Parameters
    ----------
    ax
        Map axes in a metric CRS (1 data unit = 1 m).
    title
        Map title (Chinese and English welcome).
    legend
        Draw a legend.
    legend_handles
        Explicit legend handles; otherwise the axes' labelled artists.
    legend_title
        Legend heading.
    legend_loc
        Matplotlib legend location.
    note
        Extra text under the attribution (method, date...).
    """
    from matplotlib_scalebar.scalebar import ScaleBar

    if title:
        ax.set_title(title)
    if legend:
        kw: dict[str, Any] = {"loc": legend_loc, "title": legend_title or None, "frameon": True,
                              "framealpha": 0.9}
        if legend_handles is not None:
            ax.legend(handles=list(legend_handles), **kw)
        else:
            handles, _labels = ax.get_legend_handles_labels()
            if handles:
                ax.legend(**kw)
    ax.add_artist(ScaleBar(1.0, units="m", location="lower right", length_fraction=0.22,
                           box_alpha=0.8, font_properties={"size": 8, "family": cjk_font_family()}))
    add_north_arrow(ax)
    text = ATTRIBUTION if not note else f"{note}\n{ATTRIBUTION}"
    ax.text(0.99, -0.01, text, transform=ax.transAxes, ha="right", va="top", fontsize=6.5,
            color="#444444")



def label_points(ax: Axes, gdf: gpd.GeoDataFrame, column: str, *, fontsize: float = 6.5,
                 color: str = "#222222", halo: bool = True, thin: bool = True) -> int:
    """Label features at their representative points with a white halo.

    With ``thin``, labels that would overlap one already placed are left out, larger features
    first, so a city-scale map stays readable (call it after the view is set). Returns the
    number of labels drawn.
    """
    import matplotlib.patheffects as pe

    # A halo wide enough to close the gaps inside a glyph: at 2 pt the fill showed between the
    # two strokes of 二, which then read as 三 (东园二村 as 东园三村).
    effects = [pe.withStroke(linewidth=0.5 * fontsize, foreground="white")] if halo else None
    pts = gdf.geometry.representative_point()
    texts = ["" if t is None or t != t else str(t) for t in gdf[column]]  # None or NaN
    order = np.argsort(-gdf.geometry.area.to_numpy(), kind="stable")
    x0, x1 = ax.get_xlim()
    bbox = ax.get_window_extent()
    fig = ax.get_figure(root=True)
    dpi = fig.dpi if fig is not None else 100.0
    width_pt = max(bbox.width, 1.0) * 72.0 / dpi
    m_per_pt = (x1 - x0) / width_pt  # metres per typographic point (equal aspect)
    placed: list[tuple[float, float, float, float]] = []
    n = 0
    for i in order:
        text = texts[i]
        if not text:
            continue
        x, y = float(pts.x.iloc[i]), float(pts.y.iloc[i])
        lines = text.split("\n")
        # CJK glyphs are about one em wide, Latin about 0.6 em; 1.2 em line height
        em = max(sum(1.0 if ord(c) > 0x2E80 else 0.6 for c in line) for line in lines)
        hw = 0.5 * em * fontsize * m_per_pt
        hh = 0.5 * 1.2 * len(lines) * fontsize * m_per_pt
        box = (x - hw, y - hh, x + hw, y + hh)
        if thin and any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                        for b in placed):
            continue
        placed.append(box)
        # Labels sit on their features, inside the map: left out of the layout engine, which
        # would otherwise measure every one of them on each pass.
        ax.text(x, y, text, fontsize=fontsize, ha="center", va="center", color=color,
                path_effects=effects, zorder=15, in_layout=False)
        n += 1
    return n


def least_covered_corner(ax: Axes, gdf: gpd.GeoDataFrame, *, box_share: float = 0.35) -> str:
    """The axes corner (legend location) whose box covers the least of ``gdf``'s area."""
    import shapely

    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    w, h = (x1 - x0) * box_share, (y1 - y0) * box_share
    corners = {"upper left": (x0, y1 - h), "upper right": (x1 - w, y1 - h),
               "lower left": (x0, y0), "lower right": (x1 - w, y0)}
    if gdf.empty:
        return "upper left"
    geom = gdf.geometry.to_numpy()
    cover = {loc: float(shapely.area(shapely.intersection(
        geom, shapely.box(cx, cy, cx + w, cy + h))).sum()) for loc, (cx, cy) in corners.items()}
    # lower right holds the scale bar; ties keep the usual upper left
    cover["lower right"] += 0.25 * w * h
    return min(cover, key=lambda k: (cover[k], k != "upper left"))


# --- units maps ---

__all__ += ["plot_units"]  # appended here so that stage sections merge cleanly


def _has_subdistricts(units: gpd.GeoDataFrame) -> bool:
    return "subdistrict" in units.columns and bool(units["subdistrict"].notna().any())


def plot_units(units: gpd.GeoDataFrame, *, layers: OSMLayers, title: str = "",
               ax: Axes | None = None, barriers: gpd.GeoDataFrame | None = None,
               label: bool = True) -> tuple[Figure, Axes]:
    """Map of update units (更新单元) coloured by class, with ids, barriers and size flags.

    Parameters
    ----------
    units
        The ``update_units`` layer (``unit_id``, ``unit_class``, ``size_status``), metric CRS.
    layers
        OSM layers for the basemap (water, roads, study area).
    title
        Place name, shown after the map title.
    ax
        Axes to draw on; a new figure when ``None``.
    barriers
        Prepared barrier lines (``UnitsResult.barriers``) to draw; when ``None`` they are taken
        from ``layers`` with the default barrier classes.
    label
        Write unit ids on the map.

    Returns
    -------
    tuple of (matplotlib.figure.Figure, matplotlib.axes.Axes)
        The figure and axes.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    with map_style():
        fig, ax = new_map(ax, figsize=(11.0, 9.0))
        draw_basemap(ax, layers, roads=True, water=True, study_area=True, zorder=0)
        handles: list[Any] = []
        counts = units["unit_class"].value_counts() if not units.empty else {}
        for cls, color in CLASS_COLORS.items():
            sub = units[units["unit_class"] == cls]
            if sub.empty:
                continue
            sub.plot(ax=ax, color=color, alpha=0.55, linewidth=0, zorder=1)
            handles.append(Patch(facecolor=color, alpha=0.55, edgecolor="none",
                                 label=f"{CLASS_LABELS[cls]} ({counts[cls]})"))
        if barriers is None:

            d = UnitsConfig()
            barriers = barrier_lines(layers, highways=d.barrier_highways,
                                     railways=d.barrier_railways,
                                     waterways=d.barrier_waterways, water_edges=False)
        kind = barriers["kind"] if "kind" in barriers.columns else None
        if kind is not None:
            styles: list[tuple[str, str, float, Any, str]] = [
                ("road", "#4d4d4d", 1.3, "-", "主要道路 Main road (barrier)"),
                ("rail", "#000000", 1.3, (0, (4, 2)), "铁路 Rail"),
                ("subdistrict", "#7a0177", 1.8, (0, (6, 2, 1, 2)),
                 "街道边界 Sub-district boundary")]
            for k, color, lw, ls, text in styles:
                sub = barriers[kind == k]
                if not sub.empty:
                    sub.plot(ax=ax, color=color, linewidth=lw, linestyle=ls, zorder=3)
                    handles.append(Line2D([], [], color=color, linewidth=lw, linestyle=ls,
                                          label=text))
        # the basemap's grey roads (all classes, barriers or not), which the units map shows
        handles.append(Line2D([], [], color=ROAD_STYLE["secondary"][1], linewidth=1.0,
                              label="道路 Roads (basemap)"))
        units.boundary.plot(ax=ax, color="white", linewidth=2.2, zorder=4)
        units.boundary.plot(ax=ax, color="#222222", linewidth=0.9, zorder=5)
        handles.append(Line2D([], [], color="#222222", linewidth=0.9,
                              label="更新单元边界 Unit boundary"))
        out = units[units["size_status"] != "within"] if "size_status" in units.columns \
            else units.iloc[0:0]
        if not out.empty:
            # a light, sparse hatch: it flags units without hiding their class colour
            out.plot(ax=ax, facecolor="none", edgecolor="#c0000066", hatch="/", linewidth=0.8,
                     zorder=6)
            handles.append(Patch(facecolor="none", edgecolor="#c0000066", hatch="/",
                                 label="规模超限 Outside size bounds"))
        if _water_in_view(ax, layers):
            handles.append(Patch(facecolor=WATER_COLOR, edgecolor="none", label="水域 Water"))
        if label and not units.empty:
            text = units["unit_id"].astype(str)
            if len(units) <= 150 and "area_m2" in units.columns:
                text = text + "\n" + (units["area_m2"] / 1e4).map("{:.1f} ha".format)
            label_points(ax, units.assign(_label=text), "_label", fontsize=6.0)
        heading = "更新单元 Update units"
        add_map_furniture(ax, title=f"{heading} — {title}" if title else heading, legend=False,
                          note=f"{len(units)} units; ids ordered "
                               + ("by sub-district, then " if _has_subdistricts(units) else "")
                               + "in rows north → south, west → east")
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=True,
                  framealpha=0.95, title=legend_title("update_units"), borderaxespad=0.0)
    return fig, ax


# --- lifecircle maps ---

__all__ += ["plot_lifecircle"]

_SUBTYPE_MARKERS = ("o", "s", "^", "D", "P", "v", "*", "X")
_SUBTYPE_COLORS = ("#2c3e91", "#7b2c8f", "#0f6f6f", "#8a4b08", "#333333", "#a11d5b")


def plot_lifecircle(lc: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame, category: str, *,
                    layers: OSMLayers, cfg: Any, ax: Axes | None = None
                    ) -> tuple[Figure, Axes]:
    """Map whether each community meets one category's standard, and by how much it fails.

    Communities are filled by the standard (meets; fails within 1.5× of an item's distance;
    beyond; an item unreachable); facilities are marked by subtype, ▲ mandatory, △ optional.

    Parameters
    ----------
    lc
        The ``lifecircle`` layer (metric CRS) with ``<category>_ratio`` and ``<category>_ok``.
    facilities
        The ``facilities`` layer (``category``, ``subtype``, ``on_network``).
    category
        Category key, e.g. ``"childcare"``.
    layers
        Parsed OSM layers for the basemap.
    cfg
        The run's :class:`~urbanunits.config.Config` (standards, speed, title).
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
    ratio = lc[f"{category}_ratio"].to_numpy(dtype=float)
    ok = lc[f"{category}_ok"].to_numpy(dtype=bool)
    polys = lc.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    with map_style():
        fig, ax = new_map(ax)
        draw_basemap(ax, layers, extent=lc)
        handles: list[Any] = []
        for lo, hi, text, color in LIFECIRCLE_CLASSES:
            # The verdict decides the first class, so rounding in the ratio never flips it.
            sel = ok if lo == 0.0 else ~ok & (ratio > lo) & (ratio <= hi)
            if not sel.any():
                continue  # no legend entry for what is not drawn
            handles.append(Patch(facecolor=color, edgecolor="#555555", linewidth=0.4,
                                 label=f"{text} ({int(sel.sum())})"))
            _draw_communities(ax, lc[sel & polys], lc[sel & ~polys], color)
        none = np.isnan(ratio) & ~ok
        if none.any():
            handles.append(Patch(facecolor=UNREACHABLE_COLOR, edgecolor="#555555",
                                 linewidth=0.4, label="未达标, 某▲项不可达 fails, a ▲ item "
                                 f"unreachable ({int(none.sum())})"))
            _draw_communities(ax, lc[none & polys], lc[none & ~polys], UNREACHABLE_COLOR)
        fac = facilities[facilities["category"] == category]
        for i, (s, st) in enumerate(cat.subtypes.items()):
            sub = fac[fac["subtype"] == s]
            marker = _SUBTYPE_MARKERS[i % len(_SUBTYPE_MARKERS)]
            color = _SUBTYPE_COLORS[i % len(_SUBTYPE_COLORS)]
            mark = {"mandatory": "▲", "optional": "△"}.get(st.requirement, "")
            tail = "" if mark else ", 不计入 not counted"
            label = f"{mark}{st.label or s} ≤{st.distance_m:g} m ({len(sub)}{tail})"
            if len(sub):
                on = sub["on_network"].to_numpy(dtype=bool) if "on_network" in sub else None
                ax.scatter(sub.geometry.x, sub.geometry.y, marker=marker, s=46, c=color,
                           edgecolors="white", linewidths=0.8, zorder=8)
                if on is not None and (~on).any():
                    off = sub[~on]
                    ax.scatter(off.geometry.x, off.geometry.y, marker="x", s=30, c="#b2182b",
                               linewidths=1.0, zorder=9)
            handles.append(Line2D([], [], marker=marker, linestyle="none", markersize=7,
                                  markerfacecolor=color, markeredgecolor="white", label=label))
        if "on_network" in fac and (~fac["on_network"].astype(bool)).any():
            handles.append(Line2D([], [], marker="x", linestyle="none", markersize=6,
                                  color="#b2182b", label="远离步行网络 off the walk network"))
        if "name" in lc.columns:
            label_points(ax, lc[polys], "name", fontsize=5.5)
        n_ok = int(ok.sum())
        speed = cfg.lifecircle.walk_speed_m_s
        title = f"{cat.label} — 步行可达 walking access"
        if cfg.title:
            title += f"\n{cfg.title}"
        rule = " ∧ ".join(f"{s} ≤{st.distance_m:g} m" for s, st in cat.subtypes.items()
                          if st.requirement == "mandatory")
        note = (f"{n_ok}/{len(lc)} 个小区达标 communities meet GB 50180-2018: 每项▲设施均在"
                f"标准距离内 every ▲ item within its own distance\n{rule}; 层级不互相替代 "
                f"levels not inclusive; 步行网络距离 network distance, {speed:g} m/s")
        if fac.empty:
            note = "研究范围内无此类设施 no facility of this category in the area; " + note
        add_map_furniture(ax, title=title, legend_handles=handles,
                          legend_loc=least_covered_corner(ax, lc),
                          legend_title="按标准 by the standard", note=note)
    return fig, ax


def _draw_communities(ax: Axes, polys: gpd.GeoDataFrame, points: gpd.GeoDataFrame,
                      color: str) -> None:
    if len(polys):
        polys.plot(ax=ax, color=color, edgecolor="#555555", linewidth=0.4, alpha=0.9, zorder=3)
    if len(points):
        ax.scatter(points.geometry.x, points.geometry.y, s=40, c=color, edgecolors="#555555",
                   linewidths=0.4, zorder=3)


# --- packages maps ---

__all__ += ["plot_packages"]


_PACKAGE_PALETTE = (
    [mpl.colormaps["tab10"](i) for i in range(10) if i != 7]  # grey is for other communities
    + [mpl.colormaps["tab20"](i) for i in range(1, 20, 2) if i != 15])
#: Above this many packages the legend summarises instead of listing every package.
_LEGEND_MAX_PACKAGES = 15
#: Above this many communities their names are left off (package ids are always shown).
_NAME_MAX_COMMUNITIES = 200


def _package_colors(packages: gpd.GeoDataFrame) -> list[Any]:
    """One colour per package: all distinct when the palette suffices, otherwise a greedy
    graph colouring (networkx) so that packages within 300 m of each other differ."""
    import networkx as nx
    import shapely

    n = len(packages)
    if n <= len(_PACKAGE_PALETTE):
        return [_PACKAGE_PALETTE[i] for i in range(n)]
    geoms = packages.geometry.values
    i, j = shapely.STRtree(geoms).query(geoms, predicate="dwithin", distance=300.0)
    G = nx.Graph()
    G.add_nodes_from(range(n))
    G.add_edges_from((int(a), int(b)) for a, b in zip(i, j, strict=True) if a < b)
    col = nx.greedy_color(G, strategy="largest_first")
    return [_PACKAGE_PALETTE[col[k] % len(_PACKAGE_PALETTE)] for k in range(n)]


def plot_packages(packages: gpd.GeoDataFrame, communities: gpd.GeoDataFrame, *,
                  layers: OSMLayers, title: str = "", ax: Axes | None = None
                  ) -> tuple[Figure, Axes]:
    """Map renewal packages over the old and new communities.

    Each package has its own colour: a light fill and a thick outline for the package, its
    member communities filled in that colour and outlined in black. New communities are grey.
    Package ids are labelled with their floor area and households; packages above a ceiling or
    below a floor are marked in the legend.

    Parameters
    ----------
    packages
        ``renewal_packages`` layer (``package_id``, ``n_communities``, ``floor_area_m2``,
        ``households``, ``above_ceiling``, ``below_floor``), metric CRS.
    communities
        ``communities`` layer (``name``, ``is_old``, ``package_id``), same CRS.
    layers
        OSM layers for the basemap.
    title
        Map title (a place name); the stage name is added.
    ax
        Axes to draw on (a new figure otherwise).

    Returns
    -------
    tuple
        ``(fig, ax)``.
    """
    import matplotlib.patheffects as pe
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    with map_style():
        fig, ax = new_map(ax, figsize=(10.0, 10.0))
        draw_basemap(ax, layers, extent=communities)
        if not layers.buildings.empty:
            layers.buildings.plot(ax=ax, color="#ebebeb", linewidth=0, zorder=1)
        comm = communities.copy()
        pts = comm.geometry.geom_type == "Point"
        if pts.any():
            comm.loc[pts, "geometry"] = comm.geometry[pts].buffer(30.0)
        new = comm[~comm["is_old"].astype(bool)]
        old = comm[comm["is_old"].astype(bool)]
        handles: list[Any] = []
        if not new.empty:
            new.plot(ax=ax, facecolor="#d9d9d9", edgecolor="#8c8c8c", linewidth=0.5, zorder=2)
            if len(comm) <= _NAME_MAX_COMMUNITIES:
                label_points(ax, new, "name", fontsize=5.5, color="#6b6b6b")
            handles.append(Patch(facecolor="#d9d9d9", edgecolor="#8c8c8c",
                                 label="其他小区 Other community (newer or age unknown)"))
        unpackaged = old[old["package_id"].isna()] if "package_id" in old.columns else old
        if not unpackaged.empty:
            unpackaged.plot(ax=ax, facecolor="white", edgecolor="black", linewidth=0.6,
                            hatch="////", zorder=3)
            handles.append(Patch(facecolor="white", edgecolor="black", hatch="////",
                                 label="老旧小区（未入片区） Old, not packaged"))
        pk = packages.sort_values("package_id").reset_index(drop=True)
        colors = _package_colors(pk)
        halo = [pe.withStroke(linewidth=2.5, foreground="white")]
        below = pk["below_floor"].astype(bool).to_numpy() if not pk.empty else np.zeros(0, bool)
        above = pk["above_ceiling"].astype(bool).to_numpy() if not pk.empty else below
        if not pk.empty:
            pk.plot(ax=ax, color=colors, alpha=0.18, edgecolor="none", zorder=2.5)
            for mask, style in ((~below, "-"), (below, "--")):
                if mask.any():
                    pk[mask].boundary.plot(ax=ax, color=[c for c, m in zip(colors, mask,
                                                                           strict=True) if m],
                                           linewidth=2.0, linestyle=style, zorder=4)
            color_of = dict(zip(pk["package_id"], colors, strict=True))
            members = old[old["package_id"].isin(color_of)]
            if not members.empty:
                members.plot(ax=ax, color=[color_of[p] for p in members["package_id"]],
                             alpha=0.75, edgecolor="black", linewidth=0.6, zorder=3)
        if len(pk) <= _LEGEND_MAX_PACKAGES:
            for i, color in enumerate(colors):
                row = pk.iloc[i]
                flag = "  ▲" if above[i] else "  ▽" if below[i] else ""
                fa, hh = float(row["floor_area_m2"]), float(row["households"])
                size = (f"{fa / 1e4:,.1f} 万m², {hh:,.0f} 户" if fa == fa and hh == hh
                        else "面积未知 floor area unknown")
                handles.append(Patch(
                    facecolor=color, edgecolor=color, alpha=0.8,
                    label=f"{row['package_id']}: {int(row['n_communities'])} 个小区, "
                          f"{size}{flag}"))
        else:
            handles.append(Patch(facecolor=_PACKAGE_PALETTE[0], edgecolor=_PACKAGE_PALETTE[0],
                                 alpha=0.8, label=f"{len(pk)} 个片区 packages "
                                 "(one colour each; neighbours differ)"))
        if not old.empty and len(comm) <= _NAME_MAX_COMMUNITIES:
            label_points(ax, old, "name", fontsize=6.0, color="#1a1a1a")
        if not pk.empty:
            # Package ids sit on the top vertex of each outline so they do not hide member names
            # (the top of the bounding box may fall inside a neighbouring package).
            import shapely

            tops = [xy[np.argmax(xy[:, 1])] if len(xy) else (np.nan, np.nan)
                    for xy in (shapely.get_coordinates(g) for g in pk.geometry.values)]
            id_size = 12 if len(pk) <= 30 else 7
            for (x, y), pid, color in zip(tops, pk["package_id"], colors, strict=True):
                ax.text(x, y, str(pid), fontsize=id_size, ha="center", va="bottom", color=color,
                        path_effects=halo, zorder=16)
        if above.any():
            handles.append(Line2D([], [], linestyle="none", marker="^", color="black",
                                  label="▲ 单个小区超过上限 One community above a ceiling"))
        if below.any():
            handles.append(Line2D([], [], color="#444444", linestyle="--", linewidth=1.5,
                                  label="▽ 低于下限 Below a floor (dashed outline)"))
        full = f"片区化改造 Renewal packages — {title}" if title else "片区化改造 Renewal packages"
        add_map_furniture(ax, title=full, legend_handles=handles,
                          legend_title=legend_title("renewal_packages"),
                          legend_loc=least_covered_corner(ax, communities),
                          note="Floor area = footprints × levels (estimated); "
                               "households = floor area / m² per household")
    return fig, ax

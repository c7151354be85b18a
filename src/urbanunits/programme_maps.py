"""Programme figures: packages coloured by programme year, and each year's load against its caps.

Both follow :mod:`urbanunits.maps` (CJK fonts, legend, scale bar, north arrow, attribution) and
return ``(fig, ax)`` without showing anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from urbanunits.catalog import STATUS_COLORS, legend_title
from urbanunits.maps import (
    add_map_furniture,
    draw_basemap,
    label_points,
    map_style,
    new_map,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from urbanunits.sources.osm import OSMLayers

__all__ = ["STATUS_COLORS", "plot_programme", "plot_programme_years"]

_STATUS_EN = {"实施": "implement", "生成": "generate", "谋划": "plan", "储备": "reserve"}


def _year_colors(programme: gpd.GeoDataFrame) -> dict[str, str]:
    """Year label → colour: the first three years by status, later 谋划 years paler still."""
    labels = _labels(programme)
    out: dict[str, str] = {}
    for label, status in dict(zip(labels, programme["status"], strict=True)).items():
        out[label] = STATUS_COLORS.get(status, "#fddbc7")
    return dict(sorted(out.items(), key=lambda kv: (kv[0] == "储备 reserve", kv[0])))


def _labels(programme: gpd.GeoDataFrame) -> list[str]:
    return [f"{int(y)} {s} {_STATUS_EN.get(s, '')}" if pd.notna(y) else "储备 reserve"
            for y, s in zip(programme["year"], programme["status"], strict=True)]


def plot_programme(programme: gpd.GeoDataFrame, communities: gpd.GeoDataFrame | None = None,
                   *, layers: OSMLayers | None = None, title: str = "",
                   ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Map the renewal packages coloured by programme year (实施/生成/谋划/储备).

    Parameters
    ----------
    programme
        Layer ``programme`` (``package_id``, ``year``, ``status``, ``score``), metric CRS.
    communities
        Layer ``programme_communities`` (drawn inside their package, outlined).
    layers
        OSM layers for the basemap (water, roads, study area); None draws the packages alone.
    title
        Place name; the map name is added.
    ax
        Axes to draw on (a new figure otherwise).

    Returns
    -------
    tuple
        ``(fig, ax)``.
    """
    from matplotlib.patches import Patch

    with map_style():
        fig, ax = new_map(ax, figsize=(10.0, 10.0))
        if layers is not None:
            draw_basemap(ax, layers, extent=programme)
        colors = _year_colors(programme)
        labels = _labels(programme)
        if not programme.empty:
            fill = [colors[lab] for lab in labels]
            programme.plot(ax=ax, color=fill, alpha=0.55, edgecolor="#333333", linewidth=1.2,
                           zorder=3)
        if communities is not None and not communities.empty:
            comm = communities.copy()
            pts = comm.geometry.geom_type == "Point"
            if pts.any():
                comm.loc[pts, "geometry"] = comm.geometry[pts].buffer(30.0)
            comm.plot(ax=ax, facecolor="none", edgecolor="black", linewidth=0.4, zorder=4)
        if not programme.empty:
            lab = programme.assign(_label=[f"{p}\n{s:.0f}" for p, s in
                                           zip(programme["package_id"], programme["score"],
                                               strict=True)])
            label_points(ax, lab, "_label", fontsize=8 if len(lab) <= 40 else 5.5)
        handles: list[Any] = []
        for label, color in colors.items():
            sel = [lb == label for lb in labels]
            n = int(np.sum(sel))
            fa = float(programme.loc[sel, "floor_area_m2"].sum())
            handles.append(Patch(facecolor=color, edgecolor="#333333", alpha=0.8,
                                 label=f"{label}: {n} 个片区, {fa / 1e4:,.1f} 万m²"))
        full = (f"老旧小区改造项目库 Renewal programme — {title}" if title
                else "老旧小区改造项目库 Renewal programme")
        add_map_furniture(ax, title=full, legend_handles=handles,
                          legend_title=legend_title("programme"), legend_loc="upper left",
                          note="Labels: package id and score (0–100); whole packages are "
                               "phased under the yearly caps")
    return fig, ax


# column, its cap, title, divisor, decimals (floor area to 0.1 万m² as the packages map says it)
_RESOURCE_PLOTS = (("floor_area_m2", "floor_area_cap_m2", "建筑面积 Floor area (万m²)", 1e4, 1),
                   ("households", "households_cap", "户数 Households", 1.0, 0),
                   ("cost_yuan", "budget_cap_yuan", "投资 Cost (万元)", 1e4, 0))


def plot_programme_years(years: pd.DataFrame, *, title: str = "") -> tuple[Figure, Any]:
    """Bar chart of each year's floor area, households and cost against its caps.

    Parameters
    ----------
    years
        Table ``programme_years`` (``label``, ``status``, ``floor_area_m2``,
        ``floor_area_cap_m2``, ``households``, ``households_cap``, ``cost_yuan``,
        ``budget_cap_yuan``); the reserve row is drawn as a hatched bar without a cap.
    title
        Place name for the title.

    Returns
    -------
    tuple
        ``(fig, axes)``: one axes per resource.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import StrMethodFormatter

    with map_style():
        fig = Figure(figsize=(11.0, 4.2), layout="constrained")
        axes = fig.subplots(1, len(_RESOURCE_PLOTS))
        x = np.arange(len(years))
        colors = [STATUS_COLORS.get(s, "#fddbc7") for s in years["status"]]
        for ax, (col, cap, label, scale, decimals) in zip(axes, _RESOURCE_PLOTS, strict=True):
            vals = years[col].to_numpy(dtype=float) / scale
            bars = ax.bar(x, vals, color=colors, edgecolor="#333333", linewidth=0.6)
            for bar, status in zip(bars, years["status"], strict=True):
                if status == "储备":
                    bar.set_hatch("///")
            caps = pd.to_numeric(years[cap], errors="coerce").to_numpy(dtype=float) / scale
            for xi, c in zip(x, caps, strict=True):
                if np.isfinite(c):
                    ax.hlines(c, xi - 0.42, xi + 0.42, colors="black", linestyles="--",
                              linewidth=1.4, zorder=5)
            for xi, v in zip(x, vals, strict=True):
                ax.text(xi, v, f"{v:,.{decimals}f}" if v else "0", ha="center", va="bottom",
                        fontsize=7)
            ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
            ax.set_xticks(x, [str(s).replace(" ", "\n") for s in years["label"]], fontsize=7)
            ax.set_title(label, fontsize=9)
            ax.spines[["top", "right"]].set_visible(False)
        handles: list[Any] = [Patch(facecolor=c, edgecolor="#333333",
                                    label=f"{s} {_STATUS_EN[s]}")
                              for s, c in STATUS_COLORS.items()]
        handles.append(Line2D([], [], color="black", linestyle="--", label="年度上限 cap"))
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles),
                   fontsize=7, frameon=False)
        head = "年度计划与上限 Programme years against their caps"
        fig.suptitle(f"{head} — {title}" if title else head, fontsize=11)
    return fig, axes

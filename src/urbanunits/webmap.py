"""One self-contained HTML map of a run, for street offices and residents' committees.

The page is drawn with folium (Leaflet). folium links Leaflet and a few styling libraries from
CDNs, which a street-office PC behind a firewall or offline cannot reach, so every external
script and stylesheet is removed and Leaflet's own JS and CSS are inlined from the
``django-js-lib-leaflet`` wheel (it only ships those files; nothing imports Django). The data are
GeoJSON inside the page: it opens from a USB stick with a double click, no network, no GIS
software. An OpenStreetMap basemap is in the layer control but off by default, so nothing is
requested unless someone with internet turns it on.

Layers, each toggleable: update units (by class), renewal packages, residential communities
coloured by their life-circle verdict (number of facility categories missing), facilities (by
category) and service gaps (off when the page opens). Popups are Chinese/English (name, year,
floor area, households, walking distances, verdicts).
"""

from __future__ import annotations

import html
import logging
import re
from importlib import resources
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from urbanunits._fields import LAYER_LABELS, category_label, field_label
from urbanunits._files import atomic_path
from urbanunits.catalog import (
    CATALOG,
    CATEGORY_COLORS,
    CLASS_COLORS,
    CLASS_LABELS,
    MISSING_BREAKS,
    UNREACHABLE_COLOR,
    legend_title,
    style_of,
)
from urbanunits.errors import InputFileError
from urbanunits.runfile import read_run

__all__ = ["MAP_LAYERS", "VERDICT_CLASSES", "build_webmap", "write_webmap"]

logger = logging.getLogger(__name__)

# Layers drawn, in drawing order (bottom to top); a run without one simply lacks it. A click
# opens the popup of the topmost shape, so service gaps (one per community and missing item, on
# the community's outline) lie under the communities, and packages are outlines only.
MAP_LAYERS = ("update_units", "renewal_packages", "service_gaps", "communities", "facilities")
# Shown when the page opens; the others are one click away in the layer control.
_SHOWN = {"update_units", "renewal_packages", "communities", "facilities"}
# Communities by number of categories missing (GB 50180 life-circle verdict), as in the QGIS style.
# The colours are the QGIS style's (catalog.MISSING_BREAKS); the labels are worded for residents.
VERDICT_CLASSES: list[tuple[int, str, str]] = [
    (k, color, label) for k, ((*_, color, _), label) in enumerate(zip(MISSING_BREAKS, (
        "全部达标 all categories within reach", "缺 1 类 one category missing",
        "缺 2 类 two missing", "缺 3 类 three missing", "缺 4 类及以上 four or more missing"),
        strict=True))]
_NO_VERDICT = UNREACHABLE_COLOR
_PACKAGE_EDGE = style_of("renewal_packages").edge
_LABELS = {**LAYER_LABELS, "communities": "小区生活圈评价 Communities by life-circle verdict"}
_POPUP_FIELDS: dict[str, list[str]] = {
    "update_units": ["unit_id", "class_label", "subdistrict", "area_m2", "n_old_communities",
                     "residential_floor_area_m2", "package_ids"],
    "renewal_packages": ["package_id", "member_names", "n_communities", "floor_area_m2",
                         "households", "population", "unit_ids"],
    "communities": ["name", "community_id", "built_year", "floor_area_m2", "households",
                    "population", "is_old", "n_missing", "all_ok"],
    "service_gaps": ["name", "category_label", "subtype_label", "distance_m", "dist_m",
                     "shortfall_m", "reason_text"],
    "facilities": ["name", "category", "subtype", "facility_id"],
}


def _leaflet_assets() -> tuple[str, str]:
    root = resources.files("js_lib_leaflet") / "static" / "js_lib_leaflet"
    return ((root / "leaflet.js").read_text(encoding="utf-8"),
            (root / "leaflet.css").read_text(encoding="utf-8"))


def _communities(layers: dict[str, Any]) -> gpd.GeoDataFrame | None:
    """Life-circle verdicts per community, with year, floor area and households joined."""
    lc, comm = layers.get("lifecircle"), layers.get("communities")
    if isinstance(lc, gpd.GeoDataFrame):
        if isinstance(comm, gpd.GeoDataFrame) and "community_id" in comm.columns:
            extra = [c for c in ("built_year", "floor_area_m2", "households") if c in comm.columns
                     and c not in lc.columns]
            lc = lc.merge(pd.DataFrame(comm[["community_id", *extra]]), on="community_id",
                          how="left")
        return lc
    return comm if isinstance(comm, gpd.GeoDataFrame) else None


def _verdict_color(n_missing: object) -> str:
    if n_missing is None or pd.isna(n_missing):
        return _NO_VERDICT
    k = int(n_missing)  # type: ignore[call-overload]
    return VERDICT_CLASSES[min(k, len(VERDICT_CLASSES) - 1)][1]


def _for_popup(gdf: gpd.GeoDataFrame, fields: list[str]) -> gpd.GeoDataFrame:
    """Keep popup fields, as readable text (rounded numbers, 是/否 for verdicts)."""
    keep = [f for f in fields if f in gdf.columns]
    out = gdf[[*keep, gdf.geometry.name]].copy()
    for col in keep:
        s = out[col]
        if pd.api.types.is_bool_dtype(s) or col.endswith("_ok") or col == "is_old":
            out[col] = s.map(lambda v: "" if v is None or pd.isna(v) else
                             "是 yes" if bool(v) else "否 no")
        elif pd.api.types.is_float_dtype(s):
            out[col] = s.map(lambda v: "" if pd.isna(v) else f"{v:,.0f}")
        else:
            out[col] = s.map(lambda v: "" if v is None or (not isinstance(v, str) and pd.isna(v))
                             else str(v))
    return out


def build_webmap(gpkg: str | Path, *, title: str) -> str:
    """Render the run's HTML map as one self-contained page.

    Parameters
    ----------
    gpkg
        The run's GeoPackage.
    title
        Page title (the run's name).

    Returns
    -------
    str
        The HTML document.
    """
    import folium
    from branca.element import Element

    run = read_run(gpkg, only={*MAP_LAYERS, "lifecircle"})  # communities: _communities
    layers: dict[str, Any] = dict(run.layers)
    layers["communities"] = _communities(layers)
    wgs = {name: layers[name].to_crs(4326) for name in MAP_LAYERS
           if isinstance(layers.get(name), gpd.GeoDataFrame) and len(layers[name])}
    if not wgs:

        raise InputFileError(gpkg, "has none of the mapped layers (" + ", ".join(MAP_LAYERS)
                             + ")", "run `make all` with this config first")
    if "communities" in wgs and "n_missing" in wgs["communities"].columns:
        wgs["communities"]["_color"] = wgs["communities"]["n_missing"].map(_verdict_color)

    m = folium.Map(tiles=None, control_scale=True, prefer_canvas=False)
    folium.TileLayer("OpenStreetMap", name="OpenStreetMap 底图 basemap (needs internet)",
                     overlay=True, show=False, control=True).add_to(m)
    for name, gdf in wgs.items():
        fields = [f for f in _POPUP_FIELDS[name] if f in gdf.columns]
        if name == "communities":
            # per category (those with a distance ratio; subtypes have none): distance, minutes
            # and verdict
            cats = [c.removesuffix("_ratio") for c in gdf.columns if c.endswith("_ratio")]
            fields += [f"{cat}_{what}" for cat in cats for what in ("dist_m", "minutes", "ok")
                       if f"{cat}_{what}" in gdf.columns]
        data = _for_popup(gdf, fields)
        if "_color" in gdf.columns:
            data["_color"] = gdf["_color"]
        if name == "update_units" and "unit_class" in gdf.columns:
            data["_color"] = gdf["unit_class"].map(CLASS_COLORS).fillna("#d9d9d9")
        if name in ("facilities", "service_gaps") and "category" in gdf.columns:
            data["_color"] = gdf["category"].map(CATEGORY_COLORS).fillna("#555555")
        popup = folium.GeoJsonPopup(fields=fields, aliases=[field_label(f) for f in fields],
                                    localize=False, labels=True, max_width=420)
        kw: dict[str, Any] = {}
        if name == "facilities":
            kw["marker"] = folium.CircleMarker(radius=6, weight=1, fill=True,
                                               fill_opacity=0.9)
        folium.GeoJson(data.to_json(drop_id=True), name=_LABELS.get(name, name),
                       style_function=_style(name), popup=popup, show=name in _SHOWN,
                       **kw).add_to(m)
    m.fit_bounds(_bounds(wgs))
    folium.LayerControl(collapsed=False, position="topright").add_to(m)
    root: Any = m.get_root()  # a branca Figure, typed as its Element base
    root.header.add_child(Element(f"<title>{html.escape(title)}</title>"))
    # Chinese fonts that Windows, macOS and Linux desktops have; the page ships none (size).
    root.header.add_child(Element(
        "<style>body, .leaflet-container {font-family: 'Microsoft YaHei', 'PingFang SC', "
        "'Noto Sans CJK SC', 'Source Han Sans SC', 'WenQuanYi Micro Hei', sans-serif;}</style>"))
    root.html.add_child(Element(_legend_html(wgs)))
    page = root.render()
    return _inline_assets(page)


def _style(name: str) -> Any:
    def style(feature: dict[str, Any]) -> dict[str, Any]:
        color = feature["properties"].get("_color") or "#3182bd"
        if name == "update_units":
            return {"fillColor": color, "color": "#555555", "weight": 1, "fillOpacity": 0.45}
        if name == "renewal_packages":
            return {"fill": False, "color": _PACKAGE_EDGE, "weight": 4}
        if name == "communities":
            return {"fillColor": color, "color": "#333333", "weight": 1, "fillOpacity": 0.8}
        if name == "service_gaps":
            return {"fillColor": color, "color": color, "weight": 2, "fillOpacity": 0.25,
                    "dashArray": "4 3"}
        return {"fillColor": color, "color": "#222222", "weight": 1, "fillOpacity": 0.9}
    return style


def _bounds(wgs: dict[str, gpd.GeoDataFrame]) -> list[list[float]]:
    boxes = [g.total_bounds for g in wgs.values()]
    minx = min(b[0] for b in boxes)
    miny = min(b[1] for b in boxes)
    maxx = max(b[2] for b in boxes)
    maxy = max(b[3] for b in boxes)
    return [[float(miny), float(minx)], [float(maxy), float(maxx)]]


def _legend_html(wgs: dict[str, gpd.GeoDataFrame]) -> str:
    def row(color: str, label: str, *, round_: bool = False) -> str:
        radius = "50%" if round_ else "2px"
        return (f'<div><span style="display:inline-block;width:12px;height:12px;'
                f'background:{color};border:1px solid #333;border-radius:{radius};'
                f'margin-right:6px;vertical-align:middle"></span>{html.escape(label)}</div>')

    parts = ['<div id="urbanunits-legend" style="position:fixed;bottom:48px;left:12px;'
             'z-index:1000;background:rgba(255,255,255,0.92);padding:8px 10px;'
             'border-radius:6px;font:12px/1.5 sans-serif;box-shadow:0 1px 4px rgba(0,0,0,.3);'
             'max-width:300px;max-height:70vh;overflow:auto">']
    if "communities" in wgs:
        parts.append("<b>小区生活圈评价 Life-circle verdict</b>")
        parts += [row(color, label) for _, color, label in VERDICT_CLASSES]
        parts.append(row(_NO_VERDICT, "未评价 not assessed"))
    if "facilities" in wgs:
        parts.append(f"<b>{legend_title('facilities')}</b>")
        cats = sorted(set(wgs["facilities"].get("category", pd.Series(dtype=str)).dropna()))
        parts += [row(CATEGORY_COLORS.get(c, "#555555"), category_label(c), round_=True)
                  for c in cats]
    if "renewal_packages" in wgs:
        parts.append('<div><span style="display:inline-block;width:12px;height:12px;'
                     f'border:3px solid {_PACKAGE_EDGE};margin-right:6px;vertical-align:middle">'
                     '</span>改造片区 Renewal package</div>')
    if "update_units" in wgs and "unit_class" in wgs["update_units"].columns:
        parts.append(f"<b>{CATALOG['update_units'].title}</b>")
        present = set(wgs["update_units"]["unit_class"].dropna())
        parts += [row(color, CLASS_LABELS.get(k, k)) for k, color in CLASS_COLORS.items()
                  if k in present]
    parts.append('<div style="color:#666;margin-top:4px">点击图斑查看详情 click a shape for '
                 "details</div></div>")
    return "".join(parts)


_EXTERNAL = re.compile(
    r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>|<link[^>]*\bhref="https?://[^"]*"[^>]*>',
    re.IGNORECASE)


def _inline_assets(page: str) -> str:
    """Drop folium's CDN links and inline Leaflet, so the page works without network."""
    js, css = _leaflet_assets()
    page = _EXTERNAL.sub("", page)
    # "</" inside an inline script would end it early; Leaflet's minified code has none, but be
    # safe. A replacement function keeps backslashes in the code as they are.
    safe_js = js.replace("</", "<\\/")
    inline = f"<style>{css}</style>\n<script>{safe_js}</script>\n"
    return re.sub(r"<head>", lambda _: "<head>\n" + inline, page, count=1)


def write_webmap(gpkg: str | Path, dest: str | Path, *, title: str,
                 final: str | Path | None = None) -> Path:
    """Write :func:`build_webmap`'s page atomically to ``dest``.

    Parameters
    ----------
    gpkg
        The run's GeoPackage.
    dest
        The ``.html`` file, e.g. ``<output>/<name>.html``.
    title
        Page title.
    final
        Where the file will be once ``dest``'s staging folder is swapped in (the path logged);
        ``dest`` by default.

    Returns
    -------
    pathlib.Path
        ``dest``.
    """
    page = build_webmap(gpkg, title=title)
    with atomic_path(dest) as tmp:
        tmp.write_text(page, encoding="utf-8")
    logger.info("wrote the HTML map %s (%.1f MB)", final or dest, len(page.encode()) / 1e6)
    return Path(dest)

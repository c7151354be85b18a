"""QGIS QML styles, generated so that layers open in QGIS looking like the report maps.

Only the parts QGIS needs are written: a renderer (single, categorised or graduated symbols) and
optional simple labels. Colours are hex strings shared with :mod:`urbanunits.maps`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from xml.sax.saxutils import quoteattr

__all__ = ["CJK_FALLBACK_FAMILIES", "categorized", "graduated", "single"]

#: Families QGIS tries, in order, when the label font is not installed (QgsTextFormat reads them
#: from ``<families>``, QGIS 3.20+): the toolkit's bundled Noto Sans CJK (see README for installing
#: it), then the CJK fonts Windows, macOS and Linux ship, so Chinese labels never become boxes.
CJK_FALLBACK_FAMILIES = ("Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "SimHei",
                         "PingFang SC", "Hiragino Sans GB", "Heiti SC", "WenQuanYi Micro Hei",
                         "WenQuanYi Zen Hei", "Droid Sans Fallback")

_GEOM = {"fill": 2, "line": 1, "marker": 0}


def _rgba(color: str, alpha: float = 1.0) -> str:
    c = color.lstrip("#")
    r, g, b = int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)
    return f"{r},{g},{b},{round(alpha * 255)}"


def _opt(name: str, value: str) -> str:
    return f'<Option name={quoteattr(name)} type="QString" value={quoteattr(value)}/>'


def _symbol(kind: str, name: str, color: str, *, alpha: float, outline: str,
            width_mm: float) -> str:
    if kind == "fill":
        cls = "SimpleFill"
        opts = [_opt("color", _rgba(color, alpha)), _opt("outline_color", _rgba(outline)),
                _opt("outline_width", str(width_mm)), _opt("outline_width_unit", "MM"),
                _opt("style", "solid"), _opt("outline_style", "solid")]
    elif kind == "line":
        cls = "SimpleLine"
        opts = [_opt("line_color", _rgba(color, alpha)), _opt("line_width", str(width_mm)),
                _opt("line_width_unit", "MM"), _opt("line_style", "solid")]
    else:
        cls = "SimpleMarker"
        opts = [_opt("color", _rgba(color, alpha)), _opt("outline_color", _rgba(outline)),
                _opt("name", "circle"), _opt("size", "2.4"), _opt("size_unit", "MM"),
                _opt("outline_width", "0.2")]
    return (f'<symbol type="{kind}" name={quoteattr(name)} alpha="1" clip_to_extent="1" '
            f'force_rhr="0"><layer class="{cls}" enabled="1" pass="0" locked="0">'
            f'<Option type="Map">{"".join(opts)}</Option></layer></symbol>')


def _labels(field: str | None, font: str) -> str:
    if not field:
        return ""
    fallbacks = [f for f in CJK_FALLBACK_FAMILIES if f != font]
    families = "".join(f"<family name={quoteattr(f)}/>" for f in fallbacks)
    return (
        '<labeling type="simple"><settings calloutType="simple">'
        f'<text-style fieldName={quoteattr(field)} isExpression="0" fontSize="8" '
        f'fontFamily={quoteattr(font)} textColor="30,30,30,255" fontWeight="50">'
        f"<families>{families}</families></text-style>"
        '<text-buffer bufferDraw="1" bufferSize="0.8" bufferSizeUnits="MM" '
        'bufferColor="255,255,255,255"/>'
        '<placement placement="1" dist="0" priority="5"/>'
        '<rendering obstacle="1" displayAll="0" fontMinPixelSize="3"/>'
        '</settings></labeling>'
    )


def _wrap(renderer: str, kind: str, label_field: str | None, font: str) -> str:
    enabled = "1" if label_field else "0"
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        f'<qgis version="3.34.0" styleCategories="Symbology|Labeling" labelsEnabled="{enabled}">'
        f"{renderer}{_labels(label_field, font)}"
        f"<layerGeometryType>{_GEOM[kind]}</layerGeometryType></qgis>\n"
    )


def single(kind: str, color: str, *, alpha: float = 1.0, outline: str = "#333333",
           width_mm: float = 0.26, label_field: str | None = None,
           font: str = "Noto Sans CJK SC") -> str:
    """QML with one symbol for every feature.

    Parameters
    ----------
    kind
        ``"fill"``, ``"line"`` or ``"marker"``.
    color
        Hex colour.
    alpha
        Fill opacity, 0–1.
    outline
        Outline colour (fills and markers).
    width_mm
        Line or outline width in millimetres.
    label_field
        Field to label features with, if any.
    font
        Label font family (a CJK font so that Chinese names render); the families of
        :data:`CJK_FALLBACK_FAMILIES` follow it as fallbacks.

    Returns
    -------
    str
        The QML document.
    """
    sym = _symbol(kind, "0", color, alpha=alpha, outline=outline, width_mm=width_mm)
    renderer = (f'<renderer-v2 type="singleSymbol" symbollevels="0" enableorderby="0" '
                f'forceraster="0"><symbols>{sym}</symbols></renderer-v2>')
    return _wrap(renderer, kind, label_field, font)


def categorized(kind: str, field: str, classes: Mapping[str, tuple[str, str]], *,
                alpha: float = 1.0, outline: str = "#333333", width_mm: float = 0.26,
                label_field: str | None = None, font: str = "Noto Sans CJK SC") -> str:
    """QML colouring features by the value of ``field``.

    Parameters
    ----------
    kind
        ``"fill"``, ``"line"`` or ``"marker"``.
    field
        The attribute to classify on.
    classes
        Value → (hex colour, legend label).
    alpha, outline, width_mm, label_field, font
        As in :func:`single`.

    Returns
    -------
    str
        The QML document.
    """
    cats, syms = [], []
    for i, (value, (color, label)) in enumerate(classes.items()):
        cats.append(f'<category value={quoteattr(str(value))} symbol="{i}" '
                    f'label={quoteattr(label)} render="true"/>')
        syms.append(_symbol(kind, str(i), color, alpha=alpha, outline=outline, width_mm=width_mm))
    renderer = (f'<renderer-v2 type="categorizedSymbol" attr={quoteattr(field)} '
                f'symbollevels="0" enableorderby="0" forceraster="0">'
                f'<categories>{"".join(cats)}</categories><symbols>{"".join(syms)}</symbols>'
                f"</renderer-v2>")
    return _wrap(renderer, kind, label_field, font)


def graduated(kind: str, field: str, breaks: Sequence[tuple[float, float, str, str]], *,
              alpha: float = 1.0, outline: str = "#333333", width_mm: float = 0.26,
              label_field: str | None = None, font: str = "Noto Sans CJK SC") -> str:
    """QML colouring features by ranges of a numeric ``field``.

    Parameters
    ----------
    kind
        ``"fill"``, ``"line"`` or ``"marker"``.
    field
        Numeric attribute.
    breaks
        (lower, upper, hex colour, label) per range.
    alpha, outline, width_mm, label_field, font
        As in :func:`single`.

    Returns
    -------
    str
        The QML document.
    """
    ranges, syms = [], []
    for i, (lo, hi, color, label) in enumerate(breaks):
        ranges.append(f'<range lower="{lo}" upper="{hi}" symbol="{i}" label={quoteattr(label)} '
                      f'render="true"/>')
        syms.append(_symbol(kind, str(i), color, alpha=alpha, outline=outline, width_mm=width_mm))
    renderer = (f'<renderer-v2 type="graduatedSymbol" attr={quoteattr(field)} '
                f'graduatedMethod="GraduatedColor" symbollevels="0" enableorderby="0" '
                f'forceraster="0"><ranges>{"".join(ranges)}</ranges>'
                f'<symbols>{"".join(syms)}</symbols></renderer-v2>')
    return _wrap(renderer, kind, label_field, font)

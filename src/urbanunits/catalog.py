"""The run's layers, listed once: owner stage, geometry type, title, style and colours.

Every layer a run writes to its GeoPackage has one :class:`LayerSpec` here. The GeoPackage's
QGIS styles (:func:`urbanunits.export.layer_styles`), the report maps (:mod:`urbanunits.maps`,
:mod:`urbanunits.programme_maps`), the HTML map (:mod:`urbanunits.webmap`), the PostGIS and File
Geodatabase exports (:mod:`urbanunits.publish`) and the pipeline's per-stage layer lists read
their colours, legend titles and geometry types from it, so a layer looks the same everywhere.

The module is neutral: it imports no stage, reader or writer, so any of them may import it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from urbanunits.config import default_categories

__all__ = [
    "CATALOG",
    "CATEGORY_COLORS",
    "CLASS_COLORS",
    "CLASS_LABELS",
    "DEFAULT_STYLE",
    "KNOWN_GEOMETRY",
    "LAYER_ALIASES",
    "LAYER_LABELS",
    "LIFECIRCLE_CLASSES",
    "MISSING_BREAKS",
    "SHARE_BREAKS",
    "SITES_COLORS",
    "STAGES",
    "STAGE_LAYERS",
    "STATUS_COLORS",
    "UNREACHABLE_COLOR",
    "LayerSpec",
    "Style",
    "canonical_name",
    "layer_spec",
    "legend_title",
    "style_of",
]

logger = logging.getLogger(__name__)

# --- colours and classes ----------------------------------------------------------------------

#: Unit classes, in the order the units stage tries its rules, with their map labels.
CLASS_LABELS: dict[str, str] = {
    "historic_conservation": "历史风貌保护 Historic conservation",
    "old_community_renewal": "老旧小区改造 Old-community renewal",
    "residential_upgrading": "居住品质提升 Residential upgrading",
    "commercial_mixed": "商业商务综合 Commercial / mixed use",
    "industrial_transformation": "产业转型 Industrial transformation",
    "public_service": "公共服务 Public services",
    "green_open_space": "绿地开敞空间 Green / open space",
    "general_renewal": "综合更新 General (land use untagged)",
}

# Colours follow the conventions of Chinese land-use plans (residential yellow, commercial red,
# industrial tan, public services pink, green space green); renewal-specific classes stand out.
CLASS_COLORS: dict[str, str] = {
    "historic_conservation": "#6a3d9a",
    "old_community_renewal": "#f16913",
    "residential_upgrading": "#fed976",
    "commercial_mixed": "#e31a1c",
    "industrial_transformation": "#a6761d",
    "public_service": "#f768a1",
    "green_open_space": "#41ab5d",
    "general_renewal": "#d9d9d9",
}

#: One colour per facility category (QGIS styles and the HTML map).
CATEGORY_COLORS: dict[str, str] = {"elderly_care": "#7b2c8f", "childcare": "#e08214",
                                   "clinic": "#c0392b", "commerce": "#2c3e91",
                                   "education": "#0f6f6f"}

#: One colour per programme status, from "now" (deep) to "later" (pale); reserve is grey.
STATUS_COLORS: dict[str, str] = {"实施": "#b2182b", "生成": "#ef8a62", "谋划": "#fddbc7",
                                 "储备": "#bdbdbd"}

#: Communities by number of categories missing: (lower, upper, colour, label).
MISSING_BREAKS: list[tuple[float, float, str, str]] = [
    (-0.5, 0.5, "#1a9850", "0 缺项 none missing"),
    (0.5, 1.5, "#a6d96a", "1 类缺项 one missing"),
    (1.5, 2.5, "#fee08b", "2 类缺项 two missing"),
    (2.5, 3.5, "#fc8d59", "3 类缺项 three missing"),
    (3.5, 99.0, "#d73027", "4+ 类缺项 four or more missing")]

#: Units and packages by the share of residents with every category met.
SHARE_BREAKS: list[tuple[float, float, str, str]] = [
    (-0.01, 0.5, "#d73027", "< 50 %"), (0.5, 0.8, "#fee08b", "50–80 %"),
    (0.8, 0.95, "#a6d96a", "80–95 %"), (0.95, 1.01, "#1a9850", "≥ 95 %")]

#: Life-circle map classes by the standard itself: the largest distance ÷ standard over the
#: category's mandatory items (``<cat>_ratio``). A walking-minute scale would put passing and
#: failing communities in one colour, since the items' distances differ (300, 500, 1000 m).
LIFECIRCLE_CLASSES: list[tuple[float, float, str, str]] = [
    (0.0, 1.0, "达标 every ▲ item within its standard", "#1a9850"),
    (1.0, 1.5, "未达标, ≤1.5× 标准 fails, within 1.5× the standard", "#fee08b"),
    (1.5, float("inf"), "未达标, >1.5× 标准 fails, beyond 1.5×", "#d73027"),
]
#: Communities with an item out of reach on the walk network.
UNREACHABLE_COLOR = "#bdbdbd"

#: Fills of the sites map: meets today, newly covered by the suggested sites, still missing.
SITES_COLORS = {"ok": "#1a9850", "new": "#fdae61", "missing": "#d73027"}


# --- styles and layers ------------------------------------------------------------------------

@dataclass(frozen=True)
class Style:
    """How a layer is drawn: one fill, classes of a column, or ranges of a numeric column.

    Attributes
    ----------
    fill
        Fill (or line, or marker) colour when the layer has one symbol.
    alpha
        Fill opacity, 0–1.
    edge
        Outline colour.
    width_mm
        Line or outline width, millimetres.
    column
        The column the classes or ranges are read from; when a layer lacks it, the layer gets
        :data:`DEFAULT_STYLE` instead.
    classes
        Value → (hex colour, legend label), for a categorised style.
    breaks
        (lower, upper, hex colour, legend label) per range, for a graduated style.
    labels
        Columns to label features with, the first one present is used.
    legend_title
        Legend heading, Chinese and English.
    """

    fill: str = "#6a9fb5"
    alpha: float = 0.6
    edge: str = "#333333"
    width_mm: float = 0.26
    column: str | None = None
    classes: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    breaks: tuple[tuple[float, float, str, str], ...] = ()
    labels: tuple[str, ...] = ()
    legend_title: str = ""

    def label_field(self, columns: set[str] | frozenset[str]) -> str | None:
        """The first of :attr:`labels` among ``columns`` (None when none is)."""
        return next((c for c in self.labels if c in columns), None)

    def applies_to(self, columns: set[str] | frozenset[str]) -> bool:
        """Whether a layer with ``columns`` has what this style classifies on."""
        return self.column is None or self.column in columns


#: The style of a layer the catalog does not style (or that lacks its style's column).
DEFAULT_STYLE = Style()


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a run.

    Attributes
    ----------
    name
        Layer name in the GeoPackage, PostGIS and the File Geodatabase.
    stage
        The stage that computes it (``units``, ``packages``, ``lifecircle``, ``programme``,
        ``sites``).
    geometry
        OGC geometry type declared when the layer is written empty (``MultiPolygon``, ``Point``,
        ...); None for an attribute table.
    title
        Chinese/English layer title (GIS layer aliases, table comments, map legends).
    style
        How it is drawn (QGIS style, report and HTML maps); None for an attribute table.
    key
        The column identifying a feature, if the layer has one.
    aliases
        Former names, read from the GeoPackages of earlier releases.
    """

    name: str
    stage: str
    geometry: str | None
    title: str
    style: Style | None = None
    key: str | None = None
    aliases: tuple[str, ...] = ()


def _category_classes() -> dict[str, tuple[str, str]]:
    labels = {k: cat.label for k, cat in default_categories().items()}
    return {k: (c, labels.get(k, k)) for k, c in CATEGORY_COLORS.items()}


_CATEGORIES = _category_classes()
# GeoPackages store booleans as integers; CSVs and old files as text.
_IS_OLD = {v: ("#d95f02" if old else "#7570b3",
               "老旧小区 Old community" if old else "其他小区 Newer community")
           for v, old in (("1", True), ("true", True), ("0", False), ("false", False))}

#: Stages in run order; a stage's layers are computed from the earlier stages' layers.
STAGES: tuple[str, ...] = ("units", "packages", "lifecircle", "programme", "sites")

#: Every layer a run writes, by stage, in the order they are written.
CATALOG: dict[str, LayerSpec] = {s.name: s for s in (
    LayerSpec("update_units", "units", "MultiPolygon", "更新单元 Update units",
              Style(column="unit_class", alpha=0.75, labels=("unit_id",),
                    classes={k: (c, CLASS_LABELS.get(k, k)) for k, c in CLASS_COLORS.items()},
                    legend_title="单元类型 Unit class"), key="unit_id"),
    LayerSpec("blocks", "units", "MultiPolygon", "街区 Blocks",
              Style(fill="#ffffff", alpha=0.0, edge="#888888", width_mm=0.2), key="block_id"),
    # every community of the study area, old and newer (``is_old``); up to 0.x it was
    # written as ``old_communities``, a name that hid the newer ones
    LayerSpec("communities", "packages", "MultiPolygon", "小区 Communities",
              Style(column="is_old", alpha=0.8, classes=_IS_OLD, labels=("name",),
                    legend_title="小区 Communities"), key="community_id",
              aliases=("old_communities",)),
    LayerSpec("renewal_packages", "packages", "MultiPolygon", "改造片区 Renewal packages",
              Style(fill="#fdb462", alpha=0.35, edge="#b35806", width_mm=0.8,
                    labels=("package_id",), legend_title="改造片区 Renewal packages"),
              key="package_id"),
    LayerSpec("package_links", "packages", "MultiLineString", "片区连线 Package links", Style()),
    LayerSpec("lifecircle", "lifecircle", "MultiPolygon", "生活圈 Life circles",
              Style(column="n_missing", alpha=0.8, breaks=tuple(MISSING_BREAKS),
                    labels=("name",), legend_title="缺项类别数 Categories missing"),
              key="community_id"),
    LayerSpec("facilities", "lifecircle", "Point", "设施 Facilities",
              Style(column="category", alpha=0.9, classes=_CATEGORIES, labels=("name",),
                    legend_title="设施 Facilities"), key="facility_id"),
    LayerSpec("service_gaps", "lifecircle", "MultiPolygon", "服务缺口 Service gaps",
              Style(column="category", alpha=0.9, classes=_CATEGORIES, labels=("name",),
                    legend_title="服务缺口 Service gaps")),
    LayerSpec("lifecircle_summary", "lifecircle", None, "生活圈汇总 Life-circle summary"),
    LayerSpec("lifecircle_units", "lifecircle", "MultiPolygon", "单元生活圈 Life circles by unit",
              Style(column="all_share", alpha=0.6, breaks=tuple(SHARE_BREAKS),
                    labels=("unit_id", "package_id"),
                    legend_title="全部达标比例 Share all met"), key="unit_id"),
    LayerSpec("lifecircle_packages", "lifecircle", "MultiPolygon",
              "片区生活圈 Life circles by package",
              Style(column="all_share", alpha=0.6, breaks=tuple(SHARE_BREAKS),
                    labels=("unit_id", "package_id"),
                    legend_title="全部达标比例 Share all met"), key="package_id"),
    LayerSpec("isochrones", "lifecircle", "MultiPolygon", "等时圈 Isochrones",
              Style(column="category", alpha=0.35, classes=_CATEGORIES, labels=("name",),
                    legend_title="等时圈 Isochrones")),
    LayerSpec("programme", "programme", "MultiPolygon", "项目库 Renewal programme",
              Style(column="status", alpha=0.6, classes={k: (c, k) for k, c in
                                                          STATUS_COLORS.items()},
                    labels=("package_id",), legend_title="计划年度 Programme year"),
              key="package_id"),
    LayerSpec("programme_communities", "programme", "MultiPolygon",
              "项目库小区 Programme communities", Style(), key="community_id"),
    LayerSpec("elevator_candidates", "programme", "MultiPolygon",
              "加装电梯候选 Lift candidates", Style()),
    LayerSpec("programme_years", "programme", None, "年度计划 Programme years"),
    LayerSpec("site_suggestions", "sites", "Point", "建议选址 Suggested sites", Style()),
    LayerSpec("accessibility", "sites", "MultiPolygon", "供需可达性 Supply-demand access",
              Style(), key="community_id"),
    LayerSpec("site_candidates", "sites", "Point", "候选用地 Candidate sites", Style()),
)}

#: Former layer name → current name (read from earlier releases' GeoPackages).
LAYER_ALIASES: dict[str, str] = {a: s.name for s in CATALOG.values() for a in s.aliases}

#: The layers each stage owns. When a stage rewrites its layers, the later stages' layers in
#: the file are dropped rather than left pointing at ids that no longer exist.
STAGE_LAYERS: dict[str, frozenset[str]] = {
    stage: frozenset(s.name for s in CATALOG.values() if s.stage == stage) for stage in STAGES}

#: Geometry type of each spatial layer, declared when a layer is written empty.
KNOWN_GEOMETRY: dict[str, str] = {n: s.geometry for n, s in CATALOG.items() if s.geometry}

#: Chinese/English title of each layer.
LAYER_LABELS: dict[str, str] = {n: s.title for n, s in CATALOG.items()}

_warned: set[str] = set()


def canonical_name(name: str) -> str:
    """The current name of a layer, warning once per process when ``name`` is a former one.

    Parameters
    ----------
    name
        A layer name, e.g. read from an earlier release's GeoPackage.

    Returns
    -------
    str
        ``name``, or the name that replaced it.
    """
    new = LAYER_ALIASES.get(name)
    if new is None:
        return name
    if name not in _warned:
        _warned.add(name)
        logger.warning("layer %r is the former name of %r and is read as it; run the stage "
                       "again to write it under its new name (the old name is read for one "
                       "more release)", name, new)
    return new


def style_of(name: str) -> Style:
    """The style of a catalogued layer (:data:`DEFAULT_STYLE` for an attribute table)."""
    return CATALOG[name].style or DEFAULT_STYLE


def legend_title(name: str) -> str:
    """The legend heading of a layer's map: its style's, else the layer title."""
    return style_of(name).legend_title or CATALOG[name].title


def layer_spec(name: str) -> LayerSpec | None:
    """The catalog entry of a layer (former names resolve, with a warning), or None."""
    return CATALOG.get(canonical_name(name))

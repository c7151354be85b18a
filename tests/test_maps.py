"""Map style: the CJK font has the glyphs we print; furniture is drawn; PNGs are written atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib.text
import pytest
from fontTools.ttLib import TTCollection, TTFont

from urbanunits import maps
from urbanunits.config import Config
from urbanunits.sources.osm import OSMLayers


def _cmap_for_family(path: Path, family: str) -> set[int]:
    fonts = TTCollection(str(path)).fonts if path.suffix.lower() in {".ttc", ".otc"} else [
        TTFont(str(path))]
    for font in fonts:
        names = {str(r) for r in font["name"].names if r.nameID in (1, 16)}
        if family in names:
            return set(font.getBestCmap())
    raise AssertionError(f"{family} not in {path}")


def test_cjk_font_has_every_glyph_we_print(demo_layers: OSMLayers) -> None:
    path = maps.cjk_font_path()
    assert path is not None and path.is_file()
    family = maps.cjk_font_family()
    cmap = _cmap_for_family(path, family)
    text = "".join(demo_layers.residential["name"].dropna()) + "".join(
        demo_layers.facilities["name"].dropna()) + "更新单元片区化改造生活圈养老托幼医疗商业"
    missing = sorted({ch for ch in text if not ch.isspace() and ord(ch) not in cmap})
    assert not missing, missing


def test_map_furniture_and_atomic_save(tmp_path: Path, demo_layers: OSMLayers) -> None:
    with maps.map_style():
        fig, ax = maps.new_map()
        maps.draw_basemap(ax, demo_layers)
        demo_layers.residential.plot(ax=ax, color="orange", label="住区 Residential")
        maps.label_points(ax, demo_layers.residential, "name")
        maps.add_map_furniture(ax, title="陆家嘴 测试")
    texts = [t.get_text() for t in ax.findobj(matplotlib.text.Text)]
    assert "N" in texts  # north arrow
    assert any("OpenStreetMap" in t for t in texts)  # attribution
    assert "东园一村" in texts
    assert ax.get_legend() is not None
    from matplotlib_scalebar.scalebar import ScaleBar

    assert any(isinstance(a, ScaleBar) for a in ax.artists)
    fonts = {t.get_fontfamily()[0] for t in ax.texts}
    assert maps.cjk_font_family() in fonts
    out = maps.save_map(fig, tmp_path / "m" / "x.png", dpi=60)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["x.png"]


def test_new_map_reuses_given_axes() -> None:
    fig0, ax0 = maps.new_map()
    fig1, ax1 = maps.new_map(ax0)
    assert ax1 is ax0 and fig1 is fig0


@pytest.mark.parametrize("bad", ["/proc/definitely/not/writable/x.png"])
def test_save_map_failure_leaves_nothing(bad: str) -> None:
    fig, _ = maps.new_map()
    with pytest.raises(OSError):
        maps.save_map(fig, bad)


def test_crowded_labels_are_thinned_without_overlap(demo_layers: OSMLayers) -> None:
    """Hundreds of names in a small view: fewer labels are drawn, and no two overlap."""
    import geopandas as gpd
    import numpy as np
    import shapely

    x0, y0, _, _ = demo_layers.study_area.total_bounds
    rng = np.random.default_rng(3)
    xy = rng.uniform([x0, y0], [x0 + 800, y0 + 800], (400, 2))
    gdf = gpd.GeoDataFrame({"name": [f"测试小区{i}" for i in range(400)]},
                           geometry=shapely.buffer(shapely.points(xy), 5.0), crs="EPSG:32651")
    with maps.map_style():
        fig, ax = maps.new_map()
        ax.set_xlim(x0, x0 + 800)
        ax.set_ylim(y0, y0 + 800)
        n = maps.label_points(ax, gdf, "name", fontsize=6.0)
        fig.canvas.draw()
        boxes = [t.get_window_extent() for t in ax.texts]
    assert 0 < n == len(boxes) < 400
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)


def test_water_legend_only_where_water_is_drawn(demo_layers: OSMLayers, demo_cfg: Config
                                                ) -> None:
    import dataclasses

    from urbanunits.units import update_units

    units = update_units(demo_layers, demo_cfg).units
    with maps.map_style():
        _, ax = maps.plot_units(units, layers=demo_layers)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "水域 Water" in labels
    dry = dataclasses.replace(demo_layers, water=demo_layers.water.iloc[0:0],
                              waterways=demo_layers.waterways.iloc[0:0])
    with maps.map_style():
        _, ax = maps.plot_units(units, layers=dry)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "水域 Water" not in labels

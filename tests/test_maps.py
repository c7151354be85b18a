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


def _demo_map(layers: OSMLayers, *, basemap: bool = True) -> object:
    with maps.map_style():
        fig, ax = maps.new_map(figsize=(5.0, 5.0))
        if basemap:
            maps.draw_basemap(ax, layers)
        else:  # the basemap drawn directly with geopandas, as before it was cached
            maps._draw_basemap_layers(ax, layers, roads=True, water=True, study_area=True,
                                      zorder=0)
            x0, y0, x1, y1 = layers.study_area.total_bounds
            pad = 0.02 * max(x1 - x0, y1 - y0)
            ax.set_xlim(x0 - pad, x1 + pad)
            ax.set_ylim(y0 - pad, y1 + pad)
        layers.residential.plot(ax=ax, color="orange", label="住区 Residential")
        maps.add_map_furniture(ax, title="陆家嘴 测试")
    return fig


def _pixels(path: Path) -> object:
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_saved_map_is_savefigs_tight_crop_and_the_shared_basemap_draws_the_same(
        tmp_path: Path, demo_layers: OSMLayers) -> None:
    import numpy as np

    fig = _demo_map(demo_layers)
    ours = maps.save_map(fig, tmp_path / "ours.png", dpi=80)
    with maps.map_style():
        fig.savefig(tmp_path / "tight.png", dpi=80, bbox_inches="tight")  # the oracle
    a, b = _pixels(ours), _pixels(tmp_path / "tight.png")
    # same picture, cropped to within a couple of pixels of matplotlib's tight box
    assert abs(a.shape[0] - b.shape[0]) <= 3 and abs(a.shape[1] - b.shape[1]) <= 3
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    assert np.mean(np.abs(a[:h, :w] - b[:h, :w]).max(axis=2) > 60) < 0.05
    # a second map from the same layers copies the cached basemap: pixel for pixel the same as
    # drawing the layers with geopandas
    again = maps.save_map(_demo_map(demo_layers), tmp_path / "again.png", dpi=80)
    direct = maps.save_map(_demo_map(demo_layers, basemap=False), tmp_path / "direct.png",
                           dpi=80)
    assert np.array_equal(_pixels(again), _pixels(direct))
    assert np.array_equal(_pixels(again), a)


def test_a_legend_beside_the_map_is_saved_whole_as_savefigs_tight_box(
        tmp_path: Path, demo_layers: OSMLayers) -> None:
    import numpy as np

    def beside(**where: object) -> object:
        fig = _demo_map(demo_layers)
        with maps.map_style():
            fig.axes[0].legend(  # type: ignore[attr-defined]
                title="a long legend title that reaches past the canvas", **where)
        return fig

    # anchored beside the map (known before drawing), or inside it but too wide (seen once
    # drawn): either way the picture is savefig's tight box, legend whole
    for name, where in (("anchored", {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)}),
                        ("too_wide", {"loc": "upper right", "fontsize": 30})):
        ours = maps.save_map(beside(**where), tmp_path / f"{name}.png", dpi=60)
        with maps.map_style():
            beside(**where).savefig(tmp_path / "tight.png", dpi=60,  # the oracle
                                    bbox_inches="tight")
        a, b = _pixels(ours), _pixels(tmp_path / "tight.png")
        assert a.shape[1] > 5.0 * 60, name  # wider than the 5-inch figure: the legend is in
        assert abs(a.shape[0] - b.shape[0]) <= 2 and abs(a.shape[1] - b.shape[1]) <= 2, name
        h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
        # the same picture to within sub-pixel shifts of the layout (big text: many edges)
        assert np.mean(np.abs(a[:h, :w] - b[:h, :w]).max(axis=2) > 60) < 0.08, name


def test_encode_png_decodes_to_the_pixels_given() -> None:
    import io

    import numpy as np
    from PIL import Image

    from urbanunits.map_files import encode_png

    rng = np.random.default_rng(7)
    rgba = rng.integers(0, 256, (37, 53, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[10:20, 5:40] = (30, 60, 90, 255)  # flat colour, as maps mostly are
    opaque = Image.open(io.BytesIO(encode_png(rgba, dpi=150)))
    assert opaque.mode == "RGB" and np.array_equal(np.asarray(opaque), rgba[..., :3])
    assert opaque.info["dpi"] == pytest.approx((150, 150), abs=0.02)  # whole pixels per metre
    rgba[3, 4, 3] = 0  # one transparent pixel: the alpha band is kept
    clear = Image.open(io.BytesIO(encode_png(rgba)))
    assert clear.mode == "RGBA" and np.array_equal(np.asarray(clear), rgba)
    assert "dpi" not in clear.info


def test_maps_saved_in_parallel_are_the_ones_saved_alone(tmp_path: Path,
                                                         demo_layers: OSMLayers) -> None:
    import numpy as np

    # a figure is drawn once in each case (a second draw may settle its layout differently)
    alone = [maps.save_map(_demo_map(demo_layers), tmp_path / f"alone{i}.png", dpi=50)
             for i in range(3)]
    with maps.saving_in_parallel(workers=2):
        queued = [maps.save_map(_demo_map(demo_layers), tmp_path / "par" / f"m{i}.png", dpi=50)
                  for i in range(3)]
        assert not any(p.exists() for p in queued)  # written when the block ends
    for a, q in zip(alone, queued, strict=True):
        assert np.array_equal(_pixels(a), _pixels(q))
    with pytest.raises(RuntimeError), maps.saving_in_parallel(workers=2):
        maps.save_map(_demo_map(demo_layers), tmp_path / "failed" / "m.png", dpi=50)
        raise RuntimeError("a stage failed")
    assert not (tmp_path / "failed").exists()


def test_a_nested_block_draws_its_maps_when_it_ends(tmp_path: Path,
                                                    demo_layers: OSMLayers) -> None:
    # urbanunits batch wraps run_all, whose own block ends just before its staging folder is
    # moved into place: maps left for the outer block were written into the moved-away folder.
    with maps.saving_in_parallel(workers=1):
        first = maps.save_map(_demo_map(demo_layers), tmp_path / "outer.png", dpi=30)
        with maps.saving_in_parallel():
            inner = [maps.save_map(_demo_map(demo_layers), tmp_path / f"inner{i}.png", dpi=30)
                     for i in range(2)]
        assert all(p.is_file() for p in inner)
        assert not first.exists()  # still the outer block's to draw
    assert first.is_file()


def test_a_map_given_as_a_function_is_built_once_by_the_process_that_draws_it(
        tmp_path: Path, demo_layers: OSMLayers) -> None:
    import os

    import numpy as np

    from urbanunits.map_files import start_drawing

    log = tmp_path / "built.txt"  # one line per figure built, by whichever process built it

    def build() -> object:
        with log.open("a", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
        return _demo_map(demo_layers)

    def builds() -> list[str]:
        return log.read_text(encoding="utf-8").split() if log.exists() else []

    alone = maps.save_map(_demo_map(demo_layers), tmp_path / "alone.png", dpi=50)
    at_once = maps.save_map(build, tmp_path / "at_once.png", dpi=50)  # no block: built now
    assert builds() == [str(os.getpid())] and at_once.exists()
    with maps.saving_in_parallel(workers=2):
        queued = [maps.save_map(build, tmp_path / "par" / f"m{i}.png", dpi=50)
                  for i in range(4)]
        assert len(builds()) == 1  # queued, not built
        start_drawing()
    assert len(builds()) == 1 + len(queued)  # each map built once, in one process or the other
    for path in [at_once, *queued]:
        assert np.array_equal(_pixels(alone), _pixels(path))


def test_maps_started_early_are_the_ones_saved_alone(tmp_path: Path,
                                                    demo_layers: OSMLayers) -> None:
    import numpy as np
    import psutil

    from urbanunits.map_files import start_drawing

    alone = [maps.save_map(_demo_map(demo_layers), tmp_path / f"alone{i}.png", dpi=50)
             for i in range(4)]
    with maps.saving_in_parallel(workers=2):
        early = [maps.save_map(_demo_map(demo_layers), tmp_path / "par" / f"m{i}.png", dpi=50)
                 for i in range(3)]
        start_drawing()  # the worker draws while the block goes on
        late = maps.save_map(_demo_map(demo_layers), tmp_path / "par" / "late.png", dpi=50)
        assert not late.exists()  # queued after the start: drawn when the block ends
    for a, q in zip(alone, [*early, late], strict=True):
        assert np.array_equal(_pixels(a), _pixels(q))
    # a block that raises after the start stops its worker and waits for it: no child is left
    # (other tests in this process may have children of their own, e.g. a Dask cluster's)
    before = {c.pid for c in psutil.Process().children()}
    with pytest.raises(RuntimeError), maps.saving_in_parallel(workers=2):
        for i in range(2):
            maps.save_map(_demo_map(demo_layers), tmp_path / "failed" / f"m{i}.png", dpi=50)
        start_drawing()
        raise RuntimeError("a stage failed")
    assert {c.pid for c in psutil.Process().children()} <= before
    import gc

    assert gc.get_freeze_count() == 0  # the heap frozen for the workers is thawed again

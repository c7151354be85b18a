"""A notebook and `make units` give the same units: both read their inputs through load_inputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import geopandas as gpd
import shapely

from urbanunits import pipeline, units
from urbanunits.config import Config
from urbanunits.sources.inputs import load_inputs


def test_notebook_path_equals_make_units_with_a_subdistrict_file(tmp_path: Path,
                                                                 demo_cfg: Config) -> None:
    x0, y0, x1, y1 = demo_cfg.study_area.bbox  # type: ignore[misc]
    mid = (x0 + x1) / 2
    streets = gpd.GeoDataFrame({"name": ["西街道", "东街道"]},
                               geometry=[shapely.box(x0 - 0.01, y0 - 0.01, mid, y1 + 0.01),
                                         shapely.box(mid, y0 - 0.01, x1 + 0.01, y1 + 0.01)],
                               crs="EPSG:4326")
    path = tmp_path / "jiedao.geojson"
    streets.to_file(path, engine="pyogrio")
    cfg = dataclasses.replace(demo_cfg, inputs=dataclasses.replace(demo_cfg.inputs,
                                                                   subdistricts=path))
    # the notebook path (notebooks/01_update_units.ipynb)
    inputs = load_inputs(cfg)
    nb = units.update_units(inputs.layers, cfg, subdistricts=inputs.subdistricts,
                            heritage_areas=inputs.heritage_areas).units
    # the make path
    mk = pipeline.run_units(cfg, write=False, draw=False).layers["update_units"]
    assert list(nb["unit_id"]) == list(mk["unit_id"])
    assert shapely.equals(nb.geometry.to_numpy(), mk.geometry.to_numpy()).all()
    assert list(nb["subdistrict"]) == list(mk["subdistrict"])
    # and the units nest in the two sub-districts
    sub = inputs.subdistricts
    assert sub is not None and len(sub) == 2
    for g in mk.geometry:
        assert max(g.intersection(s).area for s in sub.geometry) > 0.999 * g.area

"""Redrawing a finished run's maps (``urbanunits maps``) from its GeoPackage.

The stages' layers are read back where their digests match the config and inputs
(:func:`urbanunits.run_store.reuse`); what cannot be reused is computed in memory with the
pipeline's stage functions, and nothing but the maps is written.
"""

from __future__ import annotations

import shutil
import time
from types import SimpleNamespace
from typing import Any

from urbanunits._outputs import Staging
from urbanunits.config import Config
from urbanunits.drawing import (
    draw_lifecircle,
    draw_packages,
    draw_programme,
    draw_sites,
    draw_units,
    map_barriers,
    sites_from_layers,
)
from urbanunits.maps import saving_in_parallel
from urbanunits.pipeline import (
    _lifecircle_from_layers,
    _run_all,
    load_layers,
    run_programme,
    run_sites,
)
from urbanunits.run_store import StageResult, reuse, stage_outputs

__all__ = ["run_maps"]


def run_maps(cfg: Config) -> StageResult:
    """Redraw every map; the GeoPackage and tables are not touched.

    The layers are read from the run's GeoPackage when their digests match the config and
    inputs (a stage whose layers cannot be reused is computed in memory); without a usable
    GeoPackage every stage is computed in memory, as :func:`run_all` does.
    """
    # the maps are queued and drawn in parallel before the folder is swapped in
    with stage_outputs(cfg, active=True, keep=True) as staging, saving_in_parallel():
        assert staging is not None
        shutil.rmtree(staging.path(cfg.maps_dir), ignore_errors=True)
        res = _maps_from_run(cfg, staging)
        if res is None:
            res = _run_all(cfg, write=False, draw=True, staging=staging)
    res.stage = "maps"
    res.summary = []
    res.layers = {}
    return res


def _maps_from_run(cfg: Config, staging: Staging) -> StageResult | None:
    """Draw every map from the run's layers; None when the life circles cannot be reused."""


    lc = reuse(cfg, "lifecircle")
    if lc is None:
        return None
    t0 = time.perf_counter()
    layers = load_layers(cfg)
    got = dict(lc.layers)
    lcr = _lifecircle_from_layers(got)
    res = StageResult("maps")
    res.maps.append(draw_units(cfg, staging, got["update_units"], layers,
                                map_barriers(cfg, layers)))
    res.maps.append(draw_packages(cfg, staging, got["renewal_packages"], got["communities"],
                                  layers))
    res.maps += draw_lifecircle(cfg, staging, lcr, layers)
    pg = reuse(cfg, "programme", have=lc.stages)
    if pg is not None:
        pgr: Any = SimpleNamespace(packages=pg.layers["programme"],
                                   communities=pg.layers["programme_communities"],
                                   years=pg.layers["programme_years"])
    else:
        pgr = run_programme(cfg, layers=layers, packages=got["renewal_packages"],
                            communities=got["communities"], gaps=got["service_gaps"],
                            write=False, draw=False).extra["result"]
    if pg is not None or pgr.layers():
        res.maps += draw_programme(cfg, staging, pgr, layers)
    st = reuse(cfg, "sites", have=lc.stages)
    if st is not None:
        sr = sites_from_layers(got["lifecircle"], st.layers["site_suggestions"], cfg)
    else:
        lc_stage = StageResult("lifecircle", layers=got, extra={"result": lcr})
        sr = run_sites(cfg, layers=layers, lifecircle=lc_stage,
                       communities=got["communities"], write=False,
                       draw=False).extra["result"]
    res.maps += draw_sites(cfg, staging, sr, lcr, layers)
    res.seconds = time.perf_counter() - t0
    return res

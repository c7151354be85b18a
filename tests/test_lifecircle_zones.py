"""coverage_by_zone against a plain pandas groupby."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from urbanunits.config import LifeCircleConfig
from urbanunits.lifecircle import coverage_by_zone


def test_zone_sums_and_shares_match_a_groupby() -> None:
    rng = np.random.default_rng(5)
    cats = LifeCircleConfig().categories
    n = 300
    lc = gpd.GeoDataFrame({
        "community_id": np.arange(n),
        "unit_id": rng.choice(np.array(["b", "a", "c", None], dtype=object), n),
        "population": np.where(rng.random(n) < 0.1, np.nan, rng.integers(-5, 900, n)),
        **{f"{c}_ok": rng.random(n) < 0.6 for c in [*cats, "all"]}},
        geometry=shapely.points(rng.uniform(0, 1, (n, 2))), crs="EPSG:32651")
    lc.loc[lc["unit_id"] == "c", "population"] = 0.0  # a zone with nobody in it
    got = coverage_by_zone(lc, "unit_id", cats)
    df = lc[lc["unit_id"].notna()].copy()
    df["w"] = pd.to_numeric(df["population"], errors="coerce").fillna(0).clip(lower=0)
    grp = df.groupby("unit_id", sort=True)
    assert got["unit_id"].tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(got["n_communities"], grp.size().to_numpy())
    np.testing.assert_allclose(got["population"], grp["w"].sum().to_numpy())
    for c in [*cats, "all"]:
        np.testing.assert_array_equal(got[f"{c}_n_ok"], grp[f"{c}_ok"].sum().to_numpy())
        pop_ok = (df["w"] * df[f"{c}_ok"]).groupby(df["unit_id"], sort=True).sum()
        want = pop_ok.to_numpy() / grp["w"].sum().where(lambda p: p > 0).to_numpy()
        np.testing.assert_allclose(got[f"{c}_share"], want, equal_nan=True)
    assert np.isnan(got.loc[got["unit_id"] == "c", "all_share"]).all()
    assert got["n_communities"].dtype == np.int64 and got["all_n_ok"].dtype == np.int64

"""Report tables: formats follow the column names, independent of any stage."""

from __future__ import annotations

import numpy as np
import pandas as pd

from urbanunits.config import default_categories
from urbanunits.tables import column_info, data_dictionary, format_table, header


def test_formats_by_column_kind() -> None:
    df = pd.DataFrame({"community_id": ["A", "B"], "dist_m": [56.782048284019524, np.nan],
                       "area_ha": [1.23456, 2.0], "floor_area_m2": [12345.6, 7.4],
                       "pop_share_ok": [0.63249, 1.0], "is_old": [True, False],
                       "population": [2469.0, 12.0], "childcare_minutes": [4.44, 15.06]})
    out, infos = format_table(df)
    assert out["dist_m"].tolist()[0] == 57 and pd.isna(out["dist_m"].tolist()[1])
    assert out["area_ha"].tolist() == [1.23, 2.0]
    assert out["floor_area_m2"].tolist() == [12346, 7]
    assert out["pop_share_ok"].tolist() == [63.2, 100.0]
    assert out["is_old"].tolist() == ["是", "否"]
    assert str(out["population"].dtype) == "Int64" and out["population"].tolist() == [2469, 12]
    assert out["childcare_minutes"].tolist() == [4.4, 15.1]
    assert [header(i) for i in infos][:2] == ["小区编号 community_id", "步行距离(m) dist_m"]
    assert header(column_info("pop_share_ok")) == "达标人口占比(%) pop_share_ok"


def test_category_columns_take_the_configured_labels() -> None:
    cats = default_categories()
    i = column_info("childcare_kindergarten_dist_m", categories=cats)
    assert i.zh == "幼儿园距离(m)" and i.kind == "metres"
    assert column_info("commerce_ok", categories=cats).zh == "商业服务达标"
    assert column_info("commerce_ok", categories=cats).kind == "bool"


def test_dictionary_lists_every_column() -> None:
    _, infos = format_table(pd.DataFrame({"unit_id": ["U1"], "mystery": [1]}))
    d = data_dictionary({"units": infos})
    assert d["列 column"].tolist() == ["unit_id", "mystery"]
    assert d["中文 Chinese"].tolist()[0] == "单元编号"

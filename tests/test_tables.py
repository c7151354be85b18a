"""Report tables: formats follow the column names, independent of any stage."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from urbanunits.config import default_categories
from urbanunits.export import write_tables
from urbanunits.programme import CRITERIA
from urbanunits.tables import column_info, data_dictionary, format_table, header

CJK = re.compile(r"[\u4e00-\u9fff]")


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


def test_whole_numbers_print_without_a_decimal_point(tmp_path: Path) -> None:
    # the project list rounds to whole households/lifts but keeps floats; programme_years sums
    # yuan as floats; an unknown numeric column of whole numbers must not print 3.0 either
    projects = pd.DataFrame({"户数": [4261.0, np.nan], "加装电梯（幢）": [91.0, 0.0],
                             "加装电梯（台）": [335.0, 2.0], "居民意愿": [0.85, np.nan]})
    years = pd.DataFrame({"cost_yuan": [189995700.0, 0.0], "n_lifts": [335.0, 0.0],
                          "elevator_households": [3381.0, 0.0], "mystery": [3.0, 4.0],
                          "odd": [0.5, 2.0]})
    write_tables(tmp_path, {"项目库": projects, "programme_years": years})
    p = pd.read_csv(tmp_path / "项目库.csv", encoding="utf-8-sig", dtype=str,
                    keep_default_na=False)
    assert p["户数"].tolist() == ["4261", ""]
    assert p["加装电梯（幢）"].tolist() == ["91", "0"] and p["加装电梯（台）"].tolist() == ["335", "2"]
    y = pd.read_csv(tmp_path / "programme_years.csv", encoding="utf-8-sig", dtype=str)
    assert y["估算投资(元) cost_yuan"].tolist() == ["189995700", "0"]
    assert y["加装电梯台数 n_lifts"].tolist() == ["335", "0"]
    assert y["mystery"].tolist() == ["3", "4"] and y["odd"].tolist() == ["0.5", "2.0"]


def test_project_list_consent_is_a_share_in_percent() -> None:
    # the project list renames consent_share to 居民意愿, so the _share suffix never saw it
    out, infos = format_table(pd.DataFrame({"居民意愿": [0.85, 0.6667], "户数": [12.0, 3.0]}))
    assert out["居民意愿"].tolist() == [85.0, 66.7]
    assert [header(i) for i in infos] == ["居民意愿(%)", "户数"]
    assert [i.unit for i in infos] == ["%", "户"]
    assert all(i.en != i.key and i.en.isascii() for i in infos)  # an English meaning


def test_money_points_and_criteria_columns() -> None:
    cost = column_info("cost_yuan")
    assert (cost.zh, cost.unit, cost.kind) == ("估算投资(元)", "元", "yuan")
    assert column_info("budget_cap_yuan").unit == "元"
    assert column_info("households_cap").kind == "count"
    out, _ = format_table(pd.DataFrame({"score": [66.665], "age_points": [13.333],
                                        "age_norm": [0.51234], "age_years": [42.25]}))
    assert out.iloc[0].tolist() == [66.7, 13.3, 0.51, 42.2]
    for key in CRITERIA:  # every criterion of the programme, whatever its name
        for col in (f"{key}_norm", f"{key}_points"):
            info = column_info(col)
            assert info.zh != col and CJK.search(info.zh), col


def test_accessibility_columns_read_in_chinese_and_round_by_kind() -> None:
    cats = default_categories()
    df = pd.DataFrame({"elderly_care_day_care_demand": [617.25, 4.859999999999999],
                       "childcare_kindergarten_access": [1.191895113230036, 0.0],
                       "childcare_kindergarten_shortfall_places": [11.075000000000001, 0.729]})
    out, infos = format_table(df, categories=cats)
    assert [header(i) for i in infos] == [
        "日间照料中心需求人数 elderly_care_day_care_demand",
        "幼儿园可达供给(个/千需求人口) childcare_kindergarten_access",
        "幼儿园供给缺口 childcare_kindergarten_shortfall_places"]
    assert out["elderly_care_day_care_demand"].tolist() == [617, 5]
    # per 1,000 people of the demand group (children 3-6 here)
    assert out["childcare_kindergarten_access"].tolist() == [1191.9, 0.0]
    # a shortfall of 0.7 places is not none: to 0.1
    assert out["childcare_kindergarten_shortfall_places"].tolist() == [11.1, 0.7]
    # a measure with no Chinese word is left unnamed, not glued half-English (幼儿园foo)
    assert column_info("childcare_kindergarten_foo", categories=cats).zh == \
        "childcare_kindergarten_foo"


def test_gis_aliases_take_the_tables_names() -> None:
    # FileGDB aliases and web-map popups of the programme layers read Chinese too
    from urbanunits._fields import field_label

    assert field_label("cost_yuan") == "估算投资(元) Estimated cost"
    assert CJK.search(field_label("elevator_households"))
    assert field_label("clinic_dist_m") == "医疗步行距离 (m) Clinic walk (m)"  # own labels first
    assert field_label("mystery") == "mystery"


def test_text_under_a_count_name_stays_text() -> None:
    df = pd.DataFrame({"n_buildings_source": ["osm", "inventory", None], "n_lifts": [3.0, 1, 2]})
    out, _ = format_table(df)
    assert out["n_buildings_source"].tolist()[:2] == ["osm", "inventory"]
    assert out["n_lifts"].tolist() == [3, 1, 2]


def test_every_row_of_a_long_sheet_gets_its_number_format(tmp_path: Path) -> None:
    import openpyxl

    from urbanunits.export import write_tables

    n = 450
    write_tables(tmp_path, {"units": pd.DataFrame({"unit_id": [f"U{i}" for i in range(n)],
                                                   "floor_area_m2": np.arange(n) * 1000.5})})
    ws = openpyxl.load_workbook(tmp_path / "tables.xlsx")["units"]
    formats = {ws.cell(row=r, column=2).number_format for r in range(2, n + 2)}
    assert formats == {"#,##0"}

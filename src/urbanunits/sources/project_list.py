"""The fields of a bureau's project list (项目库) kept for the programme stage.

District, 街道 and 社区 names, building counts, storeys, lifts, property management, residents'
consent, a fixed plan year and the renovation type (国办发〔2020〕23号: 基础类/完善类/提升类). All
are optional; :func:`programme_fields` leaves NA where the file lacks the column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from urbanunits._years import EMPTY_CELLS
from urbanunits.sources._cells import QUANTITY, bad_value, norm, numbers, word_keys, years

__all__ = ["ELEVATOR_NO", "ELEVATOR_YES", "MANAGED_WORDS", "RENOVATION_WORDS",
           "UNMANAGED_WORDS", "programme_fields"]

ELEVATOR_YES = frozenset({"有", "是", "yes", "y", "true", "有电梯", "已装", "已加装"})
ELEVATOR_NO = frozenset({"无", "否", "no", "n", "false", "none", "没有", "无电梯", "未装"})
#: 物业: a professional property-management company counts as managed; 准物业 (basic cleaning and
#: guarding), 自治 (residents' self-management) and 托管 (run by the 社区) do not.
MANAGED_WORDS = frozenset({"有", "是", "yes", "y", "true", "1", "有物业", "专业物业", "物业公司",
                           "managed", "professional"})
UNMANAGED_WORDS = frozenset({"无", "否", "no", "n", "false", "0", "无物业", "准物业", "自治",
                             "自管", "托管", "社区托管", "none", "unmanaged"})
#: 改造类型 words → keys (国办发〔2020〕23号); a cell naming several takes the widest scope.
RENOVATION_WORDS = {"basic": ("基础", "basic"), "improvement": ("完善", "improvement"),
                    "enhancement": ("提升", "enhancement")}


def programme_fields(out: pd.DataFrame, data: pd.DataFrame, label: dict[str, str],
                     scales: dict[str, float], path: Path, lines: pd.Series) -> None:
    """Add :data:`~urbanunits._fields.PROGRAMME_FIELDS` to ``out`` (NA where the file lacks
    the column)."""
    idx = out.index
    for col in ("district", "street", "neighbourhood"):
        if col in data.columns:
            txt = data[col].astype("string").str.strip()
            out[col] = txt.mask(txt.str.lower().isin(EMPTY_CELLS)).astype(object)
        else:
            out[col] = None
    for col in ("n_buildings", "levels"):
        out[col] = (numbers(data[col], label[col], path, lines, scale=scales[col],
                            quantity=QUANTITY[col]) if col in data.columns else np.nan)
    if "n_buildings" in data.columns:
        nb = out["n_buildings"]
        part = nb.notna() & (nb != nb.round())
        if part.any():  # half a building would give lifts with no building to stand in
            raise bad_value(path, label["n_buildings"], lines, part, data["n_buildings"],
                            "not a whole number of buildings",
                            "write whole buildings (12, not 12.5), or leave the cell empty")
    has = pd.Series(pd.NA, index=idx, dtype="boolean")
    count = pd.Series(np.nan, index=idx)
    if "elevator" in data.columns:
        raw = data["elevator"]
        words = raw.map(lambda v: "" if v is None else norm(v))
        is_yes, is_no = words.isin(ELEVATOR_YES), words.isin(ELEVATOR_NO)
        num = numbers(raw.where(~(is_yes | is_no), ""), label["elevator"], path, lines,
                      quantity="elevators")
        count = num.where(~is_no, 0.0)
        has = pd.Series(np.where(is_yes, True, np.where(is_no, False, num > 0)), index=idx,
                        dtype="boolean").mask(~is_yes & ~is_no & num.isna())
    out["has_elevator"] = has
    out["n_elevators"] = count
    out["property_managed"] = (
        word_keys(data["property_managed"], label["property_managed"], path, lines,
                  {"yes": MANAGED_WORDS, "no": UNMANAGED_WORDS},
                  "write 有/无 (yes/no); 准物业, 自治 and 托管 count as not managed")
        .map({"yes": True, "no": False}).astype("boolean")
        if "property_managed" in data.columns else pd.Series(pd.NA, index=idx, dtype="boolean"))
    share = pd.Series(np.nan, index=idx)
    if "consent_share" in data.columns:
        raw = data["consent_share"]
        share = numbers(raw, label["consent_share"], path, lines,
                        scale=scales["consent_share"], quantity="share")
        # 85 with no % sign means 85 %: nobody writes a share as 0.85 % of households.
        share = share.where(share <= 1.0, share / 100.0)
        if (share > 1.0).any():
            raise bad_value(path, label["consent_share"], lines, share > 1.0, raw,
                            "which is above 100 %", "write a share (0.85) or a percentage "
                            "(85%)")
    out["consent_share"] = share
    out["plan_year"] = (years(data["plan_year"], label["plan_year"], path, lines)
                        if "plan_year" in data.columns else np.nan)
    if "renovation_type" in data.columns:
        raw = data["renovation_type"]
        kinds = pd.Series(pd.NA, index=idx, dtype=object)
        bad = pd.Series(False, index=idx)
        for i, v in raw.items():
            t = "" if v is None else norm(v)
            if t in EMPTY_CELLS:
                continue
            found = [k for k, words in RENOVATION_WORDS.items() if any(w in t for w in words)]
            if found:
                kinds[i] = found[-1]  # the widest scope named
            else:
                bad[i] = True
        if bad.any():
            raise bad_value(path, label["renovation_type"], lines, bad, raw,
                            "which is not a renovation type",
                            "write 基础类, 完善类 or 提升类 (basic, improvement, enhancement)")
        out["renovation_type"] = kinds
    else:
        out["renovation_type"] = None

"""What a cell of a bureau's table says: numbers with 万 and units, years, and listed words.

Shared by the inventory (:mod:`urbanunits.sources.inventory`), the project-list fields
(:mod:`urbanunits.sources.project_list`) and the override list
(:mod:`urbanunits.sources.overrides`). A cell that cannot be read is an error naming the file,
column, row and value: an estimate in its place would hide the mistake.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from urbanunits._years import EMPTY_CELLS, parse_years
from urbanunits.errors import DataError

__all__ = ["NEW_WORDS", "OLD_WORDS", "QUANTITY", "STATUS_ALIASES", "STATUS_FIX", "UNITS",
           "bad_value", "norm", "numbers", "parse_status", "word_keys", "years"]

#: Units a header or a value may carry: normalised text → (quantity, factor to the field's unit).
UNITS: dict[str, tuple[str, float]] = {
    "m2": ("area", 1.0), "平方米": ("area", 1.0), "平米": ("area", 1.0),
    "万m2": ("area", 1e4), "万平方米": ("area", 1e4), "万平米": ("area", 1e4),
    "户": ("households", 1.0), "万户": ("households", 1e4),
    "人": ("population", 1.0), "万人": ("population", 1e4),
    "年": ("year", 1.0),
    "层": ("levels", 1.0), "栋": ("buildings", 1.0), "幢": ("buildings", 1.0),
    "台": ("elevators", 1.0), "部": ("elevators", 1.0), "%": ("share", 0.01),
}
QUANTITY = {"floor_area_m2": "area", "households": "households", "population": "population",
             "built_year": "year", "plan_year": "year", "levels": "levels",
             "n_buildings": "buildings", "elevator": "elevators", "consent_share": "share"}
UNIT_RX = "|".join(sorted((re.escape(u) for u in UNITS), key=len, reverse=True))
_VALUE = re.compile(rf"([+-]?(?:\d+(?:\.\d*)?|\.\d+))(万|亿)?({UNIT_RX})?")
_MULT = {"万": 1e4, "亿": 1e8}

#: Headers of an old/new status column (besides ``status``), in the inventory and the overrides.
STATUS_ALIASES = ("is_old", "old_status", "是否老旧小区", "是否老旧", "新旧")
#: Status words (compared after NFKC normalisation and lower-casing).
OLD_WORDS = frozenset({"old", "老旧", "老旧小区", "旧", "是", "yes", "y", "true", "1"})
NEW_WORDS = frozenset({"new", "非老旧", "非老旧小区", "新", "否", "no", "n", "false", "0"})
STATUS_FIX = "write old or new (老旧/非老旧, 是/否, yes/no, true/false, 1/0)"



def norm(text: object) -> str:
    """NFKC (full-width brackets and digits, ㎡ → m2), lower case, stripped."""
    return unicodedata.normalize("NFKC", str(text)).strip().lower()


def bad_value(path: Path, col: str, lines: pd.Series, bad: pd.Series, values: pd.Series,
              what: str, fix: str) -> DataError:
    rows = lines[bad]
    first = f"row {int(rows.iloc[0])} has {values[bad].iloc[0]!r}"
    more = (f" ({len(rows)} rows: {', '.join(map(str, rows.head(5).tolist()))}"
            f"{' …' if len(rows) > 5 else ''})") if len(rows) > 1 else ""
    return DataError(f"{path}: column {col!r}", f"{first}, {what}{more}", fix)


def numbers(values: pd.Series, col: str, path: Path, lines: pd.Series, *,
            scale: float = 1.0, quantity: str | None = None,
            allow_negative: bool = False) -> pd.Series:
    """Numbers from text cells: ``3,456``, ``1.2万``, ``12000㎡``; header unit ``scale`` applies
    to plain numbers, a value's own 万/unit to itself."""
    out = np.full(len(values), np.nan)
    bad = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values.tolist()):
        t = "" if v is None or v is pd.NA else norm(v)
        if t in EMPTY_CELLS:
            continue
        t = re.sub(r"[,\s'_]", "", t)
        m = _VALUE.fullmatch(t)
        if m is None or (m[3] and UNITS[m[3]][0] != quantity) or (
                quantity is None and m[2]):
            bad[i] = True
            continue
        num = float(m[1])
        if m[2] or m[3]:
            out[i] = num * _MULT.get(m[2] or "", 1.0) * (UNITS[m[3]][1] if m[3] else 1.0)
        else:
            out[i] = num * scale
    num_s = pd.Series(out, index=values.index)
    bad_s = pd.Series(bad, index=values.index)
    if bad_s.any():
        raise bad_value(path, col, lines, bad_s, values, "which is not a number",
                        "write a plain number (3456, 3,456 or 1.2万; units in the header), or "
                        "leave the cell empty to estimate it")
    if not allow_negative and (num_s < 0).any():
        raise bad_value(path, col, lines, num_s < 0, values, "a negative value",
                        "fix the values or leave the cells empty")
    return num_s


def years(values: pd.Series, col: str, path: Path, lines: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip()
    empty = text.isna() | text.str.lower().isin(EMPTY_CELLS)
    year = parse_years(text.mask(empty))
    bad = ~empty & year.isna()
    if bad.any():
        raise bad_value(path, col, lines, bad, values, "which holds no year",
                        "write 1985, 1985年, 80年代, 1980s or 1980-1985, or leave the cell "
                        "empty")
    return year


def parse_status(values: pd.Series, col: str, path: Path | str, lines: pd.Series) -> pd.Series:
    """Old/new words (老旧/非老旧, 是/否, yes/no, true/false, 1/0) → boolean, NA where empty.

    Raises
    ------
    DataError
        Naming the file, column, row and value of the first unknown word.
    """
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    bad = pd.Series(False, index=values.index)
    for idx, v in values.items():
        t = "" if v is None or v is pd.NA else norm(v)
        if t in EMPTY_CELLS:
            continue
        if t in OLD_WORDS:
            out[idx] = True
        elif t in NEW_WORDS:
            out[idx] = False
        else:
            bad[idx] = True
    if bad.any():
        raise bad_value(Path(path), col, lines, bad, values, "which is not old or new",
                        STATUS_FIX)
    return out


def word_keys(values: pd.Series, col: str, path: Path, lines: pd.Series,
              table: dict[str, frozenset[str]], fix: str) -> pd.Series:
    """Cells → the key of ``table`` whose words contain them (NA when empty); error otherwise."""
    out = pd.Series(pd.NA, index=values.index, dtype=object)
    bad = pd.Series(False, index=values.index)
    for idx, v in values.items():
        t = "" if v is None or v is pd.NA else norm(v)
        if t in EMPTY_CELLS:
            continue
        hit = next((k for k, words in table.items() if t in words), None)
        if hit is None:
            bad[idx] = True
        else:
            out[idx] = hit
    if bad.any():
        raise bad_value(path, col, lines, bad, values, "which is not a value it takes", fix)
    return out

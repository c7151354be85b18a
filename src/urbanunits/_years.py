"""Construction years as inventories and OSM write them: ``1985``, ``80年代``, ``1980-1985``…

Old-community rules ask whether a community was *built by* a year (the national definition of a
老旧小区 is "built before the end of 2000"), so an imprecise date is read as the **latest** year it
allows: a decade (``1980s``, ``80年代``, ``上世纪80年代``, ``八十年代``) is its last year (1989), a
range (``1980-1985``, ``1980至1985``) its end, "before 1990" (``1990年以前``) 1989. A community
given that way was certainly built by the year returned, so "built by 2000" never calls a
community old on a guess; the raw text is kept next to the year for checking. Qualifiers such as
初/末/early/late are ignored (still within the decade).
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd

__all__ = ["EMPTY_CELLS", "parse_years", "year_from_text"]

#: Cell values that mean "no value".
EMPTY_CELLS = frozenset({"", "nan", "none", "null", "na", "n/a", "-", "--", "—", "/", "无"})

_Y = r"(?:1[89]|20)\d\d"
_RANGE = re.compile(rf"(?<!\d)({_Y})\s*年?\s*(?:-|–|—|~|至|到|/|\.\.)\s*({_Y})(?!\d)")
# 1980-85: a two-digit end above 12 (12 or less reads as a month, 1985-06).
_RANGE2 = re.compile(rf"(?<!\d)({_Y})\s*(?:-|–|—|~|至|到)\s*(\d\d)(?![\d年代s'])")
_BEFORE = re.compile(rf"(?:before|pre-?|<)\s*({_Y})(?!\d)"
                     rf"|(?<!\d)({_Y})\s*年?\s*(?:以前|之前|前(?![后後左]))")  # not 前后 (around)
_DECADE4 = re.compile(r"(?<!\d)((?:1[89]|20)\d)0\s*(?:'?s|年代)")
_DECADE2 = re.compile(r"(?<!\d)([3-9])0\s*(?:'?s|年代)")
_DECADE_CN = re.compile(r"([三四五六七八九])十年代")
_CN_DIGIT = {"三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_YEAR = re.compile(rf"(?<!\d)({_Y})(?!\d)")


def year_from_text(value: object) -> float:
    """The latest year a construction-date text allows, NaN when it holds none.

    Parameters
    ----------
    value
        ``1985``, ``1985年``, ``1985-06-01``, ``~1985``, ``1980s``, ``80年代``, ``上世纪80年代``,
        ``八十年代``, ``1980-1985``, ``1980-85``, ``1980至1985``, ``1980..1985`` (OSM EDTF),
        ``before 1990``, ``1990年以前``…

    Returns
    -------
    float
        The year (the end of a range or decade, the year before a "before"), or NaN.
    """
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return np.nan
    s = unicodedata.normalize("NFKC", str(value)).strip().lower()
    if s in EMPTY_CELLS:
        return np.nan
    if m := _RANGE.search(s):
        return float(max(int(m[1]), int(m[2])))
    if (m := _RANGE2.search(s)) and int(m[2]) > 12:
        start = int(m[1])
        end = start // 100 * 100 + int(m[2])
        return float(end if end >= start else end + 100)
    if m := _BEFORE.search(s):
        return float(int(m[1] or m[2]) - 1)
    if m := _DECADE4.search(s):
        return float(int(m[1]) * 10 + 9)
    if m := _DECADE2.search(s):
        return float(1900 + int(m[1]) * 10 + 9)
    if m := _DECADE_CN.search(s):
        return float(1900 + _CN_DIGIT[m[1]] * 10 + 9)
    if m := _YEAR.search(s):
        return float(m[1])
    return np.nan


def parse_years(values: pd.Series) -> pd.Series:
    """:func:`year_from_text` of each value, as float (NaN where none), indexed like ``values``."""
    return pd.Series([year_from_text(v) for v in values.tolist()], index=values.index,
                     dtype=float)

"""The planner's override list: communities declared old or new by hand.

``inputs.community_overrides`` names communities by ``community_id``, ``osm_id`` or ``name`` and
gives each a status; :mod:`urbanunits.communities` applies it over the rules.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from urbanunits._years import EMPTY_CELLS
from urbanunits.errors import DataError, InputFileError
from urbanunits.sources._cells import STATUS_ALIASES, STATUS_FIX, bad_value, norm, parse_status
from urbanunits.sources._table import TABLE_SUFFIXES, table_rows

__all__ = ["OVERRIDE_COLUMNS", "read_overrides"]

#: Override-file columns → accepted aliases (compared after NFKC and lower-casing).
OVERRIDE_COLUMNS: dict[str, tuple[str, ...]] = {
    "community_id": ("id", "编号"),
    "osm_id": ("osm", "osmid"),
    "name": ("小区名称", "老旧小区名称", "小区名", "名称", "小区"),
    "status": (*STATUS_ALIASES, "状态"),
}


def read_overrides(path: str | Path, *, sheet: str = "") -> pd.DataFrame:
    """Read the planner's old/new overrides (``inputs.community_overrides``).

    A CSV (UTF-8 or GB18030/GBK) or XLSX with a ``status`` column (old/new, 老旧/非老旧, 是/否,
    yes/no, true/false, 1/0; aliases 状态, is_old, 是否老旧小区…) and, to say which community,
    ``community_id`` (as in ``communities``), ``osm_id`` or ``name`` (小区名称…); the first of
    these given on a row is used.

    Parameters
    ----------
    path
        The file.
    sheet
        XLSX sheet name; empty means the first sheet.

    Returns
    -------
    pandas.DataFrame
        ``row`` (file line/Excel row), ``community_id`` (str or None), ``osm_id`` (Int64),
        ``name`` (str or None), ``is_old`` (bool).

    Raises
    ------
    InputFileError
        When the file is missing or unreadable.
    DataError
        Naming the file, column, row and value: no status or key column, an unknown status, a
        row with no key, an osm_id that is not a number.
    """
    path = Path(path)
    where = "inputs.community_overrides"
    if not path.is_file():
        raise InputFileError(path, "override file not found",
                             f"fix {where} in the config or remove it")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise InputFileError(path, f"{where} must be a CSV or XLSX table",
                             "save it as .csv (UTF-8 or GBK) or .xlsx with columns name or "
                             "community_id/osm_id, and status")
    lookup = {norm(a): canon for canon, aliases in OVERRIDE_COLUMNS.items()
              for a in (canon, *aliases)}
    df, lines = table_rows(path, sheet, lambda cells: any(
        lookup.get(norm(c)) == "status" for c in cells))
    mapping: dict[str, str] = {}
    for col in df.columns:
        canon = lookup.get(norm(col))
        if canon is not None and canon not in mapping.values():
            mapping[str(col)] = canon
    label = {canon: col for col, canon in mapping.items()}
    expected = "expected columns: status and one of community_id, osm_id, name"
    if "status" not in label:
        raise DataError(f"{path}: column 'status'", "is missing", f"add it; {expected}")
    keys = [k for k in ("community_id", "osm_id", "name") if k in label]
    if not keys:
        raise DataError(f"{path}: columns", "no community_id, osm_id or name column",
                        f"add one; {expected}")
    out = pd.DataFrame({"row": lines.astype(int)}, index=df.index)
    for k in ("community_id", "osm_id", "name"):
        if k in label:
            txt = df[label[k]].astype(str).str.strip()
            out[k] = txt.mask(txt.str.lower().isin(EMPTY_CELLS)).astype(object)
        else:
            out[k] = None
    osm = out["osm_id"].astype("string").str.replace(r"^(?:way|relation|w|r)[/ ]?", "",
                                                     regex=True)
    osm_num = pd.to_numeric(osm, errors="coerce")
    bad = osm.notna() & osm_num.isna()
    if bad.any():
        raise bad_value(path, label["osm_id"], lines, bad, out["osm_id"],
                        "which is not an OSM id", "write the number (e.g. 123456789)")
    out["osm_id"] = osm_num.astype("Int64")
    status = parse_status(df[label["status"]], label["status"], path, lines)
    nokey = out[["community_id", "osm_id", "name"]].isna().all(axis=1)
    if nokey.any():
        raise bad_value(path, ", ".join(label[k] for k in keys), lines, nokey,
                        df[label["status"]], "a status but no community_id, osm_id or name",
                        "say which community each row is about, or delete the row")
    if status.isna().any():
        raise bad_value(path, label["status"], lines, status.isna(), df[label["status"]],
                        "an empty status", STATUS_FIX)
    out["is_old"] = status.astype(bool)
    return out.reset_index(drop=True)

"""Tables users keep in spreadsheets: CSV (UTF-8 or GB18030) and XLSX, read as text.

Every cell comes back as a string (``""`` when empty) with the file's own row number, so that
messages can name the line a user sees in Excel or a text editor. Rows that are entirely empty
are dropped (spreadsheets keep formatted blank rows); title rows above the header (a merged
"XX区老旧小区清单" line is common) are found by the caller with :func:`split_header`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from urbanunits.errors import DataError, InputFileError

__all__ = ["TABLE_SUFFIXES", "XLSX_SUFFIXES", "read_table", "split_header", "table_rows"]

logger = logging.getLogger(__name__)

XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
TABLE_SUFFIXES = frozenset({".csv", ".txt"}) | XLSX_SUFFIXES
#: Rows searched for the header row (title rows above it are skipped).
HEADER_SCAN_ROWS = 10


def _decode(path: Path) -> str:
    data = path.read_bytes()
    # Chinese spreadsheets export UTF-8 with a BOM or GB18030 (a superset of GBK/GB2312).
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise InputFileError(path, "unknown text encoding (neither UTF-8 nor GB18030/GBK)",
                         "save the file as UTF-8 (Excel: CSV UTF-8)")


def _read_csv(path: Path) -> tuple[list[list[str]], list[int]]:
    text = _decode(path)
    rows: list[list[str]] = []
    lines: list[int] = []
    # Tab-separated text (Excel "Unicode text", often saved as .txt) has no comma in its header.
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                        skipinitialspace=True)
    try:
        start = 1
        for row in reader:
            if any(c.strip() for c in row):
                rows.append([c.strip() for c in row])
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputFileError(path, f"could not be read as CSV (line {reader.line_num}: {exc})",
                             "save it as a comma-separated file with a header row") from exc
    return rows, lines


def _cell_text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # Excel stores 1985 and ids as floats
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    return str(v).strip()


def _read_xlsx(path: Path, sheet: str) -> tuple[list[list[str]], list[int]]:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise InputFileError(path, f"could not be read as an Excel workbook ({exc})",
                             "save it as .xlsx (Excel 2007+) or as CSV") from exc
    try:
        if sheet:
            if sheet not in wb.sheetnames:
                raise DataError(f"{path}: sheet {sheet!r}", "not in the workbook (sheets: "
                                f"{', '.join(wb.sheetnames)})",
                                "set inputs.inventory_sheet to one of them, or leave it empty "
                                "for the first sheet")
            ws = wb[sheet]
        else:
            ws = wb.worksheets[0]
        rows: list[list[str]] = []
        lines: list[int] = []
        for i, row in enumerate(ws.iter_rows(min_row=1, values_only=True), start=1):
            cells = [_cell_text(v) for v in row]
            if any(cells):
                rows.append(cells)
                lines.append(i)
    finally:
        wb.close()
    return rows, lines


def read_table(path: Path, *, sheet: str = "") -> tuple[pd.DataFrame, np.ndarray]:
    """All non-empty rows of a CSV or XLSX file as text, header not yet taken out.

    Parameters
    ----------
    path
        ``.csv``/``.txt`` (comma- or tab-separated; UTF-8, UTF-8 with BOM, or GB18030/GBK) or
        ``.xlsx``/``.xlsm``.
    sheet
        XLSX sheet name; empty means the first sheet.

    Returns
    -------
    pandas.DataFrame
        Columns ``0…n-1`` of stripped strings (``""`` for empty cells), one row per non-empty
        file row.
    numpy.ndarray
        The file row number (1-based line or Excel row) of each row.
    """
    if path.suffix.lower() in XLSX_SUFFIXES:
        rows, lines = _read_xlsx(path, sheet)
    else:
        rows, lines = _read_csv(path)
    width = max((len(r) for r in rows), default=0)
    frame = pd.DataFrame([r + [""] * (width - len(r)) for r in rows], dtype=object)
    return frame, np.asarray(lines, dtype=np.int64)


def split_header(raw: pd.DataFrame, lines: np.ndarray, path: Path,
                 is_header: Callable[[list[str]], bool]) -> tuple[pd.DataFrame, np.ndarray]:
    """Take the header row out of :func:`read_table` output.

    The header is the first of the first :data:`HEADER_SCAN_ROWS` rows that ``is_header``
    accepts (rows above it are titles and are skipped with a log line), else the first row.

    Returns
    -------
    pandas.DataFrame
        Data rows with the header cells as column names (empty or repeated names get ``#2``…).
    numpy.ndarray
        File row numbers of the data rows.
    """
    if raw.empty:
        return pd.DataFrame(), lines[:0]
    h = 0
    for i in range(min(HEADER_SCAN_ROWS, len(raw))):
        if is_header([str(c) for c in raw.iloc[i].tolist()]):
            h = i
            break
    if h:
        logger.info("%s: header on row %d; %d title row(s) above it skipped", path,
                    int(lines[h]), h)
    names: list[str] = []
    seen: dict[str, int] = {}
    for j, c in enumerate(raw.iloc[h].tolist()):
        name = str(c).strip() or f"column{j + 1}"
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    data = raw.iloc[h + 1:].copy()
    data.columns = names
    return data.reset_index(drop=True), lines[h + 1:]


def table_rows(path: Path, sheet: str, is_header: Callable[[list[str]], bool]
               ) -> tuple[pd.DataFrame, pd.Series]:
    """The data rows below the header row ``is_header`` finds, and their file row numbers."""
    raw, line_no = read_table(path, sheet=sheet)
    df, line_no = split_header(raw, line_no, path, is_header)
    return df, pd.Series(line_no, index=df.index)

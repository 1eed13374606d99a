"""Reading the FVRID index CSV: one row per output image (the original index was never published).

Columns:

- ``IMG``: output file name, FVRID naming ``PPPPP_cCCC_FFFFFF_K.jpg``;
- ``NAME``: source image, path relative to the source dataset's image folder (or its file name);
- ``SOURCE``: ``VeRi-Wild`` or ``Vehicle-1M`` (case, spaces and dashes ignored: ``Veriwild`` works);
- ``SAVE``: destination folder, a relative folder of the layout (:data:`rvsl.layout.FOLDERS`),
  a prefix such as ``../../`` ignored;
- ``ORI_NAME``: original file name in the source dataset, relative to its image folder.

Header names are matched case-insensitively with the aliases of :data:`COLUMN_ALIASES`; other
columns (such as a pandas index column) are ignored; a file without a header (its first field an
FVRID name) is read in the order above, as the reference repo's ``Split.py`` did.
"""

import csv
import logging
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from rvsl.data.fvrid import parse_name
from rvsl.utils.errors import InputError

logger = logging.getLogger(__name__)

INDEX_COLUMNS = ("IMG", "NAME", "SOURCE", "SAVE", "ORI_NAME")
# Accepted header names per column (compared after lower-casing and turning spaces/dashes into "_").
COLUMN_ALIASES: Dict[str, Tuple[str, ...]] = {
    "IMG": ("img", "img_name", "fvrid_name", "fvrid", "new_name"),
    "NAME": ("name", "src_name", "source_name", "src_path", "source_path"),
    "SOURCE": ("source", "source_dataset", "src_dataset", "dataset"),
    "SAVE": ("save", "save_dir", "save_path", "save_folder", "folder"),
    "ORI_NAME": ("ori_name", "orig_name", "original_name", "ori_path"),
}


class IndexRow(NamedTuple):
    """One row of the index, with the line it was read from."""

    line: int
    img: str
    name: str
    source: str
    save: str
    ori_name: str


def _norm_header(text: str) -> str:
    """Header cell normalised for alias matching."""
    return text.strip().lower().replace(" ", "_").replace("-", "_")


def _column_map(header: Sequence[str], path: str) -> Optional[Dict[str, int]]:
    """Column index per index field from a header row; None if no cell is a known column name."""
    lookup = {alias: column for column, aliases in COLUMN_ALIASES.items() for alias in aliases}
    found: Dict[str, int] = {}
    for i, cell in enumerate(header):
        column = lookup.get(_norm_header(cell))
        if column is not None and column not in found:
            found[column] = i
    if not found:
        return None
    missing = [c for c in ("IMG", "SOURCE", "SAVE") if c not in found]
    if missing or ("NAME" not in found and "ORI_NAME" not in found):
        missing = missing or ["NAME or ORI_NAME"]
        raise InputError(f"{path}: index has no column {', '.join(missing)}; expected columns "
                         f"{', '.join(INDEX_COLUMNS)} (header found: {', '.join(header)})")
    return found


def read_index(path: Union[str, Path]) -> List[IndexRow]:
    """Rows of an FVRID index CSV (comma, semicolon or tab separated; see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"index file not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        first_line = handle.readline()
        handle.seek(0)
        delimiter = max(",;\t", key=first_line.count)  # the separator the first line uses most
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise InputError(f"index file is empty: {path}")
        columns = _column_map(header, str(path))
        data: List[Tuple[int, List[str]]] = []
        if columns is None:
            if len(header) != len(INDEX_COLUMNS) or parse_name(header[0].strip()) is None:
                raise InputError(f"{path}: no header with the columns {', '.join(INDEX_COLUMNS)} "
                                 f"(first line: {', '.join(header)})")
            logger.info("%s has no header: reading its columns as %s", path, ", ".join(INDEX_COLUMNS))
            columns = {c: i for i, c in enumerate(INDEX_COLUMNS)}
            data.append((1, header))
        data.extend((reader.line_num, row) for row in reader)
    rows = []
    width = max(columns.values()) + 1
    for line, cells in data:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) < width:
            raise InputError(f"{path} line {line}: {len(cells)} fields, expected at least {width}")
        get = {c: (cells[columns[c]].strip() if c in columns else "") for c in INDEX_COLUMNS}
        rows.append(IndexRow(line, get["IMG"], get["NAME"], get["SOURCE"], get["SAVE"], get["ORI_NAME"]))
    if not rows:
        raise InputError(f"index file has no rows: {path}")
    return rows

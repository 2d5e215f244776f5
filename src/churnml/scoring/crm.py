"""The CRM feed: scores mapped onto CRM field names, safe to open in a spreadsheet.

Text cells that a spreadsheet would run as a formula (starting with =, +, -, @, tab or carriage
return) are prefixed with an apostrophe. Files are UTF-8 with every cell quoted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import pyarrow as pa
import yaml
from pyarrow import csv

from churnml.io import atomic_path, run_file

CRM_MAPS = resources.files("churnml.scoring") / "crm_maps"  # shipped in the wheel
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV = csv.WriteOptions(quoting_style="all_valid")  # every cell quoted, quotes inside doubled


@dataclass(frozen=True)
class FieldMap:
    key: str
    fields: dict[str, str]  # CRM field → churnml column


def load_field_map(crm: str) -> FieldMap:
    """A field map by name (`salesforce`, `hubspot`: churnml/scoring/crm_maps/) or by path to a
    YAML file."""
    path = Path(crm) if crm.endswith((".yaml", ".yml")) else CRM_MAPS / f"{crm}.yaml"
    if not path.is_file():
        known = sorted(p.name.removesuffix(".yaml") for p in CRM_MAPS.iterdir())
        raise FileNotFoundError(f"no CRM field map {crm!r}; use one of {known} or a YAML path")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return FieldMap(raw["key"], dict(raw["fields"]))


def neutralise(text: pd.Series) -> pd.Series:
    """Text cells made inert in spreadsheets: a leading apostrophe where a formula could start."""
    return text.where(~text.str.startswith(FORMULA_STARTS), "'" + text)


def crm_frame(scores: pd.DataFrame, fields: FieldMap) -> pd.DataFrame:
    """The scores under CRM field names, as text, formula-safe (column by column, vectorised)."""
    missing = set(fields.fields.values()) - set(scores.columns)
    if missing:
        raise KeyError(f"CRM field map uses unknown columns: {sorted(missing)}")
    return pd.DataFrame({crm: _cells(scores[col]) for crm, col in fields.fields.items()})


def _cells(column: pd.Series) -> pd.Series:
    """Numbers with at most 4 decimals and no trailing zeros; dates as 2026-01-31; text made
    inert; missing as ''. (Arrow's casts: Python objects only for types they do not know.)"""
    values = column.round(4) if pd.api.types.is_float_dtype(column) else column
    try:
        arrow = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Python objects
        arrow = None
    if arrow is not None and (pa.types.is_floating(arrow.type) or pa.types.is_date(arrow.type)
                              or pa.types.is_string(arrow.type)
                              or pa.types.is_large_string(arrow.type)):  # fmt: skip
        text = pd.Series(arrow.cast(pa.string()).fill_null(""), dtype="str", index=column.index)
    else:
        text = column.astype(str).where(column.notna(), "")
    return text if pd.api.types.is_numeric_dtype(column) else neutralise(text)


def changed_rows(frame: pd.DataFrame, run: Path, fields: FieldMap) -> pd.DataFrame:
    """Rows that are new or whose CRM fields differ from an earlier run's export (`read_export`;
    the time of scoring does not count as a change)."""
    key = fields.key
    old = read_export(previous_export(run)).set_index(key)
    new = frame.set_index(key)
    compared = compared_fields(fields, old.columns)
    common = new.index.intersection(old.index)
    same = (new.loc[common, compared] == old.loc[common, compared]).all(axis=1)
    keep = new.index.difference(common).union(same.index[~same])
    return frame[frame[key].isin(keep)]


def compared_fields(fields: FieldMap, exported: Iterable[str]) -> list[str]:
    """The CRM fields `--changed-since` compares: those the earlier export has, but the time of
    scoring."""
    have = set(exported)
    return [f for f, col in fields.fields.items() if f in have and col != "scored_at"]


def previous_export(run: Path) -> Path:
    """The CRM export of an earlier run (`--changed-since`): a file, or a folder of parts."""
    path = run_file(run, "crm_export.csv")
    if path is None:
        raise FileNotFoundError(f"--changed-since: no crm_export.csv in {run}")
    return path


def read_export(path: Path) -> pd.DataFrame:
    """A CRM export as text: one file, or from Spark a folder of parts with a header in each."""
    parts = sorted(path.glob("part-*.csv")) if path.is_dir() else [path]
    frames = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in parts if p.stat().st_size]
    if not frames:
        raise ValueError(f"--changed-since: {path} holds no CSV rows or header")
    return pd.concat(frames, ignore_index=True)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """UTF-8, a header row, every cell quoted (quotes inside doubled), atomically."""
    with atomic_path(path) as tmp:
        csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), tmp, CSV)


def csv_text(frame: pd.DataFrame) -> bytes:
    """`frame` as `write_csv` writes it."""
    sink = pa.BufferOutputStream()
    csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), sink, CSV)
    return sink.getvalue().to_pybytes()

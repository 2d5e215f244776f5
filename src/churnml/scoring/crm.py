"""The CRM feed: scores mapped onto CRM field names, safe to open in a spreadsheet.

Text cells that a spreadsheet would run as a formula (starting with =, +, -, @, tab or carriage
return) are prefixed with an apostrophe. Files are UTF-8 with every cell quoted.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from churnml.io import write_text

CRM_DIR = Path(__file__).resolve().parents[3] / "configs" / "crm"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class FieldMap:
    key: str
    fields: dict[str, str]  # CRM field → churnml column


def load_field_map(crm: str) -> FieldMap:
    """A field map by name (`salesforce`, `hubspot` in configs/crm/) or by path to a YAML file."""
    path = Path(crm) if crm.endswith((".yaml", ".yml")) else CRM_DIR / f"{crm}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in CRM_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no CRM field map {crm!r}; use one of {known} or a YAML path")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return FieldMap(raw["key"], dict(raw["fields"]))


def neutralise(value: object) -> object:
    """Make a text cell inert in spreadsheets; numbers pass through."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def crm_frame(scores: pd.DataFrame, fields: FieldMap) -> pd.DataFrame:
    """The scores under CRM field names, as text, formula-safe."""
    missing = set(fields.fields.values()) - set(scores.columns)
    if missing:
        raise KeyError(f"CRM field map uses unknown columns: {sorted(missing)}")
    out = pd.DataFrame({crm: scores[col] for crm, col in fields.fields.items()})
    out = out.astype("object").where(out.notna(), "")
    return out.map(lambda v: neutralise(v if isinstance(v, str) else _text(v)))


def _text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value == value else ""
    return str(value)


def changed_rows(frame: pd.DataFrame, previous_csv: Path, fields: FieldMap) -> pd.DataFrame:
    """Rows that are new or whose CRM fields differ from a previous export (the time of
    scoring does not count as a change)."""
    if not previous_csv.is_file():
        raise FileNotFoundError(f"--changed-since: no previous export at {previous_csv}")
    key = fields.key
    old = pd.read_csv(previous_csv, dtype=str, keep_default_na=False).set_index(key)
    new = frame.set_index(key)
    compared = [f for f, col in fields.fields.items() if f in old.columns and col != "scored_at"]
    common = new.index.intersection(old.index)
    same = (new.loc[common, compared] == old.loc[common, compared]).all(axis=1)
    keep = new.index.difference(common).union(same.index[~same])
    return frame[frame[key].isin(keep)]


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, quoting=csv.QUOTE_ALL, lineterminator="\n")
    write_text(buffer.getvalue(), path)

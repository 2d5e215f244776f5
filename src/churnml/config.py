"""Configuration: pydantic models loaded from YAML, shared by every stage.

A config file holds only what differs from the defaults; `load_config(None)` gives the defaults,
which read a directory written by `churnml generate` as it is.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from churnml.data.contract import TABLES


class ConfigError(ValueError):
    """A config file that cannot be read or does not match the schema."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableSource(_Strict):
    """Where one table lives and how its columns are named in the user's data.

    `path` is relative to the data directory (or any absolute path / URI DuckDB can read); by
    default `<table>.parquet`, else `<table>.csv`, else a folder `<table>/` of Parquet files.
    `columns` maps the contract's column name to the user's column name.
    """

    path: str | None = None
    columns: dict[str, str] = Field(default_factory=dict)


class DataConfig(_Strict):
    tables: dict[str, TableSource] = Field(default_factory=dict)

    @field_validator("tables")
    @classmethod
    def _known_tables(cls, tables: dict[str, TableSource]) -> dict[str, TableSource]:
        for name, source in tables.items():
            if name not in TABLES:
                raise ValueError(f"unknown table {name!r}; known tables: {', '.join(TABLES)}")
            unknown = set(source.columns) - set(TABLES[name].column_names)
            if unknown:
                raise ValueError(
                    f"table {name!r} maps unknown contract columns {sorted(unknown)}; "
                    f"known: {TABLES[name].column_names}"
                )
        return tables

    def source(self, table: str) -> TableSource:
        return self.tables.get(table, TableSource())


class LabelConfig(_Strict):
    """Label definitions (see DESIGN.md): horizon, grace and what counts as involuntary churn."""

    horizon_days: int = Field(90, gt=0)
    grace_days: int = Field(30, ge=0)
    expansion_ratio: float = Field(1.05, gt=1.0)
    involuntary_reasons: tuple[str, ...] = (
        "bankruptcy",
        "acquisition",
        "non_payment",
        "budget_cut",
    )
    exclude_involuntary: bool = True


class FeatureConfig(_Strict):
    """What the feature catalogue needs to know about a business (defaults fit the demo world)."""

    key_events: tuple[str, ...] = ("create_report", "automation_run", "integration_sync")
    high_priority: tuple[str, ...] = ("high", "urgent")
    business_reviews: tuple[str, ...] = ("qbr", "ebr")
    onboarding_plan: dict[str, int] = Field(
        default_factory=lambda: {
            "kickoff": 7,
            "admin_setup": 14,
            "integration_connected": 30,
            "team_invited": 30,
            "first_report": 45,
            "first_value": 60,
        },
        description="milestone → days after signup it is due",
    )
    first_value_milestone: str = "first_value"


class Config(_Strict):
    data: DataConfig = Field(default_factory=DataConfig)
    labels: LabelConfig = Field(default_factory=LabelConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)


def load_config(path: Path | str | None) -> Config:
    """Read a YAML config; `None` gives the defaults. Raises ConfigError with the offending keys."""
    if path is None:
        return Config()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"{path}: invalid config\n  " + "\n  ".join(lines)) from exc

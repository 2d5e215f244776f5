"""Configuration: pydantic models loaded from YAML, shared by every stage.

A config file holds only what differs from the defaults; `load_config(None)` gives the defaults,
which read a directory written by `churnml generate` as it is.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from churnml.data.contract import NUMBER_FORMATS, TABLES


class ConfigError(ValueError):
    """A config file that cannot be read or does not match the schema."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableSource(_Strict):
    """Where one table lives and how its columns are named in the user's data.

    `path` is relative to the data directory (or any absolute path / URI DuckDB can read); by
    default `<table>.parquet`, else `<table>.csv` (`.csv.gz`, `.tsv`), else `<table>.xlsx`, else a
    folder `<table>/` of Parquet files (in subfolders too, such as Hive partitions
    `month=2024-01/`), else a sheet named like the table in a workbook of the data directory. A
    workbook's `sheet` is by default the one named like the table (case, spaces and punctuation
    aside), else the first; a configured one must be in the workbook.
    `columns` maps the contract's column name to the user's column name. `encoding` is a CSV
    file's text encoding (e.g. shift_jis, cp932, latin-1); Parquet is always UTF-8. `formats`
    maps a date, timestamp or number column stored as text to how it is written: strptime codes
    (e.g. `ts: "%d/%m/%Y %H:%M"`) or a number format (`arr: "1.234,5"`). By default ISO 8601 or
    plain numbers, else the one spreadsheet format every value fits (`TIME_FORMATS`,
    `NUMBER_FORMATS` in `churnml.data.contract`).
    """

    path: str | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    encoding: str = "utf-8"
    formats: dict[str, str] = Field(default_factory=dict)
    sheet: str | None = None

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {encoding!r} (e.g. utf-8, shift_jis, cp932, "
                             "latin-1)") from None  # fmt: skip
        return encoding


def _check_format(table: str, column: str, fmt: str) -> None:
    """A configured format (`TableSource.formats`) fits its column's kind."""
    kinds = {c.name: c.kind for c in TABLES[table].columns if c.kind not in ("id", "text")}
    if column not in kinds:
        raise ValueError(f"table {table!r}: formats are for its date, timestamp and number "
                         f"columns ({', '.join(kinds)}), not {column!r}")  # fmt: skip
    if kinds[column] in ("float", "int") and fmt not in NUMBER_FORMATS:
        raise ValueError(f"table {table!r}, column {column!r}: a number format is one of "
                         f"{', '.join(map(repr, NUMBER_FORMATS))}, not {fmt!r}")  # fmt: skip
    if kinds[column] in ("date", "timestamp") and "%" not in fmt:
        raise ValueError(f"table {table!r}, column {column!r}: format {fmt!r} has no strptime "
                         "code such as %d, %m, %Y, %H, %M")  # fmt: skip


class DataConfig(_Strict):
    tables: dict[str, TableSource] = Field(default_factory=dict)
    max_arr: float = Field(1e8, gt=0, description="ARR above this per row is flagged (a warning)")
    event_counts: Literal["rows", "quantity"] = Field(
        "rows",
        description="how many events a usage_events row stands for: one (`rows`), or its "
        "`quantity` (`quantity`: a rollup such as one row per account, user, day and event "
        "type with its count; an empty quantity counts 1)",
    )
    dedupe_events: bool = Field(
        False, description="count usage events repeated in every column once (a double export)"
    )
    max_unknown_accounts: float = Field(
        0.01, ge=0, le=1,
        description="the largest share of a table's rows (not subscriptions') whose account_id "
        "is not in accounts that only warns (e.g. test workspaces the CRM does not hold: never "
        "scored); above it, an error: the ids likely do not match",
    )
    exchange_rates: dict[str, float] = Field(
        default_factory=dict,
        description="where subscriptions' ARR is in several currencies (its `currency` column): "
        "each currency's value in the book's one (report.currency), e.g. {USD: 1, EUR: 1.08}; "
        "fixed rates, so that a move of the rate is not read as expansion or contraction",
    )
    memory_limit: str | None = Field(
        None,
        pattern=r"^\d+(\.\d+)?\s*(MB|GB|TB)$",
        description="DuckDB's memory limit, e.g. '4GB': past it, work spills to a temporary "
        "folder (slower, bounded); default: DuckDB's own, 80% of the machine's memory",
    )

    @field_validator("exchange_rates")
    @classmethod
    def _positive_rates(cls, rates: dict[str, float]) -> dict[str, float]:
        bad = {code: rate for code, rate in rates.items() if not rate > 0}
        if bad:
            raise ValueError(f"exchange rates must be above 0: {bad}")
        return {code.strip().upper(): rate for code, rate in rates.items()}

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
            for column, fmt in source.formats.items():
                _check_format(name, column, fmt)
        return tables

    def source(self, table: str) -> TableSource:
        return self.tables.get(table, TableSource())


class LabelConfig(_Strict):
    """Label definitions (horizon, grace, what counts as involuntary churn) and the observation
    dates: every month's first day, or more often for short histories and monthly plans."""

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
    snapshot_every: Literal["month", "half_month", "week"] = Field(
        "month", description="how often accounts are observed for training"
    )


MAX_KEY_EVENTS = 62  # eight features each (churnml.features.catalogue)


class FeatureConfig(_Strict):
    """What the feature catalogue needs to know about a business (defaults fit the demo world)."""

    key_events: tuple[str, ...] | None = Field(
        None,
        max_length=MAX_KEY_EVENTS,
        description="event types followed one by one; default: the `top_events` types used by "
        "the most accounts in the training data (stored with the model)",
    )
    top_events: int = Field(
        8, ge=0, le=MAX_KEY_EVENTS, description="how many key events to take from the data"
    )
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


class ModelConfig(_Strict):
    """How models are chosen, fitted and judged.

    Time split: the latest labelled dates are the test part; before them, one horizon apart,
    the training span, inside which time-ordered validation folds (each fold fits on dates one
    horizon before its validation block) choose the model. Parts shrink to fit a short history.
    """

    seed: int = 42
    families: tuple[Literal["lightgbm", "logistic_regression"], ...] = (
        "lightgbm",
        "logistic_regression",
    )
    search: bool = Field(True, description="judge a few settings per family on validation")
    learning_rate: float = Field(0.05, gt=0)
    num_leaves: int | None = Field(None, ge=2, description="fixed instead of searched")
    min_data_in_leaf: int | None = Field(None, ge=1, description="default: scaled to the book")
    feature_fraction: float = Field(0.8, gt=0, le=1)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    lambda_l2: float = Field(1.0, ge=0)
    max_rounds: int = Field(2000, ge=1)
    early_stopping_rounds: int = Field(50, ge=1)
    test_dates: int = Field(3, ge=1, description="latest labelled dates held out (at most)")
    valid_dates: int = Field(3, ge=1, description="dates per validation block (at most)")
    folds: int = Field(3, ge=1, description="time-ordered validation folds (at most)")
    min_train_dates: int = Field(2, ge=1, description="dates a fold must fit on, at least")
    backtests: int = Field(3, ge=0, description="extra train → test repeats at earlier cut-offs")
    min_positives: int = Field(20, ge=1, description="fewer labelled positives: target skipped")
    max_rows: int = Field(
        1_000_000, ge=1000, description="labelled rows past which a target is fitted and judged "
        "on a sample: the same share of every (as_of, label) cell, so rates and dates are kept"
    )
    bootstrap: int = Field(500, ge=50, description="resamples for the test AUC interval")
    leak_auc: float = Field(
        0.98, gt=0.5, le=1, description="a test ROC-AUC above this is taken for a leak (an input "
        "filled in once the outcome is known): the target is not registered; 1 turns this off"
    )


class HealthScoreConfig(_Strict):
    """The rule-based health score a CS team would configure (a baseline): feature → weight.

    Each feature is scaled to 0–1 between its 5th and 95th percentile on the training rows,
    flipped when lower is healthier (from the catalogue), and averaged with these weights.
    """

    weights: dict[str, float] = Field(
        default_factory=lambda: {
            "seat_utilisation_30d": 3.0,
            "active_days_30d": 2.0,
            "usage_trend_30d": 1.0,
            "high_priority_tickets_90d": 1.0,
            "nps_last": 2.0,
            "has_champion": 1.0,
            "has_exec_sponsor": 1.0,
            "business_reviews_90d": 1.0,
            "onboarding_overdue": 1.0,
        }
    )


class RegistryConfig(_Strict):
    """MLflow: where runs go, model names, and the promotion gate."""

    tracking_uri: str | None = Field(None, description="default: $MLFLOW_TRACKING_URI, else sqlite")
    experiment: str = "churnml"
    model_prefix: str = "churnml"
    max_auc_drop: float = Field(0.005, ge=0, description="challenger may lose at most this AUC")
    timeout_seconds: float = Field(
        10, gt=0, description="how long to wait for a tracking server before giving up"
    )


class ScoringConfig(_Strict):
    """Tiers, the next-best-action rule and the expected size of an expansion."""

    churn_high: float = Field(0.15, gt=0, lt=1)
    churn_medium: float = Field(0.05, gt=0, lt=1)
    expansion_high: float = Field(0.25, gt=0, lt=1)
    expansion_medium: float = Field(0.10, gt=0, lt=1)
    healthy_adoption: float = Field(
        50.0, ge=0, le=100, description="adoption score (percentile in segment) for `expand`"
    )
    save_runway_days: int = Field(90, ge=0, description="renewal this close, ARR at risk: save")
    save_arr_at_risk: float = Field(5000.0, ge=0, description="...with at least this ARR at risk")
    expansion_size: float = Field(0.2, gt=0, description="typical ARR uplift of an expansion")
    reasons: int = Field(3, ge=1)
    plays: str | None = Field(None, description="a play library (YAML); default: churnml's own")
    alert_points: float = Field(
        0.05, gt=0, le=1, description="--previous: a probability move this large is an alert"
    )
    chunk_rows: int = Field(50_000, ge=1, description="rows scored at a time (bounded memory)")
    max_data_gap_days: int = Field(
        3, ge=0, description="days before as_of that may have no usage events at all"
    )


class ForecastConfig(_Strict):
    """The revenue forecast (`churnml.forecast.revenue`)."""

    draws: int = Field(1000, ge=100, description="simulated outcomes per account (seeded)")


class FitConfig(_Strict):
    """The fit model Sales scores new deals with (`churnml.features.signing`)."""

    test_months: int = Field(6, ge=1, description="latest labelled signing months held out")
    min_profile_accounts: int = Field(
        20, ge=5, description="labelled accounts a profile needs to be shown on the Fit page"
    )


class ReportConfig(_Strict):
    """How reports and reason sentences show money and segments."""

    currency: str = Field("USD", description="ISO code of the ARR columns' currency, e.g. JPY "
                          "(not set: the one code of every subscription's `currency`, else USD)")
    segment_names: dict[str, dict[Literal["en", "ja"], str]] = Field(
        default_factory=lambda: {
            "smb": {"en": "SMB", "ja": "中小企業"},
            "mid_market": {"en": "Mid-market", "ja": "中堅企業"},
            "enterprise": {"en": "Enterprise", "ja": "大企業"},
        },
        description="segment code → display name per language (other codes are shown as is)",
    )
    today: int = Field(15, ge=1, description="accounts on the leader page's 'act today' list")
    min_cell_accounts: int = Field(
        20, ge=5, description="accounts a segment × channel × industry cell needs to be shown"
    )

    @property
    def set_currency(self) -> str | None:
        """The currency this config sets, None where it leaves it to the data."""
        return self.currency if "currency" in self.model_fields_set else None


class Config(_Strict):
    data: DataConfig = Field(default_factory=DataConfig)
    labels: LabelConfig = Field(default_factory=LabelConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    health_score: HealthScoreConfig = Field(default_factory=HealthScoreConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    forecast: ForecastConfig = Field(default_factory=ForecastConfig)
    fit: FitConfig = Field(default_factory=FitConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    def with_key_events(self, events: tuple[str, ...]) -> Config:
        """This config with `features.key_events` set to `events`."""
        features = self.features.model_copy(update={"key_events": tuple(events)})
        return self.model_copy(update={"features": features})

    def shown_in(self, currency: str | None) -> Config:
        """This config with `report.currency` set to `currency` (the data's), unless the config
        sets it (or `currency` is None)."""
        if currency is None or self.report.set_currency:
            return self
        return self.model_copy(update={"report": self.report.model_copy(
            update={"currency": currency})})  # fmt: skip


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

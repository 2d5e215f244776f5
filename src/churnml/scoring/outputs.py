"""What a scoring run writes: the declared schema of scores.parquet, and writing the three
files (scores, contributions, CRM feed) into a folder, all or none."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnml.features.catalogue import FAMILIES
from churnml.io import atomic_dir, write_parquet
from churnml.scoring.changes import ALERTS, change_columns
from churnml.scoring.crm import FieldMap, changed_rows, crm_frame, write_csv
from churnml.scoring.reasons import REASON

ACCOUNT_COLUMNS = ("segment", "csm_owner", "account_name", "industry", "acquisition_channel")
CONTEXT_COLUMNS = ("overdue_milestone", "primary_contact", "primary_contact_role")
Chunk = tuple[pd.DataFrame, dict[str, pd.DataFrame]]  # scores, contributions per target
Scorer = Callable[[pd.DataFrame], Chunk]  # feature rows in, a scored chunk out
Finisher = Callable[[pd.DataFrame], pd.DataFrame]  # ranked scores in, finished scores out
REASONS = {"churn": "churn_reasons", "expansion": "expansion_signals"}


def _target_fields(target: str) -> list[tuple[str, pa.DataType]]:
    return [
        (f"{target}_probability", pa.float64()),
        (f"{target}_base_rate", pa.float64()),
        (REASONS[target], pa.list_(REASON)),
        (f"{REASONS[target]}_text", pa.string()),
    ]


# scores.parquet, one row per account: SCORES from each chunk; SCORED once the whole book is in
# (scorecard percentiles, action, play, priority: churnml.scoring.book) and stamped. A target
# without a model leaves its columns empty (null), never zero.
SCORES = pa.schema(
    [
        ("account_id", pa.string()),
        ("as_of", pa.date32()),
        *[(c, pa.string()) for c in ACCOUNT_COLUMNS],
        ("arr", pa.float64()),
        ("renewal_pending", pa.bool_()),  # last term ended within the grace, no renewal yet
        ("days_since_term_end", pa.int64()),
        ("renewal_date", pa.date32()),  # the current term's end (in renewal: the last one's)
        ("last_touch_date", pa.date32()),  # the last CS touchpoint
        ("tenure_days", pa.int64()),  # context for the CSM: customer for …
        ("plan", pa.string()),
        ("seats", pa.float64()),
        *[(c, pa.string()) for c in CONTEXT_COLUMNS],  # churnml.features.build.csm_context
        *_target_fields("churn"),
        *[(f"score_{f}", pa.float64()) for f in FAMILIES],
        ("health_score", pa.float64()),
        *_target_fields("expansion"),
        *[(c, pa.string()) for c in ("churn_tier", "expansion_tier")],
        ("arr_at_risk", pa.float64()),
        ("expected_expansion_arr", pa.float64()),
    ]
)
SCORED = pa.schema(
    [
        *SCORES,
        ("next_best_action", pa.string()),
        ("play", pa.string()),  # from the play library (churnml.scoring.plays)
        ("play_owner", pa.string()),
        ("play_due", pa.date32()),
        ("priority", pa.float64()),  # ARR at stake × urgency: the order of the today list
        ("previous_as_of", pa.date32()),  # with --previous (churnml.scoring.changes), else empty
        *change_columns("churn"),
        *change_columns("expansion"),
        ("churn_model", pa.string()),
        ("expansion_model", pa.string()),
        # "ok", or "no_skill" when the model did not beat chance or the rule-based health score
        ("churn_model_skill", pa.string()),
        ("expansion_model_skill", pa.string()),
        ("scored_at", pa.timestamp("s")),
    ]
)


def as_columns(reasons: pa.ListArray) -> tuple[pd.Series, pd.Series]:
    """Structured reasons (an Arrow list column) and their sentences joined by '; '."""
    sentences = pa.ListArray.from_arrays(reasons.offsets, reasons.values.field("sentence"))
    text = pc.binary_join(sentences, "; ").to_numpy(zero_copy_only=False)
    return pd.Series(pd.arrays.ArrowExtensionArray(reasons)), pd.Series(text, dtype=object)


KEY_EVENTS = "churnml.key_events"  # the key events the features were built with
CURRENCY = "churnml.currency"  # the amounts' (report.currency, else the data's)
MODELS = "churnml.models"  # target → the identity of the model scored with
FORECAST = "churnml.forecast"  # the churn model's meta["forecast"]: history and backtest
STATED = "churnml.stated_reasons"  # the churn model's: stated cancel reason × main family
ADOPTION_FILE = "adoption.parquet"  # per account and month: active users and events
META_FILE = "_churnml.json"  # in a Spark run's scores.parquet folder: what the metadata holds


def read_meta(scores_path: Path | str, key: str) -> object:
    """What a scores.parquet's metadata holds under `key` (None if it does not say); a Spark
    run's scores.parquet is a folder, with the metadata in `META_FILE`."""
    path = Path(scores_path)
    if path.is_dir():
        sidecar = path / META_FILE
        return json.loads(sidecar.read_text()).get(key) if sidecar.is_file() else None
    raw = (pq.read_schema(path).metadata or {}).get(key.encode())
    return None if raw is None else json.loads(raw)


def read_key_events(scores_path: Path | str) -> tuple[str, ...] | None:
    """The key events a scores.parquet was built with (None if it does not say)."""
    events = read_meta(scores_path, KEY_EVENTS)
    return None if events is None else tuple(events)


def read_models(scores_path: Path | str) -> dict[str, str]:
    """The identity of each model a scores.parquet was scored with (empty if it does not say)."""
    return read_meta(scores_path, MODELS) or {}


def alert_rows(found: pd.DataFrame | None = None) -> pd.DataFrame:
    """alerts.csv's rows (`churnml.scoring.changes.alerts`; none without `found`), as cells."""
    found = pd.DataFrame(columns=ALERTS) if found is None else found[list(ALERTS)]
    return crm_frame(found, FieldMap("account_id", {c: c for c in ALERTS}))


def write_outputs(
    scores: pd.DataFrame,
    contributions: pd.DataFrame,
    fields: FieldMap,
    out: Path | str,
    changed_since: Path | None = None,
    alerts: pd.DataFrame | None = None,
    features: pd.DataFrame | None = None,
    meta: dict[str, object] | None = None,
    adoption: pa.Table | None = None,
) -> int:
    """Write scores.parquet, contributions.parquet, crm_export.csv and alerts.csv (no rows
    without `alerts`) into `out`, all or none; return the number of CRM rows (only changed ones
    with `changed_since`). `meta` goes in scores.parquet's metadata as JSON (KEY_EVENTS,
    CURRENCY, MODELS, FORECAST, STATED: `read_meta`), for the report and the next run;
    `features` (the models' inputs) goes to features.parquet, for the next run's `--previous`;
    `adoption` (monthly use, `features.rollups.monthly_use`) to adoption.parquet, for the
    report."""
    missing = [n for n in SCORED.names if n not in scores]  # change columns without --previous
    scores = scores.assign(**dict.fromkeys(missing))
    feed = crm_frame(scores, fields)
    if changed_since is not None:
        feed = changed_rows(feed, Path(changed_since), fields)
    table = pa.Table.from_pandas(scores, schema=SCORED, preserve_index=False)
    alerts = alert_rows(alerts)
    meta = {key: json.dumps(value) for key, value in (meta or {}).items()}
    files = {
        "scores.parquet": (write_parquet, table.replace_schema_metadata(meta)),
        "contributions.parquet": (write_parquet, contributions),
        "features.parquet": (write_parquet, features),
        ADOPTION_FILE: (write_parquet, adoption),
        "crm_export.csv": (write_csv, feed),
        "alerts.csv": (write_csv, alerts),
    }
    with atomic_dir(out) as tmp, ThreadPoolExecutor(2) as pool:  # Arrow writes free the GIL
        writes = [pool.submit(write, data, tmp / name)
                  for name, (write, data) in files.items() if data is not None]  # fmt: skip
        for done in writes:
            done.result()  # a failed write raises here, and nothing is published
    return len(feed)

"""Names every stage shares: languages, targets, the keys of a snapshot, tiers and actions, the
fit label, the label columns of a horizon, and where a generated world keeps its truth (each
label's oracle beside it). (Feature families and sources: the
catalogue, `churnml.features.catalogue`; tables and columns: `churnml.data.contract`.)"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

Lang = Literal["en", "ja"]  # the languages of reasons, reports and pages
Target = Literal["churn", "expansion"]
TARGETS: tuple[Target, ...] = ("churn", "expansion")
KEYS = ["account_id", "as_of"]
TIERS = ("high", "medium", "low")
ACTIONS = ("save", "fix_then_expand", "expand", "nurture")

# Fit at signing: an account is lost in its first year when it churns (not involuntarily) or its
# ARR falls within this many days of signing (a year and a month: the first annual renewal, even a
# late one, falls inside).
FIRST_YEAR_DAYS = 395
LOST_FIRST_YEAR = "lost_first_year"  # the fit model's label
FIT = "fit"  # the fit model's name (registered beside the targets, scored on deals)
TRUTH_FILE = Path("_truth") / "truth.parquet"  # per account and month: each label's oracle
SIGNING_TRUTH_FILE = Path("_truth") / "signing.parquet"  # per account: fit and its oracle
SIGNING_ORACLE = f"p_{LOST_FIRST_YEAR}"


def label_names(horizon_days: int) -> dict[str, str]:
    """Names of the label columns for a horizon, keyed by role."""
    h = horizon_days
    return {
        "churn": f"churn_{h}d",
        "involuntary": f"involuntary_churn_{h}d",
        "expansion": f"expansion_{h}d",
        "arr_after": f"arr_after_{h}d",
        "reason": f"churn_reason_{h}d",
    }


def oracle_column(label: str) -> str:
    """The truth file's column for a label column: churn_90d → p_churn_90d."""
    return f"p_{label}"

"""Names every stage shares: languages, targets, the keys of a snapshot, tiers and actions, the
fit label and where a generated world keeps its truth. (Feature families and sources: the
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
TRUTH_FILE = Path("_truth") / "truth.parquet"  # per account and month: the 90-day oracle
SIGNING_TRUTH_FILE = Path("_truth") / "signing.parquet"  # per account: fit and its oracle
SIGNING_ORACLE = f"p_{LOST_FIRST_YEAR}"

"""Names every stage shares: targets, the keys of a snapshot, tiers and actions."""

from __future__ import annotations

from typing import Literal

Target = Literal["churn", "expansion"]
TARGETS: tuple[Target, ...] = ("churn", "expansion")
KEYS = ["account_id", "as_of"]
TIERS = ("high", "medium", "low")
ACTIONS = ("save", "fix_then_expand", "expand", "nurture")

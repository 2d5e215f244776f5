"""The kinds of portfolio the simulator can make: event vocabularies, shifts and shapes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Literal

SEGMENTS = ("enterprise", "mid_market", "smb")
INDUSTRIES = ("software", "retail", "healthcare", "finance", "manufacturing", "media",
              "logistics", "education")  # fmt: skip


@dataclass(frozen=True)
class Vocabulary:
    """A product's event types: names, the product area each belongs to, and base weights.

    Areas: 0 core use, 1 and 2 the two add-on areas (their depth drives cross-sell), 3
    collaboration (follows engagement). `quantity` adds Poisson extra quantity by event name.
    """

    names: tuple[str, ...]
    areas: tuple[int, ...]
    weights: tuple[float, ...]
    quantity: tuple[tuple[str, float], ...] = ()

    @classmethod
    def named(cls, names: tuple[str, ...]) -> Vocabulary:
        """Any list of names: areas follow the default world's pattern, weights fall by rank."""
        if len(names) < 2 or len(set(names)) != len(names):
            raise ValueError("an event vocabulary needs at least two distinct names")
        pattern = SAAS_EVENTS.areas
        areas = tuple(pattern[i * len(pattern) // len(names)] for i in range(len(names)))
        weights = tuple(round(3.0 * 0.8**i, 4) for i in range(len(names)))
        return cls(tuple(names), areas, weights)


SAAS_EVENTS = Vocabulary(
    names=("login", "view_dashboard", "search",  # core
           "create_report", "export",  # analytics area
           "automation_run", "api_call", "integration_sync",  # automation area
           "invite_user", "comment"),  # collaboration
    areas=(0, 0, 0, 1, 1, 2, 2, 2, 3, 3),
    weights=(3.0, 2.5, 1.5, 1.0, 0.6, 0.8, 0.6, 0.4, 0.2, 0.5),
    quantity=(("api_call", 30.0), ("automation_run", 5.0)),
)  # fmt: skip
SOCIAL_EVENTS = Vocabulary.named(
    ("open_app", "view_feed", "like", "post", "comment", "message", "share", "adview",
     "upload_photo", "follow", "create_group", "live_stream")
)  # fmt: skip
VOCABULARIES = {"saas": SAAS_EVENTS, "social": SOCIAL_EVENTS}
EVENT_TYPES = SAAS_EVENTS.names


@dataclass(frozen=True)
class Shift:
    """A product or tracking change mid-way: from `start`, the days with recorded product use in
    `segment` (every segment if None) are scaled by `factor`. Behaviour, and so churn, is
    unchanged: a model's inputs drift while the outcomes do not (`churnml monitor` should see
    it)."""

    start: dt.date
    factor: float
    segment: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.factor <= 10:
            raise ValueError(f"shift factor must be in (0, 10], not {self.factor}")
        if self.segment is not None and self.segment not in SEGMENTS:
            raise ValueError(f"unknown segment {self.segment!r}; use one of {', '.join(SEGMENTS)}")

    @classmethod
    def parse(cls, text: str) -> Shift:
        """'2025-06-01:0.5' or '2025-06-01:0.5:smb'."""
        parts = text.split(":")
        try:
            start, factor = dt.date.fromisoformat(parts[0]), float(parts[1])
        except (IndexError, ValueError):
            raise ValueError(f"--shift {text!r}: use DATE:FACTOR[:SEGMENT], e.g. "
                             "2025-06-01:0.5:smb") from None  # fmt: skip
        return cls(start, factor, parts[2] if len(parts) > 2 else None)


@dataclass(frozen=True)
class Shape:
    """The kind of portfolio to simulate. The defaults give the standard B2B world (unchanged
    byte for byte); each option changes one thing, after the same random draws."""

    events: Vocabulary = SAAS_EVENTS
    expansion: bool = True  # False: no upsell or cross-sell at all
    billing: Literal["mixed", "monthly"] = "mixed"  # monthly: one-month terms, each a new row
    segment: str | None = None  # every account in this one segment
    single_user: bool = False  # one user (and one seat) per account, as in a consumer app
    optional_tables: bool = True  # False: only accounts, subscriptions and usage_events
    shift: Shift | None = None  # a product or tracking change mid-way
    problem: tuple[str, str] | None = None  # (industry, channel) whose onboarding goes poorly
    fit: float = 0.0  # how strongly a fit partly visible at signing sets adoption (see FIT_*)

    def __post_init__(self) -> None:
        if not 0 <= self.fit <= 3:
            raise ValueError(f"fit strength must be in [0, 3], not {self.fit}")
        if self.segment is not None and self.segment not in SEGMENTS:
            raise ValueError(f"unknown segment {self.segment!r}; use one of {', '.join(SEGMENTS)}")
        if self.problem is not None and self.problem[0] not in INDUSTRIES:
            raise ValueError(f"unknown industry {self.problem[0]!r}; use one of "
                             f"{', '.join(INDUSTRIES)}")  # fmt: skip


PRESETS = {
    "b2b": Shape(),
    "consumer": Shape(events=SOCIAL_EVENTS, expansion=False, billing="monthly", segment="smb",
                      single_user=True, optional_tables=False),
}  # fmt: skip


def shape_of(
    preset: str = "b2b",
    *,
    events: str | None = None,
    expansion: bool | None = None,
    billing: str | None = None,
    segment: str | None = None,
    required_only: bool | None = None,
    shift: str | None = None,
    problem: str | None = None,
    fit: float | None = None,
) -> Shape:
    """A preset with some of its options replaced (None keeps the preset's). `events` is a
    vocabulary name (saas, social) or event names separated by commas."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    if billing not in (None, "mixed", "monthly"):
        raise ValueError(f"unknown billing {billing!r}; use mixed or monthly")
    base, changes = PRESETS[preset], {}
    if events is not None:
        names = tuple(n.strip() for n in events.split(",") if n.strip())
        changes["events"] = VOCABULARIES.get(events) or Vocabulary.named(names)
    if required_only is not None:
        changes["optional_tables"] = not required_only
    if shift is not None:
        changes["shift"] = Shift.parse(shift)
    if problem is not None:
        industry, _, channel = problem.partition(":")
        if not channel:
            raise ValueError(f"--problem {problem!r}: give INDUSTRY:CHANNEL, e.g. retail:partner")
        changes["problem"] = (industry, channel)
    given = {"expansion": expansion, "billing": billing, "segment": segment, "fit": fit}
    changes |= {key: value for key, value in given.items() if value is not None}
    return replace(base, **changes)

"""A synthetic B2B SaaS world with known truth, for demos, tests and measuring models.

The simulator steps month by month over all accounts at once (numpy vectors; no loop over accounts
or events). Each account carries a hidden state:

* ``e``  engagement: how often users come back (SMB churn follows it most);
* ``s``  seat adoption: what share of bought seats is used (enterprise churn follows it most);
* ``a``  depth in the two add-on areas (reports, automation), which drives cross-sell;
* the relationship: a champion (who may leave), an executive sponsor (engaged or not);
* ``friction``: an incident month (bugs, outages) that shows up as urgent tickets.

Each state moves as a mean-reverting AR(1) around the account's own level; onboarding quality sets
where adoption starts and how fast milestones are done. Observable tables (usage events, tickets,
NPS, milestones, contacts, touchpoints, subscriptions) are noisy read-outs of that state.

Monthly hazards (logistic in the state, with segment-specific weights) decide involuntary churn
(bankruptcy, acquisition, non-payment), voluntary churn (at the renewal date for annual terms, any
day for monthly plans, rarely mid-term), and expansion (upsell of seats, cross-sell of an add-on).

**Known truth.** For every account active on the first day of month m (``as_of``), the truth is the
probability of each 90-day label given the hidden state at ``as_of`` (the state after month m-1).
It is computed by the same ``_advance`` and ``_hazards`` functions the simulation uses: the future
hidden state is sampled ``truth_paths`` times, and along each path the label probabilities are
accumulated exactly from the hazards (each month's event probability times the share of that
month's possible event dates that fall in (as_of, as_of + 90 days]), so only the hidden-state path
is Monte Carlo, not the churn and expansion draws. Churn here is permanent and renewals are at most
20 days late, so with the default 30-day grace the churn date is the cancel or non-renewal date.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.special import expit

from churnml.data.contract import TABLES
from churnml.io import atomic_dir, write_parquet
from churnml.vocabulary import FIRST_YEAR_DAYS, SIGNING_ORACLE, SIGNING_TRUTH_FILE, TRUTH_FILE

log = logging.getLogger(__name__)

SEGMENTS = ("enterprise", "mid_market", "smb")
SEGMENT_SHARE = np.array([0.12, 0.33, 0.55])
SEATS_LOG_MEAN = np.array([5.0, 3.3, 1.6])
EMPLOYEES_LOG_MEAN, EMPLOYEES_LOG_SD = np.array([8.5, 6.0, 3.5]), 0.7
PLANS = ("starter", "pro", "enterprise")
PRICE_PER_SEAT = np.array([300.0, 500.0, 750.0])
ADDONS = ("analytics", "automation")
ADDON_PRICE_SHARE = np.array([0.20, 0.25])


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


MILESTONES = (
    ("kickoff", 7),
    ("admin_setup", 14),
    ("integration_connected", 30),
    ("team_invited", 30),
    ("first_report", 45),
    ("first_value", 60),
)
INVOLUNTARY = ("non_payment", "bankruptcy", "acquisition")
VOLUNTARY_STATED = ("too_expensive", "missing_features", "switched_competitor", "low_usage")

# Churn logit per segment (enterprise, mid-market, SMB): the leading indicators differ.
CHURN_BASE = np.array([-4.9, -4.3, -3.8])
CHURN_W_E = np.array([-0.3, -0.8, -1.5])  # engagement (usage frequency)
CHURN_W_S = np.array([-1.3, -0.8, -0.3])  # seat adoption (utilisation)
CHURN_W_FRICTION = np.array([0.5, 0.6, 0.5])
CHURN_W_NO_CHAMPION = np.array([0.3, 0.3, 0.3])
CHURN_W_CHAMPION_LOST = np.array([1.4, 0.8, 0.3])  # champion left in the last 6 months
CHURN_W_SPONSOR = np.array([-0.9, -0.4, 0.0])  # executive sponsor engaged
RENEWAL_SHIFT, MIDTERM_SHIFT = 2.4, -2.3
INVOLUNTARY_RATE = np.array([0.0008, 0.0015, 0.003])
CHAMPION_LOSS_RATE = np.array([0.025, 0.025, 0.02])
SPONSOR_SHARE = np.array([0.85, 0.5, 0.1])
HIGH_TOUCH_SHARE = np.array([1.0, 0.6, 0.0])
NPS_RESPONSE_RATE = np.array([0.35, 0.25, 0.12])
LATE_RENEWAL_SHARE, LATE_RENEWAL_MAX_DAYS = 0.1, 20


@dataclass(frozen=True)
class WorldSummary:
    out: Path
    accounts: int
    months: int
    usage_events: int
    tables: dict[str, int]


def _add_months(dates: np.ndarray, months: np.ndarray | int) -> np.ndarray:
    """Shift datetime64[D] dates by whole months (day of month is always ≤ 28 here)."""
    month = dates.astype("datetime64[M]")
    day = dates - month.astype("datetime64[D]")
    return (month + months).astype("datetime64[D]") + day


# ---------------------------------------------------------------------------------------------
# Hidden state: one dict of equally long arrays; `_advance` moves it one month.
# ---------------------------------------------------------------------------------------------
State = dict[str, np.ndarray]


def _advance(st: State, rng: np.random.Generator) -> State:
    """Move the hidden state one month forward (a new dict; the input is not changed)."""
    n = len(st["e"])
    seg = st["segment"]
    lose = st["champion"] & (rng.random(n) < CHAMPION_LOSS_RATE[seg])
    gain = ~st["champion"] & (rng.random(n) < 0.15)
    flip = st["has_sponsor"] & (rng.random(n) < 0.06)
    friction = rng.random(n) < (0.04 + 0.05 * (st["s"] < -1.0))
    a = 0.9 * st["a"] + 0.1 * st["mu_a"] + 0.2 * rng.standard_normal(st["a"].shape)
    return {
        **st,
        "e": 0.8 * st["e"] + 0.2 * st["mu_e"] + 0.35 * rng.standard_normal(n) - 0.4 * lose,
        "s": 0.85 * st["s"] + 0.15 * st["mu_s"] + 0.25 * rng.standard_normal(n),
        "a": a,
        "champion": (st["champion"] & ~lose) | gain,
        "since_champion_lost": np.where(lose, 0, st["since_champion_lost"] + 1),
        "sponsor_engaged": np.where(flip, ~st["sponsor_engaged"], st["sponsor_engaged"]),
        "friction": friction,
        "tenure": st["tenure"] + 1,
    }


def _churn_logit(st: State) -> np.ndarray:
    seg = st["segment"]
    return (
        CHURN_BASE[seg]
        + CHURN_W_E[seg] * st["e"]
        + CHURN_W_S[seg] * st["s"]
        + CHURN_W_FRICTION[seg] * st["friction"]
        + CHURN_W_NO_CHAMPION[seg] * ~st["champion"]
        + CHURN_W_CHAMPION_LOST[seg] * (st["since_champion_lost"] < 6)
        + CHURN_W_SPONSOR[seg] * (st["has_sponsor"] & st["sponsor_engaged"])
        + st["stall_weight"] * st["stalled"]  # 0 but in a planted problem's world
    )


def _hazards(st: State, renewal_month: np.ndarray) -> dict[str, np.ndarray]:
    """This month's event probabilities given the (already advanced) hidden state."""
    x = _churn_logit(st)
    annual = st["term_months"] > 1  # monthly terms churn like monthly plans, at the term end
    shift = np.where(annual, np.where(renewal_month, RENEWAL_SHIFT, MIDTERM_SHIFT), 0.0)
    health = 0.5 * (st["e"] + st["s"])
    unhealthy = 1.5 * (health < -0.8)
    young = st["tenure"] < 3
    upsell = expit(
        -4.3
        + 1.1 * st["s"]
        + 0.5 * st["e"]
        + 0.4 * (st["has_sponsor"] & st["sponsor_engaged"])
        + 0.3 * (st["segment"] == 0)
        - unhealthy
        - 1.0 * young
    )
    cross = expit(-4.9 + 1.4 * st["a"] + 0.4 * health[:, None] - unhealthy[:, None])
    cross = cross * ~st["addon_held"] * ~young[:, None]
    # A product without expansion: the same draws, with zero hazards.
    upsell, cross = upsell * st["expands"], cross * st["expands"][:, None]
    return {
        "involuntary": INVOLUNTARY_RATE[st["segment"]],
        "voluntary": expit(x + shift),
        "upsell": upsell,
        "cross": cross,
        "expansion": 1 - (1 - upsell) * np.prod(1 - cross, axis=1),
    }


# ---------------------------------------------------------------------------------------------
# Dates within a month: mid-month events fall on day offsets 1..D-1 (never on the 1st, so that an
# account active on the 1st stays active on it); renewal-month expansions happen at renewal start.
# ---------------------------------------------------------------------------------------------
def _share_by(cutoff: np.datetime64, month_start: np.datetime64, days: int) -> float:
    """Share of mid-month event dates in a month that fall on or before `cutoff`."""
    offset = int((cutoff - month_start).astype(int))
    return float(np.clip(offset, 0, days - 1)) / (days - 1)


def _renewal_start_share(term_end: np.ndarray, cutoff: np.datetime64) -> np.ndarray:
    """P(renewal start ≤ cutoff): on time, or up to LATE_RENEWAL_MAX_DAYS late, uniformly."""
    slack = (cutoff - term_end).astype(int)
    late = np.clip(slack, 0, LATE_RENEWAL_MAX_DAYS) / LATE_RENEWAL_MAX_DAYS
    return np.where(slack >= 0, (1 - LATE_RENEWAL_SHARE) + LATE_RENEWAL_SHARE * late, 0.0)


def _truth(
    st: State,
    month_starts: np.ndarray,
    m: int,
    horizon_days: int,
    paths: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Label probabilities at month_starts[m] for the accounts in `st` (see module docstring)."""
    n = len(st["e"])
    path = {k: np.tile(v, (paths,) + (1,) * (v.ndim - 1)) for k, v in st.items()}
    cutoff = month_starts[m] + np.timedelta64(horizon_days, "D")
    alive = np.ones(n * paths)
    alive_not_expanded = np.ones(n * paths)
    p = {"churn": np.zeros(n * paths), "involuntary": np.zeros(n * paths)}
    p["expansion"] = np.zeros(n * paths)
    k = m
    while k + 1 < len(month_starts) and month_starts[k] <= cutoff:
        start, days = month_starts[k], int((month_starts[k + 1] - month_starts[k]).astype(int))
        path = _advance(path, rng)
        renewal = (path["term_months"] > 0) & (path["term_end"] < month_starts[k + 1])
        hz = _hazards(path, renewal)
        mid = _share_by(cutoff, start, days)
        churn_share = np.where(renewal, (path["term_end"] <= cutoff).astype(float), mid)
        exp_share = np.where(renewal, _renewal_start_share(path["term_end"], cutoff), mid)
        stay = (1 - hz["involuntary"]) * (1 - hz["voluntary"])
        inv_share = np.where(renewal & (path["term_end"] <= cutoff), 1.0, mid)
        p["involuntary"] += alive * hz["involuntary"] * inv_share
        p["churn"] += alive * (1 - hz["involuntary"]) * hz["voluntary"] * churn_share
        p["expansion"] += alive_not_expanded * stay * hz["expansion"] * exp_share
        alive *= stay
        alive_not_expanded *= stay * (1 - hz["expansion"])
        path["term_end"] = np.where(
            renewal, _add_months(path["term_end"], path["term_months"]), path["term_end"]
        )
        k += 1
    return {name: v.reshape(paths, n).mean(axis=0) for name, v in p.items()}


# ---------------------------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------------------------
class _Recorder:
    """Collects table rows as column arrays, month by month, and assembles DataFrames."""

    def __init__(self) -> None:
        self.parts: dict[str, list[dict[str, np.ndarray]]] = {}

    def add(self, table: str, **columns: np.ndarray) -> None:
        if len(next(iter(columns.values()))):
            self.parts.setdefault(table, []).append(columns)

    def frame(self, table: str) -> pd.DataFrame:
        parts = self.parts.get(table, [])
        return pd.DataFrame({c: np.concatenate([p[c] for p in parts]) for c in parts[0]})


def _random_days(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Uniform integer day offsets in [lo, hi) (hi > lo)."""
    return lo + np.floor(rng.random(len(lo)) * (hi - lo)).astype(np.int64)


def _random_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds into the day, around office hours (UTC)."""
    hours = np.clip(rng.normal(14.0, 3.5, n), 0, 23.999)
    return (hours * 3600).astype(np.int64)


class _Simulation:
    """Runs the monthly simulation; `run` fills `rec` and returns the usage plan and truth."""

    def __init__(
        self, n_accounts: int, months: int, start: np.datetime64, seed: int, shape: Shape
    ) -> None:
        self.n, self.months, self.shape = n_accounts, months, shape
        self.month_starts = np.arange(
            start.astype("datetime64[M]"), start.astype("datetime64[M]") + months + 1
        ).astype("datetime64[D]")
        self.rng = np.random.default_rng([seed, 0])
        self.truth_rng = np.random.default_rng([seed, 1])
        self.signing_rng = np.random.default_rng([seed, 5])
        self.seed = seed
        self.rec = _Recorder()
        self.contact_counter = 0

    # -- accounts and their initial state ------------------------------------------------------
    def _accounts(self) -> None:
        rng, n = self.rng, self.n
        seg = rng.choice(3, size=n, p=SEGMENT_SHARE)
        if self.shape.segment is not None:
            seg = np.full(n, SEGMENTS.index(self.shape.segment))
        # A third of the book is there in month 0; the rest signs up over the period (not in the
        # last three months, so that every account has some history).
        last = max(1, self.months - 3)
        signup_month = np.where(rng.random(n) < 0.3, 0, rng.integers(0, last, n))
        signup = self.month_starts[signup_month] + rng.integers(1, 28, n).astype("timedelta64[D]")
        order = np.lexsort((seg, signup))
        seg, signup, signup_month = seg[order], signup[order], signup_month[order]
        never = rng.random(n) < 0.03
        q = rng.standard_normal(n)
        self.firms = None
        if self.shape.problem is not None or self.shape.fit:  # own streams: the other draws
            self.firms = _firmographics(np.random.default_rng([self.seed, 3]), seg)  # stay
        if self.shape.problem is not None:
            industry, channel = self.shape.problem
            q = q - POOR_ONBOARDING * ((self.firms[2] == industry) & (self.firms[0] == channel))
        mu_e = np.where(never, -2.5, rng.normal(0.0, 0.7, n))
        mu_s = np.where(never, -2.5, rng.normal(0.0, 0.7, n))
        self.fit = self.fit_visible = np.zeros(n)
        if self.shape.fit:
            self.fit_visible = _fit_visible(seg, *self.firms)
            hidden = np.random.default_rng([self.seed, 4]).standard_normal(n) * FIT_HIDDEN_SD
            self.fit = self.fit_visible + hidden
            lift = self.shape.fit * FIT_WEIGHT * self.fit
            q, mu_e, mu_s = q + lift, mu_e + lift, mu_s + lift
        seats = np.maximum(1, np.round(np.exp(rng.normal(SEATS_LOG_MEAN[seg], 0.6))))
        if self.shape.single_user:
            seats = np.ones(n)
        plan = np.where(
            seg == 0, 2, np.where(seg == 1, 1 + (rng.random(n) < 0.3), rng.random(n) < 0.3)
        ).astype(int)
        monthly_share = np.array([0.0, 0.25, 0.65])[seg]
        term = np.where(rng.random(n) < monthly_share, 0, 12)
        term = np.where((seg == 0) & (rng.random(n) < 0.2), 24, term)
        if self.shape.billing == "monthly":
            term = np.ones(n, term.dtype)
        has_sponsor = rng.random(n) < SPONSOR_SHARE[seg]
        self.signup, self.signup_month, self.never = signup, signup_month, never
        self.q, self.seg = q, seg
        self.high_touch = rng.random(n) < HIGH_TOUCH_SHARE[seg]
        self.price = PRICE_PER_SEAT[plan]
        self.plan = plan
        self.e0, self.s0 = mu_e + 0.6 * q + rng.normal(0, 0.4, n), mu_s - 0.9 + 0.6 * q
        self.champion0 = rng.random(n) < 0.85
        self.state: State = {
            "segment": seg,
            "e": self.e0.copy(),
            "s": self.s0.copy(),
            "a": rng.normal(0, 0.8, (n, 2)),
            "mu_e": mu_e,
            "mu_s": mu_s,
            "mu_a": rng.normal(-0.3, 0.8, (n, 2)),
            "champion": self.champion0.copy(),
            "since_champion_lost": np.full(n, 99),
            "has_sponsor": has_sponsor,
            "sponsor_engaged": has_sponsor & (rng.random(n) < 0.7),
            "friction": np.zeros(n, bool),
            "tenure": np.full(n, -1),
            "term_months": term,
            "term_end": _add_months(signup, np.maximum(term, 1)),
            "addon_held": np.zeros((n, 2), bool),
            "expands": np.full(n, self.shape.expansion),
            "stalled": np.zeros(n, bool),  # never reached first value
            "stall_weight": np.full(n, STALL_WEIGHT if self.shape.problem else 0.0),
        }
        self.seats = seats
        self.core_arr = seats * self.price
        self.addon_arr = np.zeros((n, 2))
        self.alive = np.zeros(n, bool)
        self.churn_date = np.full(n, np.datetime64("NaT"), "datetime64[D]")
        self.churn_reason = np.full(n, None, object)
        self.champion_contact = np.full(n, -1)
        self.account_ids = np.array([f"A{i:06d}" for i in range(1, n + 1)], dtype=object)

    # -- one month -----------------------------------------------------------------------------
    def _month(self, m: int) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        rng, st = self.rng, self.state
        start, nxt = self.month_starts[m], self.month_starts[m + 1]
        days = int((nxt - start).astype(int))
        active_at_start = self.alive & (self.current_term_start <= start)
        truth = None
        if active_at_start.any():
            idx = np.flatnonzero(active_at_start)
            sub = {k: v[idx] for k, v in st.items()}
            t = _truth(sub, self.month_starts, m, 90, self.truth_paths, self.truth_rng)
            truth = pd.DataFrame(
                {
                    "account_id": self.account_ids[idx],
                    "as_of": np.full(len(idx), start),
                    "p_churn_90d": t["churn"],
                    "p_involuntary_churn_90d": t["involuntary"],
                    "p_expansion_90d": t["expansion"],
                }
            )
        new = self.signup_month == m
        self._sign_up(np.flatnonzero(new))
        self.alive |= new
        st = self.state = _advance(st, rng)
        self._signing_truth(np.flatnonzero(new), m)
        live = np.flatnonzero(self.alive)
        renewal = (st["term_months"] > 0) & (st["term_end"] < nxt)
        hz = _hazards({k: v[live] for k, v in st.items()}, renewal[live])
        first_day = np.where(new[live], (self.signup[live] - start).astype(int), 0)
        mid_day = _random_days(rng, np.maximum(first_day, 1), np.full(len(live), days))
        u = rng.random(len(live))
        inv = u < hz["involuntary"]
        vol = ~inv & (u < hz["involuntary"] + (1 - hz["involuntary"]) * hz["voluntary"])
        # New accounts cannot churn in their signup month.
        inv &= ~new[live]
        vol &= ~new[live]
        ren = renewal[live]
        renewal_day = (st["term_end"][live] - start).astype(int)
        # In a renewal month an involuntary churn comes at the latest on the renewal date.
        churn_day = np.where(
            ren, np.where(vol, renewal_day, np.minimum(mid_day, renewal_day)), mid_day
        )
        self._churn(live[inv], start + churn_day[inv], INVOLUNTARY, inv=True)
        self._churn(live[vol & ~ren], start + churn_day[vol & ~ren], VOLUNTARY_STATED, inv=False)
        self._churn(live[vol & ren], start + churn_day[vol & ren], (), inv=False)
        stays = ~inv & ~vol
        renew_start = self._renew(live[stays & ren], rng)
        exp_day = mid_day.astype("timedelta64[D]") + start
        exp_day[stays & ren] = renew_start
        self._expand(live[stays], exp_day[stays], hz, stays, rng)
        last_day = np.where(inv | vol, churn_day, days)
        usage = self._observe(m, live, np.minimum(first_day, days - 1), last_day, days)
        self.alive[live[inv | vol]] = False
        return usage, truth

    def _signing_truth(self, idx: np.ndarray, m: int) -> None:
        """The oracle of the fit label for accounts signed in month m: the chance of a voluntary
        churn by FIRST_YEAR_DAYS after the month's first day, from the state after the month
        (no account churns in its signup month)."""
        if not len(idx) or m + 1 >= self.months:
            return
        cutoff = self.month_starts[m] + np.timedelta64(FIRST_YEAR_DAYS, "D")
        days = int((cutoff - self.month_starts[m + 1]).astype(int))
        sub = {k: v[idx] for k, v in self.state.items()}
        p = _truth(sub, self.month_starts, m + 1, days, self.truth_paths, self.signing_rng)
        self.rec.add("signing_truth", account=idx, fit=self.fit[idx],
                     fit_visible=self.fit_visible[idx], p=p["churn"])  # fmt: skip

    def _sign_up(self, idx: np.ndarray) -> None:
        if not len(idx):
            return
        st, rng = self.state, self.rng
        self.current_term_start[idx] = self.signup[idx]
        # The hidden state starts at signup (onboarding sets where adoption begins).
        st["e"][idx], st["s"][idx] = self.e0[idx], self.s0[idx]
        st["champion"][idx] = self.champion0[idx]
        st["since_champion_lost"][idx] = 99
        st["tenure"][idx] = 0
        end = np.where(st["term_months"][idx] > 0, st["term_end"][idx], np.datetime64("NaT", "D"))
        self._subscription_rows(
            idx, self.signup[idx], end, "platform", self.core_arr[idx], self.seats[idx]
        )
        self._contacts_at_signup(idx, rng)
        self._milestones(idx, rng)

    def _subscription_rows(
        self,
        idx: np.ndarray,
        start: np.ndarray,
        end: np.ndarray,
        product: str | np.ndarray,
        arr: np.ndarray,
        seats: np.ndarray | None,
    ) -> None:
        self.rec.add(
            "subscriptions",
            account=idx,
            product=np.broadcast_to(np.asarray(product, dtype=object), len(idx)).copy(),
            start_date=start,
            end_date=end,
            arr=np.round(arr, 2),
            plan=np.array(PLANS, dtype=object)[self.plan[idx]],
            seats=np.full(len(idx), np.nan) if seats is None else seats.astype(float),
        )

    def _churn(self, idx: np.ndarray, dates: np.ndarray, reasons: tuple, inv: bool) -> None:
        self.churn_date[idx] = dates
        if reasons:
            rng = self.rng
            stated = np.array(reasons, dtype=object)[rng.integers(0, len(reasons), len(idx))]
            # Customers rarely say why: half of voluntary mid-term cancels carry no reason.
            self.churn_reason[idx] = np.where(inv | (rng.random(len(idx)) < 0.5), stated, None)
        self.canceled[idx] = len(reasons) > 0

    def _renew(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        st = self.state
        old_end = st["term_end"][idx]
        late = np.where(
            rng.random(len(idx)) < LATE_RENEWAL_SHARE,
            rng.integers(1, LATE_RENEWAL_MAX_DAYS + 1, len(idx)),
            0,
        )
        start = old_end + late.astype("timedelta64[D]")
        new_end = _add_months(old_end, st["term_months"][idx])
        # Price uplift once a year: monthly terms renew at the same price.
        uplift = 1 + rng.uniform(0, 0.04, len(idx)) * (st["term_months"][idx] >= 12)
        self.core_arr[idx] *= uplift
        self.addon_arr[idx] *= uplift[:, None]
        self._subscription_rows(
            idx, start, new_end, "platform", self.core_arr[idx], self.seats[idx]
        )
        for k, addon in enumerate(ADDONS):
            held = st["addon_held"][idx, k]
            self._subscription_rows(
                idx[held], start[held], new_end[held], addon, self.addon_arr[idx[held], k], None
            )
        st["term_end"][idx] = new_end
        self.current_term_start[idx] = start
        return start

    def _expand(
        self,
        idx: np.ndarray,
        dates: np.ndarray,
        hz: dict[str, np.ndarray],
        rows: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        st = self.state
        up = rng.random(len(idx)) < hz["upsell"][rows]
        end = np.where(st["term_months"][idx] > 0, st["term_end"][idx], np.datetime64("NaT", "D"))
        total = self.core_arr[idx] + self.addon_arr[idx].sum(axis=1)
        price = self.price[idx]
        delta = np.maximum(
            np.ceil(0.06 * total / price), np.round(self.seats[idx] * rng.uniform(0.1, 0.4))
        )
        u_idx = idx[up]
        self.seats[u_idx] += delta[up]
        self.core_arr[u_idx] += delta[up] * price[up]
        self._subscription_rows(
            u_idx, dates[up], end[up], "platform", delta[up] * price[up], delta[up]
        )
        cross = rng.random((len(idx), 2)) < hz["cross"][rows]
        for k, addon in enumerate(ADDONS):
            c_idx = idx[cross[:, k]]
            arr = ADDON_PRICE_SHARE[k] * self.core_arr[c_idx]
            self.addon_arr[c_idx, k] = arr
            st["addon_held"][c_idx, k] = True
            self._subscription_rows(c_idx, dates[cross[:, k]], end[cross[:, k]], addon, arr, None)

    # -- observable read-outs --------------------------------------------------------------------
    def _observe(
        self, m: int, live: np.ndarray, lo: np.ndarray, hi: np.ndarray, days: int
    ) -> pd.DataFrame:
        """Tickets, NPS, contacts, touchpoints for the month; returns the month's usage plan."""
        rng, st = self.rng, self.state
        start = self.month_starts[m]
        hi = np.maximum(hi, lo + 1)
        e, s, fr = st["e"][live], st["s"][live], st["friction"][live]
        health = 0.5 * (e + s)
        alive_share = (hi - lo) / days
        seats = self.seats[live]
        # Support tickets.
        rate = alive_share * 0.08 * seats**0.6 * np.exp(-0.45 * health) * (1 + 3 * fr)
        n_t = rng.poisson(rate)
        t_idx = np.repeat(np.arange(len(live)), n_t)
        created = (start + _random_days(rng, lo[t_idx], hi[t_idx]).astype("timedelta64[D]")).astype(
            "datetime64[s]"
        ) + _random_seconds(rng, len(t_idx)).astype("timedelta64[s]")
        urgent = rng.random(len(t_idx)) < expit(-1.8 - 0.6 * health[t_idx] + 1.5 * fr[t_idx])
        priority = np.where(
            urgent,
            np.where(rng.random(len(t_idx)) < 0.3, "urgent", "high"),
            np.where(rng.random(len(t_idx)) < 0.6, "normal", "low"),
        )
        hours = np.exp(rng.normal(2.8 - 0.3 * health[t_idx] - 0.5 * urgent, 1.0))
        categories = np.array(["bug", "how_to", "billing", "feature_request", "integration"])
        csat = np.clip(
            np.round(4.1 + 0.6 * health[t_idx] - 0.004 * hours + rng.normal(0, 0.8, len(t_idx))),
            1,
            5,
        )
        self.rec.add(
            "support_tickets",
            account=live[t_idx],
            created_at=created,
            priority=priority.astype(object),
            resolved_at=created + (hours * 3600).astype("timedelta64[s]"),
            category=categories[rng.integers(0, 5, len(t_idx))].astype(object),
            csat=np.where(rng.random(len(t_idx)) < 0.35, csat, np.nan),
        )
        # NPS: most accounts do not answer in a given month.
        answered = rng.random(len(live)) < NPS_RESPONSE_RATE[st["segment"][live]]
        a_idx = np.flatnonzero(answered)
        score = np.clip(
            np.round(7.2 + 1.6 * health[a_idx] - 0.8 * fr[a_idx] + rng.normal(0, 1.4, len(a_idx))),
            0,
            10,
        )
        self.rec.add(
            "nps_responses",
            account=live[a_idx],
            submitted_at=self._timestamps(start, lo[a_idx], hi[a_idx]),
            score=score.astype(np.int64),
        )
        self._relationship(m, live, lo, hi)
        # Usage plan: read out later, in chunks, by `_write_events`.
        u = expit(0.2 + 1.1 * s)
        n_active = np.where(self.never[live], 0, rng.binomial(seats.astype(np.int64), u))
        season = {7: 0.75, 11: 0.7}.get(int(start.astype("datetime64[M]").astype(int) % 12), 1.0)
        burst = np.where(rng.random(len(live)) < 0.02, 4.0, 1.0)
        vocab = self.shape.events
        area = np.asarray(vocab.areas)
        logw = np.log(np.asarray(vocab.weights)) + np.select(
            [area == 1, area == 2, area == 3],
            [st["a"][live, 0:1], st["a"][live, 1:2], 0.5 * e[:, None]],
            0.0,
        )
        return pd.DataFrame(
            {
                "account": live,
                "month_start": start,
                "lo": lo,
                "hi": hi,
                "n_active": n_active,
                "seats": seats.astype(np.int64),
                "p_day": expit(-1.7 + 1.0 * e) * season * self._shifted(start, live),
                "lam": 0.8 * np.exp(0.3 * e) * burst,
                **{f"w{j}": np.exp(logw[:, j]) for j in range(len(vocab.names))},
            }
        )

    def _shifted(self, start: np.datetime64, live: np.ndarray) -> np.ndarray | float:
        """The shape's shift factor for these accounts in the month from `start` (else 1)."""
        shift = self.shape.shift
        if shift is None or start < np.datetime64(shift.start, "D"):
            return 1.0
        inside = np.full(len(live), shift.segment is None)
        if shift.segment is not None:
            inside = self.seg[live] == SEGMENTS.index(shift.segment)
        return np.where(inside, shift.factor, 1.0)

    def _timestamps(self, start: np.datetime64, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        day = start + _random_days(self.rng, lo, hi).astype("timedelta64[D]")
        return day.astype("datetime64[s]") + _random_seconds(self.rng, len(lo)).astype(
            "timedelta64[s]"
        )

    def _relationship(self, m: int, live: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Champion changes (contacts) and CS touchpoints for the month."""
        rng, st = self.rng, self.state
        start = self.month_starts[m]
        lost = live[(st["since_champion_lost"][live] == 0) & (self.champion_contact[live] >= 0)]
        pos = np.searchsorted(live, lost)
        self.contact_end[self.champion_contact[lost]] = start + _random_days(
            rng, lo[pos], hi[pos]
        ).astype("timedelta64[D]")
        self.champion_contact[lost] = -1
        gained = live[st["champion"][live] & (self.champion_contact[live] < 0)]
        pos = np.searchsorted(live, gained)
        self.champion_contact[gained] = self._new_contacts(
            gained, "champion", start + _random_days(rng, lo[pos], hi[pos]).astype("timedelta64[D]")
        )
        ht = self.high_touch[live]
        tenure = st["tenure"][live]
        engaged = st["has_sponsor"][live] & st["sponsor_engaged"][live]
        seg = st["segment"][live]
        kinds = {
            "qbr": ht & (tenure % 3 == 2) & (rng.random(len(live)) < np.where(engaged, 0.85, 0.35)),
            "ebr": ht & (seg == 0) & engaged & (tenure % 6 == 5) & (rng.random(len(live)) < 0.7),
            "check_in": rng.random(len(live)) < np.where(ht, 0.5, 0.04),
            "training": (tenure < 3) & (rng.random(len(live)) < np.where(ht, 0.7, 0.1)),
            "webinar": ~ht & (rng.random(len(live)) < 0.05),
        }
        for kind, hit in kinds.items():
            idx = np.flatnonzero(hit)
            self.rec.add(
                "cs_touchpoints",
                account=live[idx],
                ts=self._timestamps(start, lo[idx], hi[idx]),
                kind=np.full(len(idx), kind, dtype=object),
            )

    def _new_contacts(self, idx: np.ndarray, role: str, start: np.ndarray) -> np.ndarray:
        ids = np.arange(self.contact_counter, self.contact_counter + len(idx))
        self.contact_counter += len(idx)
        self.contact_rows.append((idx, ids, role, start))
        self.contact_end = np.concatenate(
            [self.contact_end, np.full(len(idx), np.datetime64("NaT"), "datetime64[D]")]
        )
        return ids

    def _contacts_at_signup(self, idx: np.ndarray, rng: np.random.Generator) -> None:
        st = self.state
        when = self.signup[idx]
        champ = idx[st["champion"][idx]]
        self.champion_contact[champ] = self._new_contacts(champ, "champion", self.signup[champ])
        sponsor = st["has_sponsor"][idx]
        self._new_contacts(idx[sponsor], "exec_sponsor", when[sponsor])
        self._new_contacts(idx, "admin", when)
        n_users = rng.integers(0, 4, len(idx))
        users = np.repeat(idx, n_users)
        self._new_contacts(users, "user", np.repeat(when, n_users))

    def _milestones(self, idx: np.ndarray, rng: np.random.Generator) -> None:
        q = self.q[idx]
        for i, (name, due_days) in enumerate(MILESTONES):
            done = rng.random(len(idx)) < expit(2.0 + 1.5 * q - 0.25 * i)
            took = due_days * np.exp(rng.normal(0.1 - 0.35 * q, 0.45))
            completed = self.signup[idx].astype("datetime64[s]") + (took * 86400).astype(
                "timedelta64[s]"
            )
            if name == "first_value":
                self.state["stalled"][idx] = ~done
            self.rec.add(
                "onboarding_milestones",
                account=idx,
                milestone=np.full(len(idx), name, dtype=object),
                completed_at=np.where(done, completed, np.datetime64("NaT", "s")),
                due_date=self.signup[idx] + np.timedelta64(due_days, "D"),
            )

    # -- run ---------------------------------------------------------------------------------------
    def run(self, truth_paths: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        self.truth_paths = truth_paths
        self._accounts()
        self.current_term_start = np.full(self.n, np.datetime64("NaT"), "datetime64[D]")
        self.canceled = np.zeros(self.n, bool)
        self.contact_rows: list[tuple[np.ndarray, np.ndarray, str, np.ndarray]] = []
        self.contact_end = np.empty(0, "datetime64[D]")
        plans, truths = [], []
        for m in range(self.months):
            usage, truth = self._month(m)
            plans.append(usage)
            if truth is not None:
                truths.append(truth)
        return pd.concat(plans, ignore_index=True), pd.concat(truths, ignore_index=True)

    def signing_truth(self) -> pd.DataFrame:
        """Per account signed before the last month: its latent fit, the part signing shows, and
        the oracle's chance of losing it in its first year (FIRST_YEAR_DAYS)."""
        if "signing_truth" not in self.rec.parts:
            return pd.DataFrame({"account_id": pd.Series(dtype=object), **{
                c: pd.Series(dtype=float) for c in ("fit", "fit_visible", SIGNING_ORACLE)}})
        df = self.rec.frame("signing_truth").rename(columns={"p": SIGNING_ORACLE})
        df.insert(0, "account_id", self.account_ids[df.pop("account").to_numpy()])
        return df

    # -- tables ----------------------------------------------------------------------------------
    def tables(self) -> dict[str, pd.DataFrame]:
        """Every contract table except usage events, with the contract's column names."""
        end = self.month_starts[-1]
        ids = self.account_ids
        out = {"accounts": self._accounts_table()}
        subs = self.rec.frame("subscriptions")
        cancel = self.churn_date[subs["account"]]
        hit = (
            self.canceled[subs["account"]]
            & (subs["start_date"].to_numpy() <= cancel)
            & (subs["end_date"].isna().to_numpy() | (subs["end_date"].to_numpy() >= cancel))
        )
        subs["canceled_at"] = np.where(hit, cancel, np.datetime64("NaT", "D"))
        subs["cancel_reason"] = np.where(hit, self.churn_reason[subs["account"]], None)
        out["subscriptions"] = subs
        ms = self.rec.frame("onboarding_milestones")
        lifetime_end = np.where(np.isnat(self.churn_date), end, self.churn_date)
        late = ms["completed_at"].to_numpy() >= lifetime_end[ms["account"]].astype("datetime64[s]")
        ms.loc[late, "completed_at"] = pd.NaT
        out["onboarding_milestones"] = ms
        tickets = self.rec.frame("support_tickets")
        open_at_end = tickets["resolved_at"].to_numpy() >= end.astype("datetime64[s]")
        tickets.loc[open_at_end, "resolved_at"] = pd.NaT
        tickets.insert(1, "ticket_id", [f"T{i:08d}" for i in range(1, len(tickets) + 1)])
        out["support_tickets"] = tickets
        out["nps_responses"] = self.rec.frame("nps_responses")
        out["contacts"] = self._contacts_table()
        out["cs_touchpoints"] = self.rec.frame("cs_touchpoints")
        for name, df in out.items():
            if "account" in df:
                df.insert(0, "account_id", ids[df.pop("account").to_numpy()])
            sort = ["account_id", TABLES[name].time_column]
            out[name] = df.sort_values(sort, kind="stable").reset_index(drop=True)
        return out

    def _accounts_table(self) -> pd.DataFrame:
        rng, n = self.rng, self.n
        first = np.array(
            [
                "Blue",
                "North",
                "Bright",
                "Summit",
                "Pixel",
                "Harbor",
                "Atlas",
                "Nova",
                "Cedar",
                "Quantum",
                "Silver",
                "Iron",
                "Maple",
                "Orbit",
                "Lumen",
            ]
        )
        second = np.array(
            [
                "Logistics",
                "Health",
                "Labs",
                "Retail",
                "Capital",
                "Foods",
                "Systems",
                "Media",
                "Energy",
                "Works",
                "Analytics",
                "Travel",
            ]
        )
        suffix = np.array(["Inc", "Ltd", "GmbH", "LLC", "Corp"])
        ja = np.array(
            [
                "株式会社さくら商事",
                "山田製作所",
                "株式会社ミライ物流",
                "東京データ合同会社",
                "株式会社ひかり",
                "大阪テクノ株式会社",
            ]
        )
        names = np.char.add(
            np.char.add(
                np.char.add(first[rng.integers(0, 15, n)], " "), second[rng.integers(0, 12, n)]
            ),
            np.char.add(" ", suffix[rng.integers(0, 5, n)]),
        ).astype(object)
        is_ja = rng.random(n) < 0.06
        names[is_ja] = ja[rng.integers(0, len(ja), is_ja.sum())]
        seg = self.seg
        region = np.where(is_ja, "JP", np.array(["NA", "EMEA", "APAC"])[rng.integers(0, 3, n)])
        owners = np.array([f"csm_{c}" for c in "abcdefghijklmnopqrst"])
        owner = np.where(
            seg == 2,
            "digital_cs",
            owners[np.where(seg == 0, rng.integers(0, 6, n), rng.integers(6, 20, n))],
        )
        channel, employees, industry = _firmographics(rng, seg)
        if self.firms is not None:  # drawn at the start, for a planted problem
            channel, employees, industry = self.firms
        return pd.DataFrame(
            {
                "account_id": self.account_ids,
                "account_name": names,
                "segment": np.array(SEGMENTS, dtype=object)[seg],
                "signup_date": self.signup,
                "industry": industry.astype(object),
                "region": region.astype(object),
                "csm_owner": owner.astype(object),
                "acquisition_channel": channel.astype(object),
                "employees": employees.astype(np.int64),
            }
        )

    def _contacts_table(self) -> pd.DataFrame:
        acct = np.concatenate([r[0] for r in self.contact_rows])
        ids = np.concatenate([r[1] for r in self.contact_rows])
        role = np.concatenate([np.full(len(r[0]), r[2], dtype=object) for r in self.contact_rows])
        start = np.concatenate([r[3] for r in self.contact_rows])
        return pd.DataFrame(
            {
                "account": acct,
                "contact_id": np.char.add("C", ids.astype(str)).astype(object),
                "role": role,
                "start_date": start,
                "end_date": self.contact_end[ids],
            }
        )


INDUSTRIES = ("software", "retail", "healthcare", "finance", "manufacturing", "media",
              "logistics", "education")  # fmt: skip
POOR_ONBOARDING = 2.5  # how far onboarding quality falls (in its SDs) in a planted problem
# Fit at signing (Shape.fit): a latent fit = what signing shows (industry, channel, size within
# the segment) + what it does not (FIT_HIDDEN_SD); fit × strength × FIT_WEIGHT lifts onboarding
# quality and the levels engagement and seat adoption return to.
FIT_INDUSTRY = dict(zip(INDUSTRIES, (0.5, -0.5, 0.1, 0.3, -0.2, -0.4, 0.0, -0.6), strict=True))
FIT_CHANNEL = {"outbound": -0.2, "inbound": 0.3, "partner": 0.4, "self_serve": -0.4}
FIT_SIZE, FIT_HIDDEN_SD, FIT_WEIGHT = 0.3, 0.5, 0.5
STALL_WEIGHT = 2.0  # churn log-odds added, in that world, for never reaching first value


def _firmographics(rng: np.random.Generator,
                   seg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Acquisition channel, employees and industry of each account."""
    n = len(seg)
    channel = np.where(
        seg == 2,
        np.array(["self_serve", "inbound", "partner"])[rng.choice(3, n, p=[0.6, 0.3, 0.1])],
        np.array(["outbound", "inbound", "partner"])[rng.choice(3, n, p=[0.5, 0.3, 0.2])],
    )
    employees = np.round(np.exp(rng.normal(EMPLOYEES_LOG_MEAN[seg], EMPLOYEES_LOG_SD)))
    industry = np.array(INDUSTRIES)[rng.integers(0, len(INDUSTRIES), n)]
    return channel, employees, industry


def _fit_visible(seg: np.ndarray, channel: np.ndarray, employees: np.ndarray,
                 industry: np.ndarray) -> np.ndarray:  # fmt: skip
    """The part of each account's fit that signing shows (see FIT_*)."""
    size = (np.log(np.maximum(employees, 1)) - EMPLOYEES_LOG_MEAN[seg]) / EMPLOYEES_LOG_SD
    return (np.vectorize(FIT_INDUSTRY.get)(industry) + np.vectorize(FIT_CHANNEL.get)(channel)
            + FIT_SIZE * size)  # fmt: skip


_ARROW_TYPES = {
    "id": pa.string(),
    "text": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "float": pa.float64(),
    "int": pa.int64(),
}


def to_arrow(name: str, df: pd.DataFrame) -> pa.Table:
    """A contract table as Arrow, with the contract's column types (dates as dates)."""
    table = TABLES[name]
    schema = pa.schema([(c, _ARROW_TYPES[table.column(c).kind]) for c in table.column_names])
    arrays = []
    for col in table.column_names:
        values = df[col]
        if values.dtype.kind == "f" and table.column(col).kind == "int":
            values = values.astype("Int64")
        arrays.append(pa.array(values, from_pandas=True).cast(schema.field(col).type))
    return pa.Table.from_arrays(arrays, schema=schema)


# ---------------------------------------------------------------------------------------------
# Usage events: generated in chunks of accounts from the monthly usage plan, written as they go.
# ---------------------------------------------------------------------------------------------
EVENT_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("user_id", pa.int64()),
        ("ts", pa.timestamp("us")),
        ("event_type", pa.string()),
        ("quantity", pa.float64()),
    ]
)


def _events_for(
    plan: pd.DataFrame, account_ids: np.ndarray, rng: np.random.Generator, vocab: Vocabulary
) -> pa.Table:
    """Expand account-months → active users → active days → events, all with np.repeat."""
    n_active = plan["n_active"].to_numpy()
    um = np.repeat(np.arange(len(plan)), n_active)  # user-month → plan row
    first = np.repeat(np.cumsum(n_active) - n_active, n_active)
    shift = rng.integers(0, 3, len(plan))[um]
    seats = plan["seats"].to_numpy()[um]
    user_idx = (np.arange(len(um)) - first + shift) % seats
    lo, hi = plan["lo"].to_numpy()[um], plan["hi"].to_numpy()[um]
    n_days = rng.binomial(hi - lo, plan["p_day"].to_numpy()[um])
    ud = np.repeat(np.arange(len(um)), n_days)  # user-day → user-month
    day = _random_days(rng, lo[ud], hi[ud])
    n_events = 1 + rng.poisson(plan["lam"].to_numpy()[um][ud])
    ev = np.repeat(np.arange(len(ud)), n_events)  # event → user-day
    row = um[ud][ev]
    weights = plan[[f"w{j}" for j in range(len(vocab.names))]].to_numpy(np.float32)
    cum = np.cumsum(weights, axis=1)
    cum /= cum[:, -1:]
    types = (rng.random(len(ev), dtype=np.float32)[:, None] > cum[row]).sum(axis=1)
    types = np.minimum(types, len(vocab.names) - 1)
    month_start = plan["month_start"].to_numpy().astype("datetime64[D]")[row]
    ts = (month_start + day[ev].astype("timedelta64[D]")).astype("datetime64[us]") + (
        _random_seconds(rng, len(ev)) * 1_000_000
    ).astype("timedelta64[us]")
    quantity = np.ones(len(ev))
    for name, lam in vocab.quantity:
        hit = types == vocab.names.index(name)
        quantity[hit] += rng.poisson(lam, hit.sum())
    account = plan["account"].to_numpy()[row]
    order = np.lexsort((ts, account))
    return pa.table(
        {
            "account_id": pa.array(account_ids[account[order]], pa.string()),
            "user_id": (account[order] + 1) * 100_000 + user_idx[ud][ev][order],
            "ts": ts[order],
            "event_type": pa.array(np.array(vocab.names, dtype=object)[types[order]], pa.string()),
            "quantity": quantity[order],
        },
        schema=EVENT_SCHEMA,
    )


def _write_events(
    plan: pd.DataFrame,
    account_ids: np.ndarray,
    path: Path,
    seed: int,
    chunk_accounts: int,
    progress: Callable[[int], None] | None,
    vocab: Vocabulary,
) -> int:
    plan = plan.sort_values(["account", "month_start"], kind="stable")
    n = len(account_ids)
    bounds = np.searchsorted(
        plan["account"].to_numpy(), np.arange(0, n + chunk_accounts, chunk_accounts)
    )
    total = 0
    with pq.ParquetWriter(path, EVENT_SCHEMA, compression="zstd") as writer:
        for i, (a, b) in enumerate(itertools.pairwise(bounds)):
            rng = np.random.default_rng([seed, 2, i])
            table = _events_for(plan.iloc[a:b], account_ids, rng, vocab)
            writer.write_table(table, row_group_size=1_000_000)
            total += table.num_rows
            if progress:
                progress(min(chunk_accounts, n - i * chunk_accounts))
    return total


def generate_world(
    out: Path | str,
    n_accounts: int = 2000,
    months: int = 36,
    seed: int = 0,
    start: str = "2023-01-01",
    truth_paths: int = 100,
    chunk_accounts: int = 500,
    progress: Callable[[str, int, int], None] | None = None,
    shape: Shape = PRESETS["b2b"],
) -> WorldSummary:
    """Simulate a portfolio and write every contract table to `out/<table>.parquet`.

    Also writes `out/_truth/truth.parquet` (one row per account active on each month's first day,
    with the simulator's own 90-day label probabilities). `progress(stage, done, total)` is called
    as work advances. Deterministic for a seed: the same arguments give byte-identical files.
    `shape` chooses the kind of portfolio (see `Shape` and `PRESETS`).
    """
    if n_accounts < 1 or months < 4:
        raise ValueError("a world needs at least 1 account and 4 months")
    out = Path(out)
    start_day = np.datetime64(start, "D")
    sim = _Simulation(n_accounts, months, start_day, seed, shape)
    if progress:
        progress("simulating accounts", 0, 1)
    plan, truth = sim.run(truth_paths)
    if progress:
        progress("simulating accounts", 1, 1)
    tables = sim.tables()
    if not shape.optional_tables:
        tables = {name: df for name, df in tables.items() if TABLES[name].required}
    with atomic_dir(out) as tmp:
        for name, df in tables.items():
            write_parquet(to_arrow(name, df), tmp / f"{name}.parquet")
        (tmp / TRUTH_FILE).parent.mkdir()
        write_parquet(truth.astype({"as_of": "datetime64[s]"}), tmp / TRUTH_FILE)
        write_parquet(sim.signing_truth(), tmp / SIGNING_TRUTH_FILE)
        done = 0

        def step(k: int) -> None:
            nonlocal done
            done += k
            if progress:
                progress("writing usage events", done, n_accounts)

        n_events = _write_events(
            plan,
            sim.account_ids,
            tmp / "usage_events.parquet",
            seed,
            chunk_accounts,
            step,
            shape.events,
        )
    counts = {name: len(df) for name, df in tables.items()} | {"usage_events": n_events}
    return WorldSummary(out, n_accounts, months, n_events, counts)

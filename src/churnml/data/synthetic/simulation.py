"""The monthly simulation: accounts sign up, their hidden state moves (`dynamics`), they churn,
renew or expand, and every observable table is read out of that state into the recorder."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from churnml.data.contract import TABLES
from churnml.data.synthetic.dynamics import (
    LATE_RENEWAL_MAX_DAYS,
    LATE_RENEWAL_SHARE,
    State,
    add_months,
    advance,
    hazards,
    oracle,
)
from churnml.data.synthetic.recorder import Recorder, random_days, random_seconds
from churnml.data.synthetic.shape import INDUSTRIES, SEGMENTS, Shape
from churnml.vocabulary import FIRST_YEAR_DAYS, SIGNING_ORACLE, label_names, oracle_column

SEGMENT_SHARE = np.array([0.12, 0.33, 0.55])
SEATS_LOG_MEAN = np.array([5.0, 3.3, 1.6])
EMPLOYEES_LOG_MEAN, EMPLOYEES_LOG_SD = np.array([8.5, 6.0, 3.5]), 0.7
PLANS = ("starter", "pro", "enterprise")
PRICE_PER_SEAT = np.array([300.0, 500.0, 750.0])
ADDONS = ("analytics", "automation")
ADDON_PRICE_SHARE = np.array([0.20, 0.25])

MILESTONES = (
    ("kickoff", 7),
    ("admin_setup", 14),
    ("integration_connected", 30),
    ("team_invited", 30),
    ("first_report", 45),
    ("first_value", 60),
)
ORACLE_ROLES = ("churn", "involuntary", "expansion")  # the truth file's labels, in its order
INVOLUNTARY = ("non_payment", "bankruptcy", "acquisition")
VOLUNTARY_STATED = ("too_expensive", "missing_features", "switched_competitor", "low_usage")
SPONSOR_SHARE = np.array([0.85, 0.5, 0.1])
HIGH_TOUCH_SHARE = np.array([1.0, 0.6, 0.0])
NPS_RESPONSE_RATE = np.array([0.35, 0.25, 0.12])

POOR_ONBOARDING = 2.5  # how far onboarding quality falls (in its SDs) in a planted problem
# Fit at signing (Shape.fit): a latent fit = what signing shows (industry, channel, size within
# the segment) + what it does not (FIT_HIDDEN_SD); fit × strength × FIT_WEIGHT lifts onboarding
# quality and the levels engagement and seat adoption return to.
FIT_INDUSTRY = dict(zip(INDUSTRIES, (0.5, -0.5, 0.1, 0.3, -0.2, -0.4, 0.0, -0.6), strict=True))
FIT_CHANNEL = {"outbound": -0.2, "inbound": 0.3, "partner": 0.4, "self_serve": -0.4}
FIT_SIZE, FIT_HIDDEN_SD, FIT_WEIGHT = 0.3, 0.5, 0.5
STALL_WEIGHT = 2.0  # churn log-odds added, in that world, for never reaching first value


def firmographics(rng: np.random.Generator,
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


def fit_visible(seg: np.ndarray, channel: np.ndarray, employees: np.ndarray,
                 industry: np.ndarray) -> np.ndarray:  # fmt: skip
    """The part of each account's fit that signing shows (see FIT_*)."""
    size = (np.log(np.maximum(employees, 1)) - EMPLOYEES_LOG_MEAN[seg]) / EMPLOYEES_LOG_SD
    return (np.vectorize(FIT_INDUSTRY.get)(industry) + np.vectorize(FIT_CHANNEL.get)(channel)
            + FIT_SIZE * size)  # fmt: skip


class Simulation:
    """Runs the monthly simulation; `run` fills `rec` and returns the usage plan and truth."""

    def __init__(
        self,
        n_accounts: int,
        months: int,
        start: np.datetime64,
        seed: int,
        shape: Shape,
        horizon_days: int,
    ) -> None:
        self.n, self.months, self.shape = n_accounts, months, shape
        self.horizon_days, self.labels = horizon_days, label_names(horizon_days)
        self.month_starts = np.arange(
            start.astype("datetime64[M]"), start.astype("datetime64[M]") + months + 1
        ).astype("datetime64[D]")
        self.rng = np.random.default_rng([seed, 0])
        self.truth_rng = np.random.default_rng([seed, 1])
        self.signing_rng = np.random.default_rng([seed, 5])
        self.seed = seed
        self.rec = Recorder()
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
            self.firms = firmographics(np.random.default_rng([self.seed, 3]), seg)  # stay
        if self.shape.problem is not None:
            industry, channel = self.shape.problem
            q = q - POOR_ONBOARDING * ((self.firms[2] == industry) & (self.firms[0] == channel))
        mu_e = np.where(never, -2.5, rng.normal(0.0, 0.7, n))
        mu_s = np.where(never, -2.5, rng.normal(0.0, 0.7, n))
        self.fit = self.fit_visible = np.zeros(n)
        if self.shape.fit:
            self.fit_visible = fit_visible(seg, *self.firms)
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
            "term_end": add_months(signup, np.maximum(term, 1)),
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
            t = oracle(sub, self.month_starts, m, self.horizon_days, self.truth_paths,
                       self.truth_rng)  # fmt: skip
            truth = pd.DataFrame(
                {
                    "account_id": self.account_ids[idx],
                    "as_of": np.full(len(idx), start),
                    **{oracle_column(self.labels[role]): t[role] for role in ORACLE_ROLES},
                }
            )
        new = self.signup_month == m
        self._sign_up(np.flatnonzero(new))
        self.alive |= new
        st = self.state = advance(st, rng)
        self._signing_truth(np.flatnonzero(new), m)
        live = np.flatnonzero(self.alive)
        renewal = (st["term_months"] > 0) & (st["term_end"] < nxt)
        hz = hazards({k: v[live] for k, v in st.items()}, renewal[live])
        first_day = np.where(new[live], (self.signup[live] - start).astype(int), 0)
        mid_day = random_days(rng, np.maximum(first_day, 1), np.full(len(live), days))
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
        p = oracle(sub, self.month_starts, m + 1, days, self.truth_paths, self.signing_rng)
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
        new_end = add_months(old_end, st["term_months"][idx])
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
        created = (start + random_days(rng, lo[t_idx], hi[t_idx]).astype("timedelta64[D]")).astype(
            "datetime64[s]"
        ) + random_seconds(rng, len(t_idx)).astype("timedelta64[s]")
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
        # Usage plan: read out later, in chunks, by `write_events`.
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
        day = start + random_days(self.rng, lo, hi).astype("timedelta64[D]")
        return day.astype("datetime64[s]") + random_seconds(self.rng, len(lo)).astype(
            "timedelta64[s]"
        )

    def _relationship(self, m: int, live: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Champion changes (contacts) and CS touchpoints for the month."""
        rng, st = self.rng, self.state
        start = self.month_starts[m]
        lost = live[(st["since_champion_lost"][live] == 0) & (self.champion_contact[live] >= 0)]
        pos = np.searchsorted(live, lost)
        self.contact_end[self.champion_contact[lost]] = start + random_days(
            rng, lo[pos], hi[pos]
        ).astype("timedelta64[D]")
        self.champion_contact[lost] = -1
        gained = live[st["champion"][live] & (self.champion_contact[live] < 0)]
        pos = np.searchsorted(live, gained)
        self.champion_contact[gained] = self._new_contacts(
            gained, "champion", start + random_days(rng, lo[pos], hi[pos]).astype("timedelta64[D]")
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
            return pd.DataFrame(
                {
                    "account_id": pd.Series(dtype=object),
                    **{c: pd.Series(dtype=float) for c in ("fit", "fit_visible", SIGNING_ORACLE)},
                }
            )
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
        subs["currency"] = "USD"
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
        channel, employees, industry = firmographics(rng, seg)
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

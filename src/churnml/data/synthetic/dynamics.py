"""The hidden state of every account, how it moves month by month, and the truth it implies.

Each account carries:

* ``e``  engagement: how often users come back (SMB churn follows it most);
* ``s``  seat adoption: what share of bought seats is used (enterprise churn follows it most);
* ``a``  depth in the two add-on areas (reports, automation), which drives cross-sell;
* the relationship: a champion (who may leave), an executive sponsor (engaged or not);
* ``friction``: an incident month (bugs, outages) that shows up as urgent tickets.

Each state moves as a mean-reverting AR(1) around the account's own level (`advance`). Monthly
hazards, logistic in the state with segment-specific weights (`hazards`), decide involuntary churn
(bankruptcy, acquisition, non-payment), voluntary churn (at the renewal date for annual terms, any
day for monthly plans, rarely mid-term), and expansion (upsell of seats, cross-sell of an add-on).

**Known truth** (`oracle`). For every account active on the first day of month m (``as_of``), the
truth is the probability of each label within the horizon given the hidden state at ``as_of`` (the
state after month m-1). It uses the same `advance` and `hazards` as the simulation: the future
hidden state is sampled ``paths`` times, and along each path the label probabilities are
accumulated exactly from the hazards (each month's event probability times the share of that
month's possible event dates that fall in (as_of, as_of + horizon]), so only the hidden-state path
is Monte Carlo, not the churn and expansion draws. Churn here is permanent and renewals are at most
20 days late, so with the default 30-day grace the churn date is the cancel or non-renewal date.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

State = dict[str, np.ndarray]  # one dict of equally long arrays, one entry per account

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
LATE_RENEWAL_SHARE, LATE_RENEWAL_MAX_DAYS = 0.1, 20


def add_months(dates: np.ndarray, months: np.ndarray | int) -> np.ndarray:
    """Shift datetime64[D] dates by whole months (day of month is always ≤ 28 here)."""
    month = dates.astype("datetime64[M]")
    day = dates - month.astype("datetime64[D]")
    return (month + months).astype("datetime64[D]") + day


def advance(st: State, rng: np.random.Generator) -> State:
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


def churn_logit(st: State) -> np.ndarray:
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


def hazards(st: State, renewal_month: np.ndarray) -> dict[str, np.ndarray]:
    """This month's event probabilities given the (already advanced) hidden state."""
    x = churn_logit(st)
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


# Dates within a month: mid-month events fall on day offsets 1..D-1 (never on the 1st, so that an
# account active on the 1st stays active on it); renewal-month expansions happen at renewal start.
# ---------------------------------------------------------------------------------------------
def share_by(cutoff: np.datetime64, month_start: np.datetime64, days: int) -> float:
    """Share of mid-month event dates in a month that fall on or before `cutoff`."""
    offset = int((cutoff - month_start).astype(int))
    return float(np.clip(offset, 0, days - 1)) / (days - 1)


def renewal_start_share(term_end: np.ndarray, cutoff: np.datetime64) -> np.ndarray:
    """P(renewal start ≤ cutoff): on time, or up to LATE_RENEWAL_MAX_DAYS late, uniformly."""
    slack = (cutoff - term_end).astype(int)
    late = np.clip(slack, 0, LATE_RENEWAL_MAX_DAYS) / LATE_RENEWAL_MAX_DAYS
    return np.where(slack >= 0, (1 - LATE_RENEWAL_SHARE) + LATE_RENEWAL_SHARE * late, 0.0)


def oracle(
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
        path = advance(path, rng)
        renewal = (path["term_months"] > 0) & (path["term_end"] < month_starts[k + 1])
        hz = hazards(path, renewal)
        mid = share_by(cutoff, start, days)
        churn_share = np.where(renewal, (path["term_end"] <= cutoff).astype(float), mid)
        exp_share = np.where(renewal, renewal_start_share(path["term_end"], cutoff), mid)
        stay = (1 - hz["involuntary"]) * (1 - hz["voluntary"])
        inv_share = np.where(renewal & (path["term_end"] <= cutoff), 1.0, mid)
        p["involuntary"] += alive * hz["involuntary"] * inv_share
        p["churn"] += alive * (1 - hz["involuntary"]) * hz["voluntary"] * churn_share
        p["expansion"] += alive_not_expanded * stay * hz["expansion"] * exp_share
        alive *= stay
        alive_not_expanded *= stay * (1 - hz["expansion"])
        path["term_end"] = np.where(
            renewal, add_months(path["term_end"], path["term_months"]), path["term_end"]
        )
        k += 1
    return {name: v.reshape(paths, n).mean(axis=0) for name, v in p.items()}


# ---------------------------------------------------------------------------------------------

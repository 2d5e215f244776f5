"""A synthetic B2B SaaS world with known truth, for demos, tests and measuring models.

The simulator steps month by month over all accounts at once (numpy vectors; no loop over accounts
or events). Each account carries a hidden state (engagement, seat adoption, add-on depth, the
relationship, friction) that moves as a mean-reverting process; onboarding quality sets where
adoption starts and how fast milestones are done. Observable tables (usage events, tickets, NPS,
milestones, contacts, touchpoints, subscriptions) are noisy read-outs of that state, and the truth
is each label's probability given the state. The parts:

* `shape`: the kinds of portfolio (event vocabularies, billing, expansion, shifts; `shape_of`);
* `dynamics`: the hidden state, its monthly step, the hazards, and the oracle;
* `simulation`: accounts signing up, churning, renewing and expanding, and their read-outs;
* `recorder`: rows collected month by month, contract tables as Arrow, usage events in chunks;
* `exports`: the tables as users' systems write them (spreadsheet CSV, a daily usage rollup).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from churnml.data.contract import TABLES
from churnml.data.synthetic.exports import (
    LOCALES,
    as_daily_rollup,
    as_mrr,
    as_spreadsheet_csv,
    without_users,
)
from churnml.data.synthetic.recorder import to_arrow, write_events
from churnml.data.synthetic.shape import PRESETS, SEGMENTS, Shape, Shift, Vocabulary, shape_of
from churnml.data.synthetic.simulation import Simulation
from churnml.io import atomic_dir, write_parquet
from churnml.vocabulary import SIGNING_TRUTH_FILE, TRUTH_FILE

__all__ = ["PRESETS", "SEGMENTS", "Shape", "Shift", "Vocabulary", "WorldSummary", "generate_world",
           "shape_of"]  # fmt: skip


@dataclass(frozen=True)
class WorldSummary:
    out: Path
    accounts: int
    months: int
    usage_events: int
    tables: dict[str, int]


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
    horizon_days: int = 90,
    csv_locale: str | None = None,
    usage_rollup: bool = False,
    users: bool = True,
    mrr: bool = False,
) -> WorldSummary:
    """Simulate a portfolio and write every contract table to `out/<table>.parquet`.

    Also writes `out/_truth/truth.parquet` (one row per account active on each month's first day,
    with the simulator's own probability of each label within `horizon_days`, named after the
    label: `p_churn_90d`, …; give the horizon training will use). `progress(stage, done, total)`
    is called as work advances. Deterministic for a seed: the same arguments give byte-identical
    files. `shape` chooses the kind of portfolio (see `Shape` and `PRESETS`). How the tables are
    written, as users' systems export them (see `exports`): `usage_rollup`, usage events as a
    daily rollup; `users=False`, usage events without user_id (kept by account); `mrr`,
    subscriptions' monthly revenue in place of ARR; `csv_locale`, every table as CSV from a
    spreadsheet in that locale.
    """
    if n_accounts < 1 or months < 4:
        raise ValueError("a world needs at least 1 account and 4 months")
    if csv_locale not in (None, *LOCALES):
        raise ValueError(f"unknown locale {csv_locale!r}; use one of {', '.join(LOCALES)}")
    if not 1 <= horizon_days <= 730:
        raise ValueError(f"horizon_days must be 1–730, not {horizon_days}")
    out = Path(out)
    start_day = np.datetime64(start, "D")
    sim = Simulation(n_accounts, months, start_day, seed, shape, horizon_days)
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

        n_events = write_events(
            plan,
            sim.account_ids,
            tmp / "usage_events.parquet",
            seed,
            chunk_accounts,
            step,
            shape.events,
        )
        if not users:
            without_users(tmp)
        if mrr:
            as_mrr(tmp)
        rows = as_daily_rollup(tmp) if usage_rollup else n_events
        if csv_locale:
            as_spreadsheet_csv(tmp, csv_locale)
    counts = {name: len(df) for name, df in tables.items()} | {"usage_events": rows}
    return WorldSummary(out, n_accounts, months, n_events, counts)

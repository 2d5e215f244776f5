"""Root causes by segment on generated worlds, with and without a planted problem.

    python benchmarks/root_causes.py [--accounts 2000] [--months 24] [--problem software:inbound]

Two worlds of the same seed: one where accounts of one industry × acquisition channel onboard
poorly (`churnml generate --problem`), one without. Each is trained (no backtests), scored at
four months before its end, and cut into groups (`churnml.reports.segments.root_causes`, the
default `report.min_cell_accounts`). Expected: the planted group is flagged with onboarding as its
driving family, and nothing else; in the world without it, nothing.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from churnml.config import Config, RegistryConfig
from churnml.data.synthetic import generate_world, shape_of
from churnml.features.catalogue import by_name
from churnml.models.pipeline import train
from churnml.models.registry import model_name
from churnml.reports.segments import root_causes
from churnml.scoring.score import score

COLUMNS = ["segment", "acquisition_channel", "industry", "accounts", "churn_expected",
           "churn_baseline", "driver", "driver_lift_pts", "driver_share", "p_value"]  # fmt: skip


def _flagged(world: Path, months: int) -> tuple[pd.DataFrame, int]:
    cfg = Config(registry=RegistryConfig(tracking_uri=f"sqlite:///{world / 'mlruns.db'}"))
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"backtests": 0})})
    report = train(cfg, data_dir=world)
    uris = {r.name: f"models:/{model_name(cfg.registry, r.name)}/1" for r in report.results}
    as_of = (pd.Timestamp("2023-01-01") + pd.DateOffset(months=months - 4)).date()
    score(cfg, data_dir=world, as_of=as_of, out=world / "scores", uris=uris)  # just trained
    read = {n: pd.read_parquet(world / "scores" / f"{n}.parquet")
            for n in ("scores", "contributions", "features")}  # fmt: skip
    cells = root_causes(read["scores"], read["contributions"], read["features"],
                        by_name(cfg.features), cfg.report.min_cell_accounts)  # fmt: skip
    return cells[cells.flagged][COLUMNS], len(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--problem", default="software:inbound")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    pd.set_option("display.width", 200)
    for name, problem in (("planted", args.problem), ("without", None)):
        world = work / name
        generate_world(world, args.accounts, args.months, seed=args.seed,
                       shape=shape_of(problem=problem))  # fmt: skip
        flagged, tested = _flagged(world, args.months)
        print(f"{name} ({problem or 'no problem'}): {len(flagged)} of {tested} groups flagged")
        if len(flagged):
            print(flagged.round(4).to_string(index=False))


if __name__ == "__main__":
    main()

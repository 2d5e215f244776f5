"""Model quality at a cut-off: churnml trained on what was known then, beside plain references.

    python benchmarks/cutoff_quality.py [--accounts 3000] [--months 36] [--seed 11]
                                        [--cutoff 2025-07-01] [--preset b2b] [--world DIR]

Generates the world (or reads `--world`), trains churnml with the default config on the world as
known on the cut-off, scores the accounts active then, and prints ROC-AUC on what happened in the
90 days after, for churnml, the references of `_cutoff.py` and the oracle. Targets (issue 10):
churn within 0.03 of the oracle, expansion within 0.04, and expansion above
`plain_lightgbm_counts`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

import pandas as pd
from _cutoff import evaluate_at_cutoff

from churnml.data.synthetic import generate_world, shape_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--cutoff", type=dt.date.fromisoformat, default=dt.date(2025, 7, 1))
    parser.add_argument("--preset", default="b2b")
    parser.add_argument("--world", type=Path, help="an existing world (skips generation)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cutoff-"))
    world = args.world
    if world is None:
        world = work / "world"
        generate_world(world, args.accounts, args.months, args.seed, shape=shape_of(args.preset))
    result = evaluate_at_cutoff(world, args.cutoff, work)
    print(f"world {world}, cut-off {args.cutoff}; accounts judged {result.rows}, "
          f"positives {result.positives}")  # fmt: skip
    print("\n".join(result.notes))
    print({k: round(v, 1) for k, v in result.seconds.items()})
    with pd.option_context("display.float_format", "{:.3f}".format):
        print(result.auc.to_string())
        print(result.fits.to_string())
    gap = result.auc.loc["oracle"] - result.auc.loc["churnml"]
    lead = result.auc.loc["churnml"] - result.auc.loc["plain_lightgbm_counts"]
    print(f"gap to the oracle: churn {gap['churn']:+.3f}, expansion {gap['expansion']:+.3f}; "
          f"expansion vs plain_lightgbm_counts {lead['expansion']:+.3f}")


if __name__ == "__main__":
    main()

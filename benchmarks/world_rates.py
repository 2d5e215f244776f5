"""Generate a world and print its rates, the oracle's AUCs (overall and per segment) and timings.

    python benchmarks/world_rates.py [--accounts 2000] [--months 36] [--seed 42] [--out DIR]

Targets (issue 2): monthly logo churn 0.5–4% overall (higher for SMB), 90-day expansion 5–20% of
active accounts, oracle 90-day churn ROC-AUC 0.75–0.92, 2,000 × 36 generated in under a minute.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from churnml.config import Config
from churnml.data.synthetic import generate_world
from churnml.features.truth import labels_with_truth


def _rates(df: pd.DataFrame) -> dict[str, float]:
    churn = df.dropna(subset=["churn_90d"])
    voluntary = churn[churn.involuntary_churn_90d == 0]
    expansion = df.dropna(subset=["expansion_90d"])
    return {
        "account-months": len(churn),
        "churn_90d": churn.churn_90d.mean(),
        "monthly churn": 1 - (1 - churn.churn_90d.mean()) ** (1 / 3),
        "involuntary share": churn.involuntary_churn_90d.sum() / max(churn.churn_90d.sum(), 1),
        "expansion_90d": expansion.expansion_90d.mean(),
        "oracle churn AUC": roc_auc_score(voluntary.churn_90d, voluntary.p_churn_90d),
        "oracle expansion AUC": roc_auc_score(expansion.expansion_90d, expansion.p_expansion_90d),
        "mean p_churn": voluntary.p_churn_90d.mean(),
        "mean p_expansion": expansion.p_expansion_90d.mean(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--skip-labels", action="store_true", help="only time the generation")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp()) / "world"
    began = time.perf_counter()
    summary = generate_world(out, args.accounts, args.months, args.seed)
    seconds = time.perf_counter() - began
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        f"generated {args.accounts:,} accounts × {args.months} months in {seconds:.1f} s "
        f"(peak RSS {peak_gb:.2f} GB): {summary.usage_events:,} usage events → {out}"
    )
    if args.skip_labels:
        return
    df = labels_with_truth(out, Config())
    table = pd.DataFrame({"all": _rates(df)} | {s: _rates(g) for s, g in df.groupby("segment")})
    with pd.option_context("display.float_format", "{:.4f}".format):
        print(table.to_string())


if __name__ == "__main__":
    main()

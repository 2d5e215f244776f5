"""The fit model at signing on generated worlds of several sizes, seeds and fit strengths.

    python benchmarks/fit_quality.py [--months 36]

Each world is generated (`churnml generate --fit S`), and the fit model trained as `churnml train`
does (`churnml.models.pipeline.train_fit`: the latest labelled signing months held out). Printed per
world: labelled and test rows, and on the test rows the ROC-AUC and log loss of churnml, the plain
logistic regression, the segments' own rates, the base rate and the oracle (the simulator's
probability from the hidden state at signing, which no model of signing data can reach).
Expected: with a fit (strength 1), churnml above the segments and the base rate; without one
(strength 0), little to find beyond the segment and the contract term.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
from _measure import markdown

from churnml.config import Config
from churnml.data.synthetic import generate_world, shape_of
from churnml.models.pipeline import train_fit

WORLDS = [(2000, 42, 1.0), (2000, 11, 1.0), (1000, 3, 1.0), (300, 7, 1.0), (2000, 42, 0.0)]
MODELS = ("churnml", "logistic_regression", "segment_rate", "base_rate", "oracle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=36)
    args = parser.parse_args()
    work, rows = Path(tempfile.mkdtemp()), []
    for accounts, seed, strength in WORLDS:
        world = work / f"{accounts}_{seed}_{strength}"
        generate_world(world, accounts, args.months, seed=seed, shape=shape_of(fit=strength))
        result = train_fit(world, Config())
        row = {"accounts": accounts, "seed": seed, "fit": strength}
        if isinstance(result, str):
            rows.append(row | {"status": result})
            continue
        m = {name: by_seg["all"] for name, by_seg in result.metrics.items()}
        row |= {"status": "no skill" if result.skill.no_skill else "ok",
                "labelled": result.model.meta["training_rows"], "test": len(result.test),
                "chosen": result.evaluation.family}  # fmt: skip
        row |= {f"{name} auc": round(m[name]["roc_auc"], 3) for name in MODELS if name in m}
        row |= {f"{name} loss": round(m[name]["log_loss"], 3) for name in MODELS if name in m}
        rows.append(row)
        print(pd.DataFrame([row]).to_string(index=False), flush=True)
    print(markdown(pd.DataFrame(rows)))


if __name__ == "__main__":
    main()

"""Training at scale: `churnml train` on a large world, its wall time and peak RSS.

    python benchmarks/training_scale.py [--data DIR] [--accounts 20000] [--max-rows N]

The feature table is built first (its cost is features_speed.py's); then one process trains every
target with the default config (a fresh SQLite MLflow store in a temporary folder), with
`model.max_rows` as given, and reports its own seconds and peak RSS, and each target's rows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _measure import run_stage, world


def _features(data: Path, out: Path) -> float:
    from churnml.config import Config
    from churnml.features.build import write_features

    began = time.perf_counter()
    write_features(data, Config(), out, check=False)
    return time.perf_counter() - began


def _train(table: Path, store: Path, max_rows: int | None) -> float:
    import pyarrow.parquet as pq

    from churnml.config import Config, RegistryConfig
    from churnml.models.pipeline import train

    cfg = Config(registry=RegistryConfig(tracking_uri=f"sqlite:///{store}"))
    if max_rows:
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"max_rows": max_rows})})
    rows = pq.ParquetFile(table).metadata.num_rows  # from the footer: no second copy in memory
    began = time.perf_counter()
    for target in ("churn_90d", "expansion_90d"):
        report = train(cfg, features_path=table, target=target)
        meta = report.results[0].model.meta
        print(f"  {target}: fitted on {meta['training_rows']:,} of {meta['labelled_rows']:,} "
              f"labelled rows ({rows:,} in the table)", flush=True)  # fmt: skip
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--max-rows", type=int, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    data = world(args.data, args.accounts, work)
    table = work / "features.parquet"
    run_stage(_features, data, table)
    seconds, gb = run_stage(_train, table, work / "mlruns.db", args.max_rows)
    limit = args.max_rows or "default"
    print(f"training (churn, expansion; model.max_rows {limit}): {seconds:6.1f} s  "
          f"peak RSS {gb:.2f} GB (2 cores)")


if __name__ == "__main__":
    main()

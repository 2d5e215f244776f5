"""Scoring a large book in bounded memory: wall time, peak RSS and rows/s at several sizes.

    python benchmarks/scale.py [--accounts 200000 1000000] [--model-dir DIR] [--memory-limit 1GB]
                               [--no-spark]

Prepared before any timing (as scoring_speed.py does): models trained on a 2,000-account world
(or exported ones), and for each size a feature table of that many accounts, resampled from the
world's active accounts with every value jittered. Each run, in its own process: DuckDB reads the
feature file and `write_scores` scores it in account order, chunk by chunk, writing every output
(scores, contributions, features, CRM feed) as it goes — what `churnml score` does without
`--previous`. Goal (issue 17): peak RSS ≤ 3 GB, the same at 200k and 1M accounts. Then local
Spark (`local[2]`, driver memory 4g) scores the same file and its executors write the run
(`churnml score --engine spark`): wall time (Spark's start-up left out), peak RSS of the driver's
Python process, of the JVM (driver and executor in local mode) and of the Python workers, rows/s.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _measure import run_stage, save_rows
from scoring_speed import on_spark, prepared, resampled_features, streamed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--memory-limit", default="1GB", help="DuckDB's (data.memory_limit)")
    parser.add_argument("--no-spark", dest="spark", action="store_false", help="DuckDB only")
    parser.add_argument("--json", type=Path, default=None, help="results for bench.py")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    print(f"preparing in {work}: world, models, feature rows …")
    model_dir = prepared(work, args.model_dir)
    print("| engine | accounts | wall time (s) | peak RSS (GB) | rows/s |")
    print("|---|---:|---:|---|---:|")
    rows: list[dict[str, object]] = []
    for n in args.accounts:
        features = work / f"features_{n}.parquet"
        resampled_features(work / "world", n).to_parquet(
            features, row_group_size=100_000)  # as `churnml features` writes  # fmt: skip
        seconds, gb = run_stage(streamed, features, model_dir, work / f"scores_{n}",
                                args.memory_limit)  # fmt: skip
        print(f"| DuckDB | {n:,} | {seconds:.1f} | {gb:.2f} | {n / seconds:,.0f} |", flush=True)
        base = rows[0] if rows else {"accounts": n, "rss_gb": gb}
        rows.append({"what": f"scoring {n:,} accounts in chunks: peak RSS", "seconds": seconds,
                     "floor": f"peak RSS at {base['accounts']:,}, {base['rss_gb']:.2f} GB",
                     "ratio": gb / base["rss_gb"], "target": "≈ 1, and ≤ 3 GB",
                     "rss_gb": gb, "accounts": n})  # fmt: skip
        if args.spark:
            rows.append(_spark_row(features, model_dir, work / f"spark_{n}", n, seconds))
        features.unlink()
    save_rows(args.json, rows)
    print(f"(DuckDB memory limit {args.memory_limit}; 2 cores)")


def _spark_row(features: Path, model_dir: Path, out: Path, n: int, duckdb: float,
               ) -> dict[str, object]:  # fmt: skip
    (seconds, peak), driver = run_stage(on_spark, features, model_dir, out)
    memory = f"driver {driver:.2f}, JVM {peak['java']:.2f}, workers {peak['workers']:.2f}"
    print(f"| local Spark | {n:,} | {seconds:.1f} | {memory} | {n / seconds:,.0f} |", flush=True)
    return {"what": f"scoring {n:,} accounts on local Spark (executors write)",
            "seconds": seconds, "floor": f"DuckDB in chunks, {duckdb:.1f} s",
            "ratio": seconds / duckdb, "target": "(none set)",
            "rss_gb": driver + peak["java"] + peak["workers"], "accounts": n}  # fmt: skip


if __name__ == "__main__":
    main()

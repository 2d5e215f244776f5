"""Feature build vs. the floor: one DuckDB group-by of the events, measured in the same run.

    python benchmarks/features_speed.py [--data DIR]   (default: a new 20,000-account world)

(a) floor: usage events grouped by account × day × event_type, written to Parquet (plain DuckDB);
(b) the full feature build (every catalogue feature and label, all monthly snapshots) to Parquet.
Each stage runs in its own process so that its peak RSS is its own. Targets (issue 3): b/a ≤ 2.5,
peak RSS ≤ 6 GB.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _measure import run_stage


def _floor(data: Path, out: Path) -> float:
    import duckdb

    began = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(
        f"COPY (SELECT account_id, ts::DATE AS day, event_type, count(*) AS n "
        f"FROM read_parquet('{data / 'usage_events.parquet'}') GROUP BY ALL) "
        f"TO '{out / 'floor.parquet'}' (FORMAT parquet, COMPRESSION zstd)"
    )
    return time.perf_counter() - began


def _features(data: Path, out: Path) -> float:
    from churnml.config import Config
    from churnml.features.build import write_features

    began = time.perf_counter()
    write_features(data, Config(), out / "features.parquet", check=False)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--accounts", type=int, default=20_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    data = args.data
    if data is None:
        from churnml.data.synthetic import generate_world

        data = work / "world"
        print(f"generating {args.accounts:,} accounts × 36 months in {data} …")
        generate_world(data, args.accounts, 36, seed=7)
    floor_s, floor_gb = run_stage(_floor, data, work)
    build_s, build_gb = run_stage(_features, data, work)
    import pyarrow.parquet as pq

    events = pq.ParquetFile(data / "usage_events.parquet").metadata.num_rows
    rows = pq.ParquetFile(work / "features.parquet").metadata.num_rows
    print(f"usage events: {events:,}; feature rows (account × as_of): {rows:,}")
    print(f"(a) floor, one group-by of the events: {floor_s:6.1f} s  peak RSS {floor_gb:.2f} GB")
    print(f"(b) full feature build:               {build_s:6.1f} s  peak RSS {build_gb:.2f} GB")
    print(f"ratio b/a = {build_s / floor_s:.2f} (target ≤ 2.5); peak RSS target ≤ 6 GB")


if __name__ == "__main__":
    main()

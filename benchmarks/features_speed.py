"""Feature build vs. the floor: one DuckDB group-by of the events, measured in the same run.

    python benchmarks/features_speed.py [--data DIR] [--memory-limit 4GB] [--events-per-part N]
    (default: a new 20,000-account world; DuckDB's own memory limit)

(a) floor: usage events grouped by account × day × event_type, written to Parquet (plain DuckDB);
(b) the full feature build (every catalogue feature and label, all monthly snapshots) to Parquet.
Each stage runs in its own process so that its peak RSS is its own; `--repeat` runs each stage
that many times, in turn, and reports medians. Targets (issue 17): b/a ≤ 2.5, peak RSS ≤ 4 GB
(`--memory-limit` sets `data.memory_limit`, past which DuckDB spills to disk).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _measure import run_stage, save_rows, world


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


def _features(data: Path, out: Path, memory_limit: str | None, part: int | None) -> float:
    from churnml.config import Config, DataConfig
    from churnml.features import rollups
    from churnml.features.build import write_features

    rollups.EVENTS_PER_PART = part or rollups.EVENTS_PER_PART
    began = time.perf_counter()
    cfg = Config(data=DataConfig(memory_limit=memory_limit))
    write_features(data, cfg, out / "features.parquet", check=False)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--memory-limit", default=None)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--events-per-part", type=int, default=None,
                        help="DuckDB's account parts (default: churnml's EVENTS_PER_PART)")
    parser.add_argument("--json", type=Path, default=None, help="results for bench.py")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    data = world(args.data, args.accounts, work)
    runs = [(run_stage(_floor, data, work), run_stage(_features, data, work, args.memory_limit,
                                                  args.events_per_part))
            for _ in range(args.repeat)]  # fmt: skip
    floors, builds = zip(*runs, strict=True)
    (floor_s, floor_gb), (build_s, build_gb) = np.median(floors, axis=0), np.median(builds, axis=0)
    import pyarrow.parquet as pq

    events = pq.ParquetFile(data / "usage_events.parquet").metadata.num_rows
    rows = pq.ParquetFile(work / "features.parquet").metadata.num_rows
    print(f"usage events: {events:,}; feature rows (account × as_of): {rows:,}")
    print(f"(a) floor, one group-by of the events: {floor_s:6.1f} s  peak RSS {floor_gb:.2f} GB")
    print(f"(b) full feature build:               {build_s:6.1f} s  peak RSS {build_gb:.2f} GB")
    save_rows(args.json, [{"what": f"feature build, {events / 1e6:.0f}M events", "seconds": build_s,
                           "floor": f"one DuckDB group-by of the events, {floor_s:.1f} s",
                           "ratio": build_s / floor_s, "target": "≤ 2.5",
                           "rss_gb": build_gb}])  # fmt: skip
    print(f"ratio b/a = {build_s / floor_s:.2f} (target ≤ 2.5); peak RSS target ≤ 4 GB "
          f"(memory limit: {args.memory_limit or 'DuckDB default'}; medians of {args.repeat})")


if __name__ == "__main__":
    main()

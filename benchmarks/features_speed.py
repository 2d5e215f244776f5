"""Feature build vs. the floor: one DuckDB group-by of the events, measured in the same run.

    python benchmarks/features_speed.py [--data DIR]   (default: a new 20,000-account world)

(a) floor: usage events grouped by account × day × event_type, written to Parquet (plain DuckDB);
(b) the full feature build (every catalogue feature and label, all monthly snapshots) to Parquet.
Each stage runs in its own process so that its peak RSS is its own. Targets (issue 3): b/a ≤ 2.5,
peak RSS ≤ 6 GB.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path


def _floor(data: Path, out: Path) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(
        f"COPY (SELECT account_id, ts::DATE AS day, event_type, count(*) AS n "
        f"FROM read_parquet('{data / 'usage_events.parquet'}') GROUP BY ALL) "
        f"TO '{out / 'floor.parquet'}' (FORMAT parquet, COMPRESSION zstd)"
    )


def _features(data: Path, out: Path) -> None:
    from churnml.config import Config
    from churnml.features.build import write_features

    write_features(data, Config(), out / "features.parquet", check=False)


def _timed(stage, data: Path, out: Path, queue: mp.Queue) -> None:
    began = time.perf_counter()
    stage(data, out)
    seconds = time.perf_counter() - began
    queue.put((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2))


def _run(stage, data: Path, out: Path) -> tuple[float, float]:
    queue: mp.Queue = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=_timed, args=(stage, data, out, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"{stage.__name__} failed (exit code {proc.exitcode})")
    return queue.get()


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
    floor_s, floor_gb = _run(_floor, data, work)
    build_s, build_gb = _run(_features, data, work)
    import pyarrow.parquet as pq

    events = pq.ParquetFile(data / "usage_events.parquet").metadata.num_rows
    rows = pq.ParquetFile(work / "features.parquet").metadata.num_rows
    print(f"usage events: {events:,}; feature rows (account × as_of): {rows:,}")
    print(f"(a) floor, one group-by of the events: {floor_s:6.1f} s  peak RSS {floor_gb:.2f} GB")
    print(f"(b) full feature build:               {build_s:6.1f} s  peak RSS {build_gb:.2f} GB")
    print(f"ratio b/a = {build_s / floor_s:.2f} (target ≤ 2.5); peak RSS target ≤ 6 GB")


if __name__ == "__main__":
    main()

"""Helpers of the benchmarks: one stage in its own process (so that its peak RSS is its own),
and tables as Markdown."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd


def _report(stage: Callable[..., float], args: tuple, queue: mp.Queue) -> None:
    seconds = stage(*args)
    queue.put((seconds, _status(os.getpid())[2]))


def run_stage(stage: Callable[..., float], *args: Any) -> tuple[float, float]:
    """`stage(*args)` in a fresh process: the seconds it measured itself, and its peak RSS (GB)."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    proc = context.Process(target=_report, args=(stage, args, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"{stage.__name__} failed (exit code {proc.exitcode})")
    return queue.get()


class TreeRSS(threading.Thread):
    """Samples, every 0.1 s, the RSS of this process's descendants (read from /proc), and keeps
    each kind's peak in GB: `java` (Spark's JVM: driver and, in local mode, executor) and
    `workers` (the Python workers Spark starts, summed). Use as a context manager."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = {"java": 0.0, "workers": 0.0}
        self._done = threading.Event()

    def __enter__(self) -> TreeRSS:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        while not self._done.wait(0.1):
            now = {"java": 0.0, "workers": 0.0}
            for pid in _descendants(os.getpid()):
                name, rss, _ = _status(pid)
                now["java" if name == "java" else "workers"] += rss
            self.peak = {k: max(v, now[k]) for k, v in self.peak.items()}


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (children are listed per thread: the JVM starts Spark's Python
    workers from its own threads)."""
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += (task / "children").read_text().split()
        except OSError:
            continue
    return [d for c in map(int, children) for d in (c, *_descendants(c))]


def _status(pid: int) -> tuple[str, float, float]:
    """A process's name, RSS and peak RSS (GB); ("", 0, 0) once it is gone. The peak is the
    kernel's VmHWM, which starts afresh with the process's program: `getrusage`'s ru_maxrss does
    not (Linux keeps it across exec), so a spawned stage would report at least the RSS its parent
    had when it started it."""
    try:
        lines = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                     .splitlines() if ":" in line)  # fmt: skip
    except OSError:
        return "", 0.0, 0.0
    gb = lambda key: int(lines.get(key, "0 kB").split()[0]) / 1024**2  # noqa: E731
    return lines.get("Name", "").strip(), gb("VmRSS"), gb("VmHWM")


def world(data: Path | None, accounts: int, work: Path) -> Path:
    """`data`, or a new world of `accounts` accounts × 36 months in `work` (seed 7)."""
    if data is not None:
        return data
    from churnml.data.synthetic import generate_world

    print(f"generating {accounts:,} accounts × 36 months in {work / 'world'} …")
    generate_world(work / "world", accounts, 36, seed=7)
    return work / "world"


def save_rows(path: Path | None, rows: list[dict[str, object]]) -> None:
    """The benchmark's results for `bench.py` (one dict a row: what, measured, floor, ratio,
    target, peak RSS), when `--json PATH` is given."""
    if path is not None:
        path.write_text(json.dumps(rows, indent=1))


def markdown(frame: pd.DataFrame) -> str:
    """The table as Markdown (floats to 3 decimals, empty cells for missing values)."""
    def cell(v: object) -> str:
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return ""
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines) + "\n"

"""Run one benchmark stage in its own process, so that its peak RSS is its own."""

from __future__ import annotations

import multiprocessing as mp
import resource
from collections.abc import Callable
from typing import Any


def _report(stage: Callable[..., float], args: tuple, queue: mp.Queue) -> None:
    seconds = stage(*args)
    queue.put((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2))


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

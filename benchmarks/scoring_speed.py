"""Batch scoring vs. the floor (TreeSHAP alone), measured in the same run.

    python benchmarks/scoring_speed.py [--accounts 200000] [--model-dir DIR] [--repeat 3]

Prepared before any timing: models (exported folders from `churnml export`, or trained here on a
new 2,000 × 36 world) and a feature table of `--accounts` rows, resampled from the accounts active
in that world at 2026-01-01 with every numeric value jittered (× e^N(0, 0.1), counts rounded,
clipped to the observed range) so that values are as varied as a real book's.

(a) floor: each model's exact contributions (`estimator.contributions(X)`: LightGBM's TreeSHAP
    `pred_contrib`, or a logistic regression's coefficients), X already prepared;
(b) the full scoring step as `churnml score` runs it on DuckDB (`write_scores`: the feature file
    read in account order, chunk by chunk): probabilities, calibration, reasons and their
    sentences, scorecard, health, tiers, actions, then scores.parquet + contributions.parquet +
    features.parquet + crm_export.csv, written as the chunks are scored;
(c) the features re-drawn (another jitter), scored as (b) with `--previous` b's run: each
    chunk compared with the rows of its accounts in b's files, and alerts.csv.
Each stage runs in its own process so that its peak RSS is its own; the stages run --repeat
times, in turn, and each number is the median. Targets: b/a ≤ 1.5 (issue 5),
c/b ≤ 1.2 (issue 13).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _measure import run_stage, save_rows

from churnml.config import Config, RegistryConfig
from churnml.features.catalogue import by_name
from churnml.models.registry import resolve_models

AS_OF = dt.date(2026, 1, 1)


def prepared(work: Path, model_dir: Path | None) -> Path:
    """A 2,000-account world in `work/world` (seed 11), and `model_dir` or models trained on it."""
    from churnml.data.synthetic import generate_world

    generate_world(work / "world", 2000, 36, seed=11)
    return model_dir or train_models(work, work / "world")


def train_models(work: Path, world: Path) -> Path:
    """Train on the world and export the champions; returns the export folder."""
    from churnml.models.pipeline import train
    from churnml.models.registry import export_models

    cfg = Config(registry=RegistryConfig(tracking_uri=f"sqlite:///{work / 'mlruns.db'}"))
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"backtests": 0})})
    train(cfg, data_dir=world)
    export_models(cfg, work / "models")
    return work / "models"


def resampled_features(world: Path, accounts: int, seed: int = 0) -> pd.DataFrame:
    """`accounts` rows resampled from the world's active accounts, numeric values jittered."""
    from churnml.data.sources import connect, load_tables
    from churnml.features.build import with_key_events
    from churnml.scoring.score import scoring_table

    cfg = Config()
    tables = load_tables(world, cfg.data, connect())
    cfg = with_key_events(cfg, tables, AS_OF)  # the event types training chose, from the same data
    real = scoring_table(tables, AS_OF, cfg).execute()
    rng = np.random.default_rng(seed)
    frame = real.sample(accounts, replace=True, random_state=seed).reset_index(drop=True)
    for name in frame.select_dtypes("number").columns:
        col = frame[name].astype(float)
        jittered = (col * np.exp(rng.normal(0, 0.1, len(col)))).clip(col.min(), col.max())
        whole = np.allclose(col.dropna() % 1, 0)
        frame[name] = jittered.round() if whole else jittered
    frame["account_id"] = [f"B{i:07d}" for i in range(accounts)]
    return frame


def _floor(features: Path, model_dir: Path) -> float:
    frame = pd.read_parquet(features)
    models, _ = resolve_models(Config(), {}, model_dir)
    prepared = {t: m.model.frame(frame) for t, m in models.items()}
    began = time.perf_counter()
    for target, loaded in models.items():
        loaded.model.estimator.contributions(prepared[target])
    return time.perf_counter() - began


def streamed(features: Path, model_dir: Path, out: Path, memory_limit: str | None = None,
             previous: Path | None = None) -> float:
    """`churnml score` on DuckDB: DuckDB reads the feature file, `write_scores` scores it in
    account order, chunk by chunk, and writes every output as it goes; with `previous` (an
    earlier `out` by the same models), what changed since, chunk by chunk."""
    from churnml.data.sources import connect
    from churnml.scoring.changes import BEFORE, Since
    from churnml.scoring.crm import load_field_map
    from churnml.scoring.score import write_scores

    cfg = Config()
    models, _ = resolve_models(cfg, {}, model_dir)
    events = next(m.model.meta["key_events"] for m in models.values())
    cfg = cfg.with_key_events(tuple(events))
    began = time.perf_counter()
    before = None if previous is None else pd.read_parquet(previous / "scores.parquet",
                                                             columns=list(BEFORE))
    since = None if previous is None else Since(previous, before, before, by_name(cfg.features),
                                                "en", cfg.report.currency,
                                                cfg.scoring.alert_points)  # fmt: skip
    table = connect("duckdb", memory_limit).read_parquet(features)
    names = sorted({f for m in models.values() for f in m.model.features} & set(table.columns))
    write_scores(table, models, cfg, "en", names, out, load_field_map("salesforce"), {},
                 since=since)  # fmt: skip
    return time.perf_counter() - began


def on_spark(features: Path, model_dir: Path, out: Path) -> tuple[float, dict[str, float]]:
    """`churnml score --engine spark` without --previous on the feature file: the executors
    score, rank and write (`churnml.scoring.score.spark_scores`). The seconds (Spark's start-up
    left out) and the peak RSS (GB) of the JVM and of the Python workers."""
    from _measure import TreeRSS

    from churnml.data.sources import connect
    from churnml.scoring.crm import load_field_map
    from churnml.scoring.score import spark_scores

    cfg = Config()
    models, _ = resolve_models(cfg, {}, model_dir)
    cfg = cfg.with_key_events(tuple(next(m.model.meta["key_events"] for m in models.values())))
    con = connect("spark")
    with TreeRSS() as rss:
        began = time.perf_counter()
        table = con.read_parquet(features)
        names = sorted({f for m in models.values() for f in m.model.features} & set(table.columns))
        spark_scores(table, models, cfg, "en", names, str(out), load_field_map("salesforce"), {})
        seconds = time.perf_counter() - began
    return seconds, rss.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each stage (medians)")
    parser.add_argument("--json", type=Path, default=None, help="results for bench.py")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    print(f"preparing in {work}: world, models, {args.accounts:,} feature rows …")
    model_dir = prepared(work, args.model_dir)
    resampled_features(work / "world", args.accounts).to_parquet(work / "features.parquet")
    resampled_features(work / "world", args.accounts, seed=1).to_parquet(work / "later.parquet")
    runs = [(run_stage(_floor, work / "features.parquet", model_dir),
             run_stage(streamed, work / "features.parquet", model_dir, work / "scores"),
             run_stage(streamed, work / "later.parquet", model_dir, work / "later", None,
                       work / "scores"))
            for _ in range(args.repeat)]  # fmt: skip
    (floor_s, floor_gb), (full_s, full_gb), (changes_s, changes_gb) = (
        np.median([run[stage] for run in runs], axis=0) for stage in range(3))
    print(f"accounts scored: {args.accounts:,}; models: {model_dir}")
    print(f"(a) floor, contributions of the models:   {floor_s:6.1f} s  peak RSS {floor_gb:.2f} GB")
    print(f"(b) full scoring step with outputs:      {full_s:6.1f} s  peak RSS {full_gb:.2f} GB")
    print(f"(c) the same with --previous (b's run):  {changes_s:6.1f} s  "
          f"peak RSS {changes_gb:.2f} GB")
    save_rows(args.json, [
        {"what": f"scoring {args.accounts:,} accounts", "seconds": full_s,
         "floor": f"TreeSHAP of the models, {floor_s:.1f} s", "ratio": full_s / floor_s,
         "target": "≤ 1.5", "rss_gb": full_gb},
        {"what": "the same with --previous", "seconds": changes_s,
         "floor": f"scoring without it, {full_s:.1f} s", "ratio": changes_s / full_s,
         "target": "≤ 1.2", "rss_gb": changes_gb}])  # fmt: skip
    print(f"ratio b/a = {full_s / floor_s:.2f} (target ≤ 1.5)")
    print(f"ratio c/b = {changes_s / full_s:.2f} (target ≤ 1.2)")


if __name__ == "__main__":
    main()

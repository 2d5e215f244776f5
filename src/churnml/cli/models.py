"""Commands on the models: train, register saved models, export, monitor."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from churnml.cli import (
    ConfigOption,
    DataOption,
    app,
    check_out,
    console,
    fail,
    parse_dates,
    read_config,
    summary_table,
)
from churnml.data.contract import BOOK
from churnml.data.sources import MissingTableError
from churnml.data.validate import DataValidationError

if TYPE_CHECKING:
    from churnml.models.pipeline import TrainReport


@app.command()
def train(
    data: Annotated[
        Path | None, typer.Option("--data", "-d", help="Folder with the input tables.")
    ] = None,
    config: ConfigOption = None,
    features_file: Annotated[
        Path | None, typer.Option("--features", help="Train on your own feature table instead.")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Label column of --features.")] = None,
    train_until: Annotated[
        str | None, typer.Option("--train-until", help="Use only labels known before this date.")
    ] = None,
) -> None:
    """Train churn and expansion models, evaluate them over time, track and register in MLflow."""
    from churnml.models.pipeline import train as run_training
    from churnml.models.splits import TrainingError

    cfg = read_config(config)
    until = parse_dates([train_until])[0] if train_until else None
    try:
        with console.status("training") as status:
            report = run_training(
                cfg, data_dir=data, features_path=features_file, target=target,
                train_until=until, progress=lambda s: status.update(s),
            )  # fmt: skip
    except (DataValidationError, MissingTableError, TrainingError, ConnectionError) as exc:
        raise fail(str(exc)) from None
    for name, why in report.skipped.items():
        console.print(f"[yellow]{name} not trained:[/] {escape(why)}", highlight=False)
    for r in report.results:
        console.print(f"[bold]{r.name}[/] split: {escape(r.split.describe())}", highlight=False)
        console.print(f"  chose {escape(r.choice.recipe.label)}"
                      + (f", {r.choice.rounds} rounds" if r.choice.rounds else "")
                      + f"; production fit on {_rows(r.model.meta)} through "
                      f"{r.model.meta['trained_through']}", highlight=False)  # fmt: skip
        if r.skill.no_skill:
            console.print(f"  [bold yellow]no skill:[/] {escape(r.skill.reason)}", highlight=False)
    console.print(training_table(report))
    churn = [r.model.meta.get("forecast") or {} for r in report.results if r.name == "churn"]
    tested = churn[0].get("backtest") if churn else None
    if tested:
        console.print(
            f"revenue forecast, backtest at {tested['forecast_cutoffs']:.0f} cut-offs: the 80% "
            f"range held the realised GRR {tested['forecast_grr_coverage']:.0%} of the time "
            f"(NRR {tested['forecast_nrr_coverage']:.0%}); central value off by "
            f"{tested['forecast_grr_mae_pts']:.1f} pts (GRR), {tested['forecast_nrr_mae_pts']:.1f} "
            "pts (NRR)", highlight=False)
    for p in report.promotions:
        console.print(f"{p.name} v{p.version} → [bold]{p.alias}[/]: {escape(p.reason)}")
    console.print(f"MLflow run {report.run_id}; {report.rows:,} rows; {report.seconds:.0f} s")

@app.command()
def register(
    folder: Annotated[Path, typer.Argument(help="Folder of models kept when MLflow failed.")],
    config: ConfigOption = None,
) -> None:
    """Register models that train kept locally because the tracking server failed."""
    from churnml.models.registry import register_saved

    cfg = read_config(config)
    try:
        promotions = register_saved(cfg, folder)
    except (FileNotFoundError, ConnectionError) as exc:
        raise fail(str(exc)) from None
    for p in promotions:
        console.print(f"{p.name} v{p.version} → {p.alias}: {escape(p.reason)}", highlight=False)

def _rows(meta: dict) -> str:
    """'12,000 rows', or 'a sample of 1,000,000 of 2,400,000 rows' (model.max_rows)."""
    fitted, labelled = meta["training_rows"], meta.get("labelled_rows", meta["training_rows"])
    sample = f"a sample of {fitted:,} of {labelled:,} rows"
    return f"{fitted:,} rows" if fitted == labelled else sample

@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the model folders.")] = Path(
        "models"
    ),
    config: ConfigOption = None,
) -> None:
    """Export the models scoring would use (champions) as MLflow model folders (for score
    --model-dir)."""
    from churnml.models.registry import export_models

    cfg = read_config(config)
    check_out(out)
    try:
        paths = export_models(cfg, out)
    except Exception as exc:  # MLflow raises many kinds; the message says which
        raise fail(f"cannot export the models: {exc}") from None
    console.print(summary_table("Exported", {t: str(p) for t, p in paths.items()}))

@app.command()
def monitor(
    data: DataOption,
    scores: Annotated[
        list[Path], typer.Option("--scores", help="Folders written by churnml score (repeat).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for monitoring.html.")],
    config: ConfigOption = None,
) -> None:
    """Is the churn model still right? Input and score drift, realised performance of past
    runs, and a verdict (retrain or keep), logged to MLflow as a monitoring run."""
    from churnml.models.registry import ModelNotFoundError, TrackingUnavailableError
    from churnml.monitoring.monitor import log_monitoring, write_page
    from churnml.monitoring.monitor import monitor as run_monitor

    cfg = read_config(config)
    check_out(out)
    try:
        with console.status("checking the churn model"):
            result = run_monitor(cfg, data, scores)
            page = write_page(result, out)
            run_id = log_monitoring(cfg, result, page)
    except (DataValidationError, ModelNotFoundError, TrackingUnavailableError, OSError,
            ValueError) as exc:  # fmt: skip
        raise fail(str(exc)) from None
    console.print(summary_table(f"Verdict: {result.verdict}", {
        "scoring run": str(result.as_of), "model": result.model,
        "churn probability PSI": f"{result.score_psi:.3f}", "features shifted": result.shifted,
        "runs with outcomes": result.realised.as_of.nunique() if len(result.realised) else 0,
        "MLflow run": run_id, "page": str(page.resolve()),
    }))  # fmt: skip
    for why in result.reasons:
        console.print(f"  {escape(why)}", highlight=False)

def training_table(report: TrainReport) -> Table:
    table = Table(title="Test metrics (evaluation fit, latest time split)", title_justify="left")
    for column in ("target", "model", "ROC-AUC", "PR-AUC", "log loss", "ECE", "ARR top 10%"):
        table.add_column(column)
    for result in report.results:
        for model, by_seg in result.metrics.items():
            m = by_seg[BOOK]
            keys = ("roc_auc", "pr_auc", "log_loss", "ece", "arr_captured_top10")
            label = f"churnml ({result.evaluation.family})" if model == "churnml" else model
            table.add_row(result.name, label, *(f"{m[k]:.3f}" for k in keys))
    return table

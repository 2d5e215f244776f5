"""The `churnml` command: a thin layer over the Python API (`churnml.data`, `churnml.features`…)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.exceptions import TyperException

import churnml
from churnml.config import Config, ConfigError, load_config
from churnml.data.sources import Engine, MissingTableError
from churnml.data.validate import DataValidationError
from churnml.features.catalogue import ROW_HEADER, Feature, catalogue_rows
from churnml.io import check_output
from churnml.scoring.reasons import Lang

if TYPE_CHECKING:
    import pandas as pd

    from churnml.models.pipeline import TrainReport

app = typer.Typer(
    help="Churn and expansion prediction for B2B SaaS Customer Success.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config (defaults read a generated world)."),
]
DataOption = Annotated[Path, typer.Option("--data", "-d", help="Folder with the input tables.")]


def _version(shown: bool) -> None:
    if shown:
        console.print(f"churnml {churnml.__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show progress logs (MLflow's too).")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    if not verbose:  # MLflow (imported later) logs at INFO and draws download bars of its own
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def fail(message: str) -> typer.Exit:
    """Print an error the user can act on and return the exit to raise (soft-wrapped: the
    terminal folds it, so paths and names in it stay whole when copied)."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def _output(path: Path, kind: str = "folder") -> None:
    """Refuse an output path that cannot be written, before any work."""
    try:
        check_output(path, kind)
    except ValueError as exc:
        raise fail(str(exc)) from None


@contextmanager
def progress_bar() -> Iterator[Progress]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        yield bar


def _config(path: Path | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise fail(str(exc)) from None


def summary_table(title: str, rows: dict[str, object]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in rows.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    return table


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the world to.")],
    accounts: Annotated[int, typer.Option(min=1, help="Number of accounts.")] = 2000,
    months: Annotated[int, typer.Option(min=4, help="Months simulated.")] = 36,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 0,
    start: Annotated[str, typer.Option(help="First month, YYYY-MM-DD.")] = "2023-01-01",
    preset: Annotated[
        str, typer.Option(help="Kind of portfolio: b2b, or consumer (one user per account).")
    ] = "b2b",
    events: Annotated[
        str | None,
        typer.Option(help="Event vocabulary: saas, social, or names separated by commas."),
    ] = None,
    expansion: Annotated[
        bool | None, typer.Option("--expansion/--no-expansion", help="Upsell and cross-sell.")
    ] = None,
    billing: Annotated[
        str | None, typer.Option(help="mixed (annual and monthly), or monthly (monthly terms).")
    ] = None,
    segment: Annotated[str | None, typer.Option(help="Put every account in this segment.")] = None,
    required_only: Annotated[
        bool | None,
        typer.Option("--required-only/--all-tables", help="Write only the three required tables."),
    ] = None,
    shift: Annotated[
        str | None,
        typer.Option(help="A product change mid-way: DATE:FACTOR[:SEGMENT] scales recorded use."),
    ] = None,
    problem: Annotated[
        str | None,
        typer.Option(help="A segment problem: INDUSTRY:CHANNEL accounts onboard poorly."),
    ] = None,
    fit: Annotated[
        float | None,
        typer.Option(help="How strongly fit at signing (industry, channel, size) sets adoption, "
                     "0–3 (0: none)."),
    ] = None,
) -> None:
    """Generate a synthetic SaaS world (every contract table, plus _truth/truth.parquet)."""
    from churnml.data.synthetic import generate_world, shape_of

    _output(out)
    began = time.perf_counter()
    try:
        shape = shape_of(preset, events=events, expansion=expansion, billing=billing,
                         segment=segment, required_only=required_only, shift=shift,
                         problem=problem, fit=fit)  # fmt: skip
    except ValueError as exc:
        raise fail(str(exc)) from None
    with progress_bar() as bar:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        try:
            summary = generate_world(
                out, accounts, months, seed, start, progress=report, shape=shape
            )
        except ValueError as exc:
            raise fail(str(exc)) from None
    rows = {f"{name} rows": n for name, n in summary.tables.items()}
    rows["seconds"] = f"{time.perf_counter() - began:.1f}"
    console.print(summary_table(f"World written to {summary.out}", rows))


@app.command()
def validate(data: DataOption, config: ConfigOption = None) -> None:
    """Check the input tables against the data contract; exit 1 on any error."""
    from churnml.data.validate import validate as run_validation

    cfg = _config(config)
    with console.status("validating"):
        report = run_validation(data, cfg.data)
    for finding in report.findings:
        console.print(Text(str(finding), style="red" if finding.level == "error" else "yellow"))
    if report.row_counts:
        console.print(summary_table("Rows", report.row_counts))
    if not report.ok:
        raise fail(f"{len(report.errors)} error(s) in {data}; nothing was written")
    console.print(f"[green]valid[/] ({len(report.warnings)} warning(s))")


def _dates(values: list[str] | None) -> list[dt.date] | None:
    if not values:
        return None
    try:
        return [dt.date.fromisoformat(v) for v in values]
    except ValueError as exc:
        raise fail(f"--as-of takes dates as YYYY-MM-DD: {exc}") from None


@app.command()
def features(
    data: Annotated[
        Path | None, typer.Option("--data", "-d", help="Folder with the input tables.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Parquet file to write.")] = None,
    config: ConfigOption = None,
    as_of: Annotated[
        list[str] | None,
        typer.Option("--as-of", help="Observation date (repeatable); default: every month start."),
    ] = None,
    engine: Annotated[Engine, typer.Option(help="Where the queries run.")] = "duckdb",
    list_: Annotated[
        bool, typer.Option("--list", help="Show the feature catalogue (with --data: its events).")
    ] = False,
    lang: Annotated[str, typer.Option(help="Language of the catalogue listing: en or ja.")] = "en",
) -> None:
    """Build point-in-time features and labels: one row per (account_id, as_of)."""
    from churnml.features.build import write_features
    from churnml.features.catalogue import catalogue

    cfg = _config(config)
    if list_:
        if data is not None:  # key events as training would choose them on this data
            from churnml.models.pipeline import keyed_config

            cfg = keyed_config(data, cfg)
        console.print(catalogue_table(catalogue(cfg.features), lang))
        return
    if data is None or out is None:
        raise fail("features needs --data DIR and --out FILE.parquet (or --list)")
    _output(out, "file")
    began = time.perf_counter()
    with console.status("building features") as status:
        try:
            result = write_features(
                data,
                cfg,
                out,
                _dates(as_of),
                engine,
                progress=lambda s: status.update(f"building features: {s}"),
            )
        except (DataValidationError, MissingTableError) as exc:
            raise fail(str(exc)) from None
    console.print(
        summary_table(
            f"Features written to {result.path}",
            {
                "rows (account × as_of)": result.rows,
                "features": len(result.features),
                "as_of": f"{result.as_of[0]} … {result.as_of[-1]} ({len(result.as_of)} dates)",
                "seconds": f"{time.perf_counter() - began:.1f}",
            },
        )
    )


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

    cfg = _config(config)
    until = _dates([train_until])[0] if train_until else None
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
                      + f"; production fit on {r.model.meta['training_rows']:,} rows through "
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
def score(
    data: DataOption,
    as_of: Annotated[str, typer.Option("--as-of", help="Score accounts active on this date.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for scores and the CRM feed.")],
    config: ConfigOption = None,
    churn_model: Annotated[str | None, typer.Option(help="Model URI (default: champion).")] = None,
    expansion_model: Annotated[
        str | None, typer.Option(help="Model URI (default: champion).")
    ] = None,
    model_dir: Annotated[
        Path | None, typer.Option(help="Exported models (churnml export).")
    ] = None,
    crm: Annotated[
        str, typer.Option(help="CRM field map: salesforce, hubspot or a YAML path.")
    ] = "salesforce",
    lang: Annotated[Lang, typer.Option(help="Language of the reasons.")] = "en",
    changed_since: Annotated[
        Path | None, typer.Option(help="A previous --out: write only CRM rows that changed.")
    ] = None,
    engine: Annotated[Engine, typer.Option(help="Where the feature queries run.")] = "duckdb",
    previous: Annotated[
        Path | None,
        typer.Option(help="A previous --out: add what changed since, and why, and alerts.csv."),
    ] = None,
) -> None:
    """Score every active account: probabilities, tiers, health, next best action, reasons."""
    from churnml.scoring.crm import load_field_map
    from churnml.scoring.score import read_previous
    from churnml.scoring.score import score as run_scoring

    cfg = _config(config)
    day = _dates([as_of])[0]
    _output(out)
    try:
        load_field_map(crm)
        if previous is not None:
            read_previous(previous, day)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    began = time.perf_counter()
    try:
        with console.status(f"scoring accounts active on {day}"):
            result = run_scoring(
                cfg,
                data_dir=data,
                as_of=day,
                out=out,
                uris={"churn": churn_model, "expansion": expansion_model},
                model_dir=model_dir,
                crm=crm,
                lang=lang,
                changed_since=changed_since,
                engine=engine,
                previous=previous,
            )
    except (DataValidationError, MissingTableError, OSError, ValueError, KeyError) as exc:
        raise fail(str(exc)) from None
    console.print(
        summary_table(
            f"Scores written to {result.out.resolve()}",
            {
                "accounts scored": result.rows,
                "CRM rows written": result.crm_rows,
                **({} if result.alerts is None else {"alerts": result.alerts}),
                **{f"{t} model": m for t, m in result.models.items()},
                "seconds": f"{time.perf_counter() - began:.1f}",
            },
        )
    )
    for name in ("scores.parquet", "contributions.parquet", "features.parquet", "crm_export.csv",
                 "alerts.csv"):
        console.print(f"  {escape(str(result.out.resolve() / name))}", highlight=False)
    for target, why in result.missing.items():
        console.print(f"[yellow]{target} columns left empty:[/] {escape(why)}", highlight=False)
    for target in result.no_skill:
        console.print(
            f"[bold yellow]the {target} model shows no skill[/] (scores.parquet "
            f"{target}_model_skill = no_skill): its ranking is not clearly better than chance or "
            "the health score, so no reasons are given",
            highlight=False,
        )
    if not result.top_at_risk.empty:
        console.print(top_table(result.top_at_risk))


@app.command("fit-score")
def fit_score(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the scored deals.")],
    deals: Annotated[
        Path | None, typer.Option(help="Deals to score: a CSV or Parquet file (deal_id, …).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", "-d", help="Or score the data's accounts signed …")
    ] = None,
    since: Annotated[str | None, typer.Option(help="… on or after this date (--data).")] = None,
    fit_model: Annotated[str | None, typer.Option(help="Model URI (default: champion).")] = None,
    lang: Annotated[Lang, typer.Option(help="Language of the reasons and the page.")] = "en",
    config: ConfigOption = None,
) -> None:
    """Score deals at signing: the chance each is lost in its first year, why, and the Fit page."""
    from churnml.models.registry import ModelNotFoundError, TrackingUnavailableError
    from churnml.reports.fit import write_fit
    from churnml.scoring.deals import DealsError, read_deals, score_deals, signed_since
    from churnml.scoring.deals import fit_model as resolve_fit

    if (deals is None) == (data is None) or (data is not None and since is None):
        raise fail("give --deals FILE, or --data DIR with --since DATE")
    cfg = _config(config)
    _output(out)
    try:
        model = resolve_fit(cfg, fit_model)
        frame = read_deals(deals) if deals else signed_since(data, cfg, _dates([since])[0])
        scored = score_deals(model.model, frame)
        page = write_fit(scored, model.model, cfg, out, lang)
    except (DealsError, ModelNotFoundError, TrackingUnavailableError, DataValidationError,
            MissingTableError) as exc:  # fmt: skip
        raise fail(str(exc)) from None
    bands = scored["fit"].value_counts()
    counts = {f"{b} fit": int(bands.get(b, 0)) for b in ("poor", "average", "good")}
    console.print(summary_table(f"Deals scored into {Path(out).resolve()}",
                                {"deals": len(scored), **counts, "fit model": model.source}))
    console.print(f"  {escape(str(page.resolve()))}", highlight=False)


def top_table(top: pd.DataFrame) -> Table:
    """The accounts with the most ARR at risk; account names are shown as text, never markup."""
    table = Table(title="Most ARR at risk", title_justify="left")
    table.add_column("account", ratio=2)
    for column in ("ARR at risk", "churn", "action"):
        table.add_column(column, no_wrap=True, justify="right" if column != "action" else "left")
    table.add_column("top reason", ratio=3)
    for r in top.itertuples():
        reasons = r.churn_reasons if r.churn_reasons is not None else []
        reason = reasons[0]["sentence"] if len(reasons) else ""
        name = r.account_name if isinstance(r.account_name, str) else ""
        table.add_row(
            Text(f"{name} ({r.account_id}, {r.segment})"), f"${r.arr_at_risk:,.0f}",
            f"{r.churn_probability:.1%}", r.next_best_action, Text(reason),
        )  # fmt: skip
    return table


@app.command()
def register(
    folder: Annotated[Path, typer.Argument(help="Folder of models kept when MLflow failed.")],
    config: ConfigOption = None,
) -> None:
    """Register models that train kept locally because the tracking server failed."""
    from churnml.models.registry import register_saved

    cfg = _config(config)
    try:
        promotions = register_saved(cfg, folder)
    except (FileNotFoundError, ConnectionError) as exc:
        raise fail(str(exc)) from None
    for p in promotions:
        console.print(f"{p.name} v{p.version} → {p.alias}: {escape(p.reason)}", highlight=False)


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

    cfg = _config(config)
    _output(out)
    try:
        paths = export_models(cfg, out)
    except Exception as exc:  # MLflow raises many kinds; the message says which
        raise fail(f"cannot export the models: {exc}") from None
    console.print(summary_table("Exported", {t: str(p) for t, p in paths.items()}))


@app.command()
def report(
    scores: Annotated[Path, typer.Option("--scores", help="Folder written by churnml score.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the HTML site.")],
    lang: Annotated[Lang, typer.Option(help="Language of the pages.")] = "en",
    data: Annotated[
        Path | None, typer.Option("--data", "-d", help="Input tables (adds adoption charts).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write the CSM and leader reports: a static site, no network needed."""
    from churnml.reports.site import build_report

    cfg = _config(config)
    _output(out)
    try:
        with console.status("writing the report"):
            index = build_report(scores, out, cfg, lang, data)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    console.print(f"Report written: {index.resolve()}")


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

    cfg = _config(config)
    _output(out)
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
            m = by_seg["all"]
            keys = ("roc_auc", "pr_auc", "log_loss", "ece", "arr_captured_top10")
            label = f"churnml ({result.evaluation.family})" if model == "churnml" else model
            table.add_row(result.name, label, *(f"{m[k]:.3f}" for k in keys))
    return table


def catalogue_table(features: list[Feature], lang: str) -> Table:
    table = Table(title="Feature catalogue", title_justify="left")
    for column in (*ROW_HEADER, "description"):
        table.add_column(column, overflow="fold")
    for row in catalogue_rows(features, (lang,)):
        table.add_row(*row)
    return table


def _interrupted() -> int:
    console.print("[yellow]interrupted[/]: previous output kept", highlight=False)
    return 130


def main(argv: list[str] | None = None) -> int:
    """The `churnml` command: the app, with Ctrl-C and anything unexpected as one line each
    (the traceback only with -v)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        code = app(args, standalone_mode=False)  # an Exit's code is returned, not raised
        if code == 130:  # Typer's own answer to Ctrl-C
            return _interrupted()
    except KeyboardInterrupt:
        return _interrupted()
    except TyperException as exc:  # usage errors show themselves; Ctrl-C inside click: Abort
        if type(exc).__name__ == "Abort":
            return _interrupted()
        exc.show()  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 2))
    except Exception as exc:  # the last line of defence: one line, unless asked for more
        if "interrupt" in str(exc).lower():  # Ctrl-C that reached DuckDB mid-query
            return _interrupted()
        if {"-v", "--verbose"} & set(args):
            console.print_exception()
        first = str(exc).splitlines()[0] if str(exc) else ""
        console.print(f"[bold red]error:[/] unexpected {type(exc).__name__}: {escape(first)} "
                      "(run with -v for the traceback)", highlight=False)  # fmt: skip
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

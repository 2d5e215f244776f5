"""The `churnml` command: a thin layer over the Python API (`churnml.data`, `churnml.features`…)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from churnml.config import Config, ConfigError, load_config
from churnml.data.sources import Engine, MissingTableError
from churnml.data.validate import DataValidationError
from churnml.features.catalogue import Feature

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


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )


def fail(message: str) -> typer.Exit:
    """Print an error the user can act on and return the exit to raise."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code=1)


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
) -> None:
    """Generate a synthetic B2B SaaS world (every contract table, plus _truth/truth.parquet)."""
    from churnml.data.synthetic import generate_world

    began = time.perf_counter()
    with progress_bar() as bar:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        try:
            summary = generate_world(out, accounts, months, seed, start, progress=report)
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
        bool, typer.Option("--list", help="Show the feature catalogue and exit.")
    ] = False,
    lang: Annotated[str, typer.Option(help="Language of the catalogue listing: en or ja.")] = "en",
) -> None:
    """Build point-in-time features and labels: one row per (account_id, as_of)."""
    from churnml.features.build import write_features
    from churnml.features.catalogue import catalogue

    cfg = _config(config)
    if list_:
        console.print(catalogue_table(catalogue(cfg.features), lang))
        return
    if data is None or out is None:
        raise fail("features needs --data DIR and --out FILE.parquet (or --list)")
    began = time.perf_counter()
    with console.status("building features") as status:
        try:
            result = write_features(
                data, cfg, out, _dates(as_of), engine,
                progress=lambda s: status.update(f"building features: {s}"),
            )  # fmt: skip
        except (DataValidationError, MissingTableError) as exc:
            raise fail(str(exc)) from None
    console.print(summary_table(f"Features written to {result.path}", {
        "rows (account × as_of)": result.rows,
        "features": len(result.features),
        "as_of": f"{result.as_of[0]} … {result.as_of[-1]} ({len(result.as_of)} dates)",
        "seconds": f"{time.perf_counter() - began:.1f}",
    }))  # fmt: skip


def catalogue_table(features: list[Feature], lang: str) -> Table:
    table = Table(title="Feature catalogue", title_justify="left")
    for column in ("name", "family", "window", "unit", "healthy", "description"):
        table.add_column(column, overflow="fold")
    for f in features:
        window = f"{f.window_days}d" if f.window_days else ""
        table.add_row(f.name, f.family, window, f.unit, f.healthy, f.ja if lang == "ja" else f.en)
    return table


if __name__ == "__main__":  # pragma: no cover
    app()

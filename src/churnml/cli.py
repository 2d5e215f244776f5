"""The `churnml` command: a thin layer over the Python API (`churnml.data`, `churnml.features`…)."""

from __future__ import annotations

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


if __name__ == "__main__":  # pragma: no cover
    app()

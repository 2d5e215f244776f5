"""The `churnml` command: a thin layer over the Python API (`churnml.data`, `churnml.features`…)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
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
from typer.exceptions import TyperException

import churnml
from churnml.config import Config, ConfigError, load_config
from churnml.io import check_output

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


def check_out(path: Path, kind: str = "folder") -> None:
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


def read_config(path: Path | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise fail(str(exc)) from None


def summary_table(title: str, rows: dict[str, object]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in rows.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    return table


def parse_dates(values: list[str] | None) -> list[dt.date] | None:
    if not values:
        return None
    try:
        return [dt.date.fromisoformat(v) for v in values]
    except ValueError as exc:
        raise fail(f"--as-of takes dates as YYYY-MM-DD: {exc}") from None


def _interrupted() -> int:
    console.print("[yellow]interrupted[/]: previous output kept", highlight=False)
    return 130


from churnml.cli import data, models, scoring  # noqa: E402, F401  (registers the commands)


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

"""Commands on the data: generate a world, validate tables, build features."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from churnml.cli import (
    ConfigOption,
    DataOption,
    app,
    check_out,
    console,
    fail,
    parse_dates,
    progress_bar,
    read_config,
    summary_table,
)
from churnml.data.sources import Engine, MissingTableError
from churnml.data.validate import DataValidationError
from churnml.features.catalogue import ROW_HEADER, Feature, catalogue_rows
from churnml.io import is_uri


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
    horizon_days: Annotated[
        int, typer.Option(min=1, max=730, help="The truth's horizon: give labels.horizon_days.")
    ] = 90,
    csv: Annotated[
        str | None,
        typer.Option(help="Write every table as CSV from a spreadsheet in this locale: de (day "
                     "first, decimal commas, semicolons), us (month first, AM/PM) or ja."),
    ] = None,
    usage_rollup: Annotated[
        bool, typer.Option(help="Usage events as a daily rollup, counts in quantity (train it "
                           "with data.event_counts: quantity).")
    ] = False,
    users: Annotated[
        bool, typer.Option("--users/--no-users", help="Usage events name their user (no: "
                           "usage kept by account, without user_id).")
    ] = True,
    mrr: Annotated[
        bool, typer.Option(help="Subscriptions' monthly recurring revenue (mrr) in place of "
                           "arr, as billing systems export it.")
    ] = False,
) -> None:
    """Generate a synthetic SaaS world (every contract table, plus _truth/truth.parquet)."""
    from churnml.data.synthetic import generate_world, shape_of

    check_out(out)
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
                out, accounts, months, seed, start, progress=report, shape=shape,
                horizon_days=horizon_days, csv_locale=csv, usage_rollup=usage_rollup, users=users,
                mrr=mrr,
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

    cfg = read_config(config)
    with console.status("validating"):
        report = run_validation(data, cfg.data, shown_in=cfg.report.set_currency)
    for finding in report.findings:
        console.print(Text(str(finding), style="red" if finding.level == "error" else "yellow"))
    if report.row_counts:
        console.print(summary_table("Rows", report.row_counts))
    if not report.ok:
        raise fail(f"{len(report.errors)} error(s) in {data}; nothing was written")
    console.print(f"[green]valid[/] ({len(report.warnings)} warning(s))")

@app.command()
def features(
    data: Annotated[
        Path | None, typer.Option("--data", "-d", help="Folder with the input tables.")
    ] = None,
    out: Annotated[
        str | None,
        typer.Option("--out", "-o", help="Parquet file to write (Spark: a folder, any path it "
                     "writes, e.g. s3a://…)."),
    ] = None,
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

    cfg = read_config(config)
    if list_:
        if data is not None:  # key events as training would choose them on this data
            from churnml.models.pipeline import keyed_config

            cfg = keyed_config(data, cfg)
        console.print(catalogue_table(catalogue(cfg.features), lang))
        return
    if data is None or out is None:
        raise fail("features needs --data DIR and --out FILE.parquet (or --list)")
    if not is_uri(out):  # a local path (Spark checks its own paths as it writes)
        check_out(Path(out), "folder" if engine == "spark" else "file")
    began = time.perf_counter()
    with console.status("building features") as status:
        try:
            result = write_features(
                data,
                cfg,
                out,
                parse_dates(as_of),
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

def catalogue_table(features: list[Feature], lang: str) -> Table:
    table = Table(title="Feature catalogue", title_justify="left")
    for column in (*ROW_HEADER, "description"):
        table.add_column(column, overflow="fold")
    for row in catalogue_rows(features, (lang,)):
        table.add_row(*row)
    return table

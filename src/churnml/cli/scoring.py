"""Commands that score and report: score the book, score deals, build the site."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
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
    read_config,
    summary_table,
)
from churnml.data.sources import Engine, MissingTableError
from churnml.data.validate import DataValidationError
from churnml.io import is_uri
from churnml.scoring.reasons import money
from churnml.vocabulary import Lang

if TYPE_CHECKING:
    import pandas as pd


@app.command()
def score(
    data: DataOption,
    out: Annotated[
        str,
        typer.Option("--out", "-o", help="Folder for scores and the CRM feed (Spark: any path "
                     "it writes, e.g. s3a://…)."),
    ],
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Score accounts active on this date (default: the day "
                     "after the usage events end)."),
    ] = None,
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
    from churnml.scoring.changes import read_previous
    from churnml.scoring.crm import load_field_map
    from churnml.scoring.score import score as run_scoring

    cfg = read_config(config)
    day = parse_dates([as_of])[0] if as_of else None
    if not is_uri(out):  # a local folder (Spark checks its own paths as it writes)
        check_out(Path(out))
    try:
        load_field_map(crm)
        if previous is not None and day is not None:  # else once the data gives the day
            read_previous(previous, day)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    began = time.perf_counter()
    try:
        with console.status(f"scoring accounts active on {day or 'the day the data ends'}"):
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
            f"Scores written to {result.out}",
            {
                "as of": str(result.as_of) + ("" if day else " (the day after the usage events)"),
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
        console.print(f"  {escape(result.out)}/{escape(name)}", highlight=False)
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
        console.print(top_table(result.top_at_risk, result.currency))

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
    cfg = read_config(config)
    check_out(out)
    try:
        model = resolve_fit(cfg, fit_model)
        frame = read_deals(deals) if deals else signed_since(data, cfg, parse_dates([since])[0])
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

def top_table(top: pd.DataFrame, currency: str) -> Table:
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
            Text(f"{name} ({r.account_id}, {r.segment})"), money(r.arr_at_risk, "en", currency),
            f"{r.churn_probability:.1%}", r.next_best_action, Text(reason),
        )  # fmt: skip
    return table

@app.command()
def report(
    scores: Annotated[Path, typer.Option("--scores", help="Folder written by churnml score.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the HTML site.")],
    lang: Annotated[Lang, typer.Option(help="Language of the pages.")] = "en",
    config: ConfigOption = None,
) -> None:
    """Write the CSM and leader reports from a scoring run: a static site, no network needed."""
    from churnml.reports.site import build_report

    cfg = read_config(config)
    check_out(out)
    try:
        with console.status("writing the report"):
            index = build_report(scores, out, cfg, lang)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    console.print(f"Report written: {index.resolve()}")

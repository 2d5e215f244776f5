"""Validate input tables at the boundary, with errors a data engineer can act on.

Each finding names the table, the column, the rule broken, how many rows break it and up to five
example rows. Row-level rules of one table are counted in a single scan; example rows are fetched
only for rules that fail. Errors stop the pipeline before anything is written; warnings do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pandas as pd

from churnml.config import DataConfig
from churnml.data.contract import BOOK, CONTACT_ROLES, NUMBER_FORMATS, TABLES, Column, Table
from churnml.data.sources import (
    DataEncodingError,
    MissingTableError,
    Source,
    as_arr,
    book_currency,
    contract_names,
    currency,
    currency_code,
    fits_text,
    footer,
    formats_of,
    ibis_type,
    in_format,
    locate,
    read_stored,
    reads_as_time,
    renamed,
    text_formats,
    typed,
)

MAX_EXAMPLES = 5
DUPLICATE_SHARE = 0.001  # exact duplicates above this share of a table's rows are reported


@dataclass(frozen=True)
class Finding:
    """One broken rule: where, what, how many rows, and a few of them."""

    level: Literal["error", "warning"]
    table: str
    column: str
    rule: str
    rows: int
    examples: pd.DataFrame = field(default_factory=pd.DataFrame, compare=False)

    def __str__(self) -> str:
        where = f"table {self.table}, column {self.column}"
        head = f"{self.level}: {where}: {self.rule} ({self.rows:,} rows)"
        if self.examples.empty:
            return head
        sample = self.examples.head(MAX_EXAMPLES).to_string(index=False, max_colwidth=40)
        return head + "; e.g.\n" + "\n".join("    " + line for line in sample.splitlines())


@dataclass(frozen=True)
class ValidationReport:
    findings: list[Finding]
    row_counts: dict[str, int]
    formats: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)  # text_formats

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def __str__(self) -> str:
        return "\n".join(str(f) for f in self.findings) or "no findings"


class DataValidationError(ValueError):
    """Input data broke the contract; `report` holds every finding."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(
            f"{len(report.errors)} data error(s):\n" + "\n".join(map(str, report.errors))
        )


@dataclass(frozen=True)
class _Rule:
    level: Literal["error", "warning"]
    column: str
    rule: str
    bad: ir.BooleanValue
    show: tuple[str, ...]


def validate(
    data_dir: Path | str, config: DataConfig, con: ibis.BaseBackend | None = None,
    shown_in: str | None = None,
) -> ValidationReport:
    """Check every table found in `data_dir` against the contract (see docs/data-contract.md);
    `shown_in`: the currency report.currency sets (None where it is not set: amounts are then
    shown in the data's), which a book in one other currency is warned about."""
    con = con or ibis.duckdb.connect()
    try:
        sources = locate(data_dir, config)
    except MissingTableError as exc:
        return ValidationReport([Finding("error", exc.table, "*", exc.rule, 0)], {})
    findings: list[Finding] = []
    raws: dict[str, ir.Table] = {}
    for name, source in sources.items():
        try:
            stored = read_stored(con, source)
        except DataEncodingError as exc:
            findings.append(Finding("error", name, "*", str(exc).split(": ", 1)[1], 0))
            continue
        if left := footer(source):
            findings.append(Finding("warning", name, "*", f"the last lines of {source.path} are "
                                    f"a report's footer, not rows ({left[0]!r}, …): "
                                    "left out", len(left)))  # fmt: skip
        present = contract_names(stored.columns, source)
        missing = _missing_columns(source, present, stored.columns, config)
        findings += missing
        if not missing:
            raws[name] = renamed(stored, source)
    counts = {name: int(raw.count().execute()) for name, raw in raws.items()}
    typed_tables, text = {}, {}
    for name, raw in raws.items():
        table = TABLES[name]
        formats = text[name] = text_formats(raw, sources[name])
        type_findings = _run(name, raw, _type_rules(raw, table, formats))
        findings += type_findings + _run(name, raw, _fill_rules(raw, table))
        if not type_findings:
            typed_tables[name] = typed(raw, table, formats)
    if "subscriptions" in typed_tables:  # ARR checked as it is read: yearly, one currency
        if shown_in and not config.exchange_rates:
            findings += _shown_in_another(typed_tables["subscriptions"], shown_in)
        typed_tables["subscriptions"] = as_arr(typed_tables["subscriptions"],
                                               config.exchange_rates)  # fmt: skip
    findings += [
        Finding("error", name, "*", "required table has no rows", 0)
        for name, n in counts.items()
        if n == 0 and TABLES[name].required
    ]
    for name, t in typed_tables.items():
        findings += _run(name, t, _row_rules(name, t, config))
        findings += _unique(name, t) + _exact_duplicates(name, t, counts[name])
    if "subscriptions" in typed_tables:
        findings += _outlying_arr(typed_tables["subscriptions"], typed_tables.get("accounts"))
        if "usage_events" in typed_tables:
            findings += _active_without_subscription(typed_tables)
    if "accounts" in typed_tables:
        findings += _relational(typed_tables, counts, config.max_unknown_accounts)
    return ValidationReport(findings, counts, text)


def _missing_columns(source: Source, present: dict[str, str], stored: list[str],
                     config: DataConfig) -> list[Finding]:  # fmt: skip
    """The contract's required columns, and those the config needs (`_needed`), not `present`
    (`contract_names`) among the `stored` ones."""
    needed = {c.name: "required column" + (f" (or {c.instead})" if c.instead else "")
              for c in source.table.columns
              if c.required and not (c.instead and c.instead in present)}  # fmt: skip
    needed.update(_needed(source.table.name, config))
    found = ", ".join(stored[:30]) + (", …" if len(stored) > 30 else "") or "none"
    return [
        Finding("error", source.table.name, source.user_column(name),
                f"{what} missing from {source.path} (columns found: {found}; map it under "
                f"data.tables.{source.table.name}.columns)", 0)
        for name, what in needed.items() if name not in present
    ]  # fmt: skip


def _needed(table: str, config: DataConfig) -> dict[str, str]:
    """Optional columns that settings make required: column → why."""
    if table == "subscriptions" and config.exchange_rates:
        return {"currency": "column that data.exchange_rates converts each row's ARR by"}
    return {}


def _type_rules(raw: ir.Table, table: Table, formats: dict[str, tuple[str, ...]]
                ) -> list[_Rule]:  # fmt: skip
    rules = []
    for column in table.columns:
        if column.name not in raw.columns or column.kind == "text":
            continue
        value = raw[column.name]
        if column.kind == "id" and not value.type().is_floating():
            continue  # any id reads as text; a float one must be whole
        dtype = ibis_type(column.kind)
        if column.kind in ("int", "id") and value.type().is_floating():  # whole numbers only
            broken = value.isinf() | value.isnan() | (value.abs() > 2**62) | (value % 1 != 0)
            rules.append(_Rule("error", column.name, "values that are not whole numbers",
                               value.notnull() & broken, (column.name,)))  # fmt: skip
        elif column.kind in ("date", "timestamp") and value.type().is_numeric():
            rules.append(_Rule("error", column.name, "numbers that cannot be read as a time (a "
                               "spreadsheet's day number, a date as digits, yyyymmdd, or Unix "
                               "time in seconds, milliseconds or microseconds since 1970)",
                               value.notnull() & ~reads_as_time(value), (column.name,)))
        elif len(formats.get(column.name, ())) == 1:
            fmt, setting = formats[column.name][0], _setting(table.name, column.name)
            rules.append(_Rule("error", column.name, f"values that do not fit the format {fmt!r} "
                               f"(set another in {setting})", value.notnull()
                               & in_format(value, column.kind) & ~fits_text(value, fmt),
                               (column.name,)))  # fmt: skip
            rules += _one_currency(raw, column.name) if fmt in NUMBER_FORMATS else [
                _Rule("warning", column.name, f"in ISO 8601 among values in {fmt!r}: each read "
                      "as written", value.notnull() & ~in_format(value, column.kind),
                      (column.name,))]  # fmt: skip
        elif value.type().is_string() or not _compatible(value.type(), dtype):
            what = (
                "ISO 8601 dates or timestamps like 2024-01-31 or 2024-01-31 13:45:00"
                if column.kind in ("date", "timestamp") else column.kind
            )  # fmt: skip
            rules.append(
                _Rule(
                    "error",
                    column.name,
                    f"values that cannot be parsed as {what}"
                    + (_format_hint(table.name, column, formats.get(column.name, ()))
                       if value.type().is_string() else ""),
                    value.notnull() & value.try_cast(dtype).isnull(),
                    (column.name,),
                )
            )
    return rules


def _one_currency(raw: ir.Table, name: str) -> list[_Rule]:
    """Amounts written with a currency are all in the one most of them are in (of those of their
    row's currency, where the table has that column): a column's numbers are summed as one."""
    written = currency(raw[name])
    code = currency_code(raw) if "currency" in raw.columns else ibis.literal("")
    usual = raw.group_by(code=code).aggregate(usual=written.mode()).execute().dropna()
    if usual.empty:
        return []
    most = (repr(usual.usual.iloc[0]) if len(usual) == 1 else ", ".join(
        f"{c}: {u!r}" for c, u in zip(usual.code, usual.usual, strict=True)))  # fmt: skip
    expected = ibis.cases(*((code == c, u) for c, u in zip(usual.code, usual.usual, strict=True)),
                          else_=ibis.null("string"))  # fmt: skip
    return [_Rule("error", name, f"amounts in another currency than most of them ({most}): "
                  "convert them to one currency", written.notnull() & (written != expected),
                  (name,))]  # fmt: skip


def _currency_rules(subs: ir.Table, rates: dict[str, float]) -> list[_Rule]:
    """ARR in one currency, or each row's with a rate (`data.exchange_rates`)."""
    code, show = currency_code(subs), ("account_id", "currency", "arr")
    if rates:
        empty = code.isnull() | (code == "")
        return [_Rule("error", "currency", "empty: data.exchange_rates converts each row's ARR by "
                      "its currency", empty, show),
                _Rule("error", "currency", "no rate in data.exchange_rates (it has "
                      f"{', '.join(sorted(rates))})", ~empty & ~code.isin(list(rates)), show)]
    usual = subs.aggregate(usual=code.mode()).execute().usual.iloc[0]
    if pd.isna(usual):
        return []
    return [_Rule("error", "currency", f"ARR in another currency than most rows' ({usual}): set "
                  "each currency's value in the book's one in data.exchange_rates (e.g. {USD: "
                  "1, EUR: 1.08})", code.notnull() & (code != usual), show)]  # fmt: skip


def _shown_in_another(subs: ir.Table, shown_in: str) -> list[Finding]:
    """A warning where every row's currency is one code, and not `shown_in`."""
    code = book_currency(subs)
    if code is None or code == shown_in.upper():
        return []
    return [Finding("warning", "subscriptions", "currency", f"ARR is in {code}, but "
                    f"report.currency shows amounts in {shown_in}: set it to {code}, or leave it "
                    "out (amounts are then shown in the data's currency)",
                    int(subs.count().execute()))]  # fmt: skip


def _fill_rules(raw: ir.Table, table: Table) -> list[_Rule]:
    """Columns whose empty rows are read as a value (`Column.fill`): a warning."""
    key = ("account_id",) if "account_id" in raw.columns else ()
    return [_Rule("warning", c.name, f"empty: read as {c.fill!r}", raw[c.name].isnull(),
                  (*key, c.name))
            for c in table.columns if c.fill is not None and c.name in raw.columns]  # fmt: skip


def _setting(table: str, column: str) -> str:
    return f"data.tables.{table}.formats.{column}"


def _format_hint(table: str, column: Column, fits: tuple[str, ...]) -> str:
    """For text that no format reads (`text_formats`): how to say which one it is written in."""
    if not formats_of(column.kind):
        return ""
    number = column.kind in ("float", "int")
    example = "'1.234,5' or '1,234.5'" if number else "strptime codes such as '%d/%m/%Y %H:%M'"
    why = f"they fit {' and '.join(map(repr, fits))} alike; " if len(fits) > 1 else ""
    return f"; {why}set their format in {_setting(table, column.name)}: {example}"


def _compatible(actual: dt.DataType, wanted: str) -> bool:
    """Whether a stored (non-string) type already holds the wanted kind of value."""
    return actual.is_temporal() if wanted in ("date", "timestamp") else actual.is_numeric()


def _row_rules(name: str, t: ir.Table, config: DataConfig) -> list[_Rule]:
    table = TABLES[name]
    key = tuple(c for c in ("account_id",) if c in t.columns)
    rules = [
        _Rule("error", c.name, "must not be null", t[c.name].isnull(), key or (c.name,))
        for c in table.columns
        if not c.nullable
    ]

    def order(later: str, earlier: str, strict: bool = False) -> None:
        bad = t[later] <= t[earlier] if strict else t[later] < t[earlier]
        word = "after" if strict else "on or after"
        rules.append(
            _Rule("error", later, f"must be {word} {earlier}", bad, (*key, earlier, later))
        )

    if name == "accounts":
        rules.append(_Rule("error", "segment", f"{BOOK!r} names the whole book in metrics and "
                           "reports: give that segment another name", t.segment == BOOK,
                           ("account_id", "segment")))  # fmt: skip
    elif name == "subscriptions":
        order("end_date", "start_date", strict=True)
        order("canceled_at", "start_date")
        rules.append(
            _Rule(
                "error", "arr", "must not be negative (a credit note or a discount line: take it "
                "off the row it reduces, for its dates)", t.arr < 0,
                ("account_id", "product", "arr"),
            )
        )
        rules.append(
            _Rule("error", "arr", "must be a finite number", t.arr.isinf() | t.arr.isnan(),
                  ("account_id", "product", "arr"))
        )  # fmt: skip
        rules.append(
            _Rule("warning", "arr", f"above data.max_arr = {config.max_arr:,.0f} (is it in "
                  "cents?)", t.arr > config.max_arr, ("account_id", "product", "arr"))
        )  # fmt: skip
        rules.append(
            _Rule("error", "seats", "must not be negative", t.seats < 0, ("account_id", "seats"))
        )
        rules += _currency_rules(t, config.exchange_rates)
    elif name == "usage_events":
        rules.append(
            _Rule("warning", "user_id", "no user (counted as events, not as users; with no user "
                  "in any row, the features that count users are left out)",
                  t.user_id.isnull(), ("account_id", "ts", "event_type"))
        )  # fmt: skip
        if config.event_counts == "quantity":
            rules.append(_Rule("error", "quantity", "must not be negative (data.event_counts "
                               "is quantity: the events a row stands for)", t.quantity < 0,
                               ("account_id", "ts", "event_type", "quantity")))  # fmt: skip
    elif name == "support_tickets":
        order("resolved_at", "created_at")
    elif name == "contacts":
        order("end_date", "start_date")
        rules.append(
            _Rule(
                "warning",
                "role",
                f"unknown role (ignored; known: {'/'.join(CONTACT_ROLES)})",
                t.role.notin(CONTACT_ROLES),
                ("account_id", "contact_id", "role"),
            )
        )
    elif name == "nps_responses":
        rules.append(
            _Rule(
                "error",
                "score",
                "must be between 0 and 10",
                ~t.score.between(0, 10),
                ("account_id", "submitted_at", "score"),
            )
        )
    return rules


def _run(name: str, t: ir.Table, rules: list[_Rule]) -> list[Finding]:
    """Count every rule's bad rows in one scan; fetch examples only for rules that fail."""
    if not rules:
        return []
    counts = t.aggregate(**{f"r{i}": r.bad.fill_null(False).sum() for i, r in enumerate(rules)})
    row = counts.execute().iloc[0]
    findings = []
    for i, rule in enumerate(rules):
        n = int(row[f"r{i}"] or 0)
        if n:
            examples = t.filter(rule.bad).select(*rule.show).limit(MAX_EXAMPLES).execute()
            findings.append(Finding(rule.level, name, rule.column, rule.rule, n, examples))
    return findings


def _unique(name: str, t: ir.Table) -> list[Finding]:
    key = TABLES[name].key
    if not key:
        return []
    dupes = t.group_by(key).aggregate(n=ibis._.count()).filter(ibis._.n > 1)
    n = int(dupes.n.sum().execute() or 0)
    if not n:
        return []
    examples = dupes.order_by(list(key)).limit(MAX_EXAMPLES).execute()
    return [Finding("error", name, ", ".join(key), "duplicate key", n, examples)]


def _exact_duplicates(name: str, t: ir.Table, rows: int) -> list[Finding]:
    """Rows repeated in every column (an export loaded twice): a warning with the count, once
    they are more than 0.1% of the rows (a busy product logs a few identical events by chance)."""
    if TABLES[name].key or not rows:
        return []
    extra = rows - int(t.distinct().count().execute())
    if extra <= DUPLICATE_SHARE * rows:
        return []
    return [Finding("warning", name, "*", "rows repeated exactly, every column the same (an "
                    "export loaded twice?); they count twice in features unless "
                    "data.dedupe_events is true", extra)]  # fmt: skip


def _outlying_arr(subs: ir.Table, accounts: ir.Table | None) -> list[Finding]:
    """ARR more than 1,000× the median of its segment (or of all rows, without accounts)."""
    paid = subs.filter(subs.arr > 0, ~subs.arr.isinf())
    if accounts is not None:
        paid = paid.left_join(accounts.select("account_id", "segment"), "account_id")
    else:
        paid = paid.mutate(segment=ibis.literal(BOOK))
    paid = paid.mutate(median=paid.arr.median().over(group_by="segment"))
    show = ("account_id", "segment", "arr", "median")
    rule = _Rule("warning", "arr", "more than 1,000× the median ARR of its segment",
                 paid.arr > 1000 * paid.median, show)  # fmt: skip
    return _run("subscriptions", paid, [rule])


def _active_without_subscription(tables: dict[str, ir.Table]) -> list[Finding]:
    """Accounts (in accounts) with usage but no subscription row: they are never scored."""
    events = tables["usage_events"].select("account_id").distinct()
    lone = events.anti_join(tables["subscriptions"], "account_id")
    if "accounts" in tables:  # the others are unknown accounts (`_unknown_accounts`)
        lone = lone.semi_join(tables["accounts"], "account_id")
    n = int(lone.count().execute())
    if not n:
        return []
    examples = lone.order_by("account_id").limit(MAX_EXAMPLES).execute()
    return [Finding("warning", "usage_events", "account_id", "accounts with usage but no "
                    "subscription row (never scored)", n, examples)]  # fmt: skip


_ID_FORMS = {  # another way ids are written → the same id in a form both ways share
    "differ from accounts' only in spaces at their ends (a CSV's or a workbook's are trimmed; "
    "Parquet's, typed by its writer, are not)": lambda v: v.strip(),
    "differ from accounts' only in case": lambda v: v.lower(),
    "match accounts' without leading zeros, which a spreadsheet drops from numbers":
        lambda v: v.re_replace("^0+", ""),
    "match accounts' in their first 15 characters, as Salesforce's 15- and 18-character ids do":
        lambda v: v.substr(0, 15),
}  # fmt: skip
ID_SAMPLE = 1000  # unknown ids told apart from accounts' other ways


def _written_otherwise(orphans: ir.Table, accounts: ir.Table) -> str:
    """Why a table's unknown ids may be accounts' written another way (`_ID_FORMS`): most of a
    sample of them are."""
    ids = orphans.select("account_id").distinct().limit(ID_SAMPLE).to_pyarrow()
    unknown, sample = ibis.memtable(ids), ids.num_rows
    for what, form in _ID_FORMS.items():
        known = accounts.select(same=form(accounts.account_id))
        same = unknown.select(same=form(unknown.account_id)).semi_join(known, "same")
        matched = int(same.count().execute())
        if matched > sample / 2:
            return f"; {matched} of the {sample} unknown ids {what}"
    return ""


def _unknown_accounts(name: str, n: int, rows: int, max_unknown: float,
                      examples: pd.DataFrame, otherwise: str = "") -> Finding:  # fmt: skip
    """`n` of a table's `rows` name an account that accounts does not hold (`otherwise`: what
    `_written_otherwise` says)."""
    share = f"{n / rows:.1%} of the rows"
    if name != "subscriptions" and n <= max_unknown * rows:
        return Finding("warning", name, "account_id", f"account_id not in accounts ({share}; "
                       f"never scored{otherwise})", n, examples)  # fmt: skip
    allowed = ("" if name == "subscriptions" else
               f", above data.max_unknown_accounts = {max_unknown:g}")  # fmt: skip
    return Finding("error", name, "account_id", f"account_id not in accounts ({share}{allowed}:"
                   f" do its ids match accounts'?{otherwise})", n, examples)  # fmt: skip


def _relational(tables: dict[str, ir.Table], counts: dict[str, int],
                max_unknown: float) -> list[Finding]:  # fmt: skip
    """Unknown account ids (errors; warnings in a table other than subscriptions, up to
    `max_unknown` of its rows) and rows outside an account's lifetime (warnings)."""
    accounts = tables["accounts"]
    subs = tables.get("subscriptions")
    findings = []
    life = None
    if subs is not None:
        end = ibis.coalesce(subs.canceled_at, subs.end_date, ibis.date(9999, 12, 31))
        life = subs.group_by("account_id").aggregate(first=subs.start_date.min(), last=end.max())
    for name, t in tables.items():
        if name == "accounts":
            continue
        orphans = t.anti_join(accounts, "account_id")
        n = int(orphans.count().execute())
        if n:
            examples = orphans.select("account_id").distinct().limit(MAX_EXAMPLES).execute()
            findings.append(_unknown_accounts(name, n, counts[name], max_unknown, examples,
                                              _written_otherwise(orphans, accounts)))  # fmt: skip
        time_col = TABLES[name].time_column
        if life is None or name == "subscriptions" or time_col is None:
            continue
        j = t.inner_join(accounts.select("account_id", "signup_date"), "account_id").left_join(
            life, "account_id"
        )
        day = j[time_col].cast("date")
        outside = (day < j.signup_date) | (day > j["last"])
        findings += _run(
            name,
            j,
            [
                _Rule(
                    "warning",
                    time_col,
                    "outside the account's lifetime (before signup_date or "
                    "after its last subscription ends)",
                    outside,
                    ("account_id", time_col),
                )
            ],
        )
    return findings

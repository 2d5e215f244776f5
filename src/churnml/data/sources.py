"""Find the input tables, read them on an engine, and give them the contract's names and types.

Every later stage works on the Ibis tables this module returns, so the same expressions run on
DuckDB (embedded, the default) and on Spark.
"""

from __future__ import annotations

import atexit
import codecs
import csv
import datetime as dt
import functools
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnml.config import DataConfig
from churnml.data.contract import (
    CURRENCY,
    NUMBER_FORMATS,
    TABLES,
    TIME_FORMATS,
    Table,
    unwritten,
)
from churnml.io import atomic_path

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

Engine = Literal["duckdb", "spark"]

_IBIS_TYPES = {
    "id": "string",
    "text": "string",
    "date": "date",
    "timestamp": "timestamp",
    "float": "float64",
    "int": "int64",
}


@dataclass(frozen=True)
class Source:
    """Where one contract table was found, and how its columns are named there."""

    table: Table
    path: str
    fmt: Literal["parquet", "csv", "excel", "folder"]  # folder: of Parquet files, at any depth
    columns: dict[str, str]
    encoding: str = "utf-8"
    formats: dict[str, str] = field(default_factory=dict)  # configured (`TableSource.formats`)
    sheet: str | int = 0  # a workbook's sheet: its name, or 0 for the first

    def user_column(self, name: str) -> str:
        return self.columns.get(name, name)


class MissingTableError(FileNotFoundError):
    """A required table could not be found."""

    def __init__(self, table: str, rule: str) -> None:
        self.table, self.rule = table, rule
        super().__init__(f"table {table}: {rule}")


EXTENSIONS = {  # a file's suffix → how it is read; looked for in this order
    "parquet": "parquet", "csv": "csv", "csv.gz": "csv", "tsv": "csv", "xlsx": "excel",
}  # fmt: skip


def file_format(path: str) -> str:
    """How a file is read, by its suffix (Parquet by default: a URI such as `s3://b/t/`)."""
    return next((fmt for ext, fmt in sorted(EXTENSIONS.items(), key=lambda e: -len(e[0]))
                 if path.lower().endswith(f".{ext}")), "parquet")  # fmt: skip


def locate(data_dir: Path | str, config: DataConfig) -> dict[str, Source]:
    """Find each contract table; absent optional tables are left out (with a logged note). A
    table may also be a sheet named like it in a workbook of the folder."""
    data_dir = Path(data_dir)
    found: dict[str, Source] = {}
    for name, table in TABLES.items():
        spec = config.source(name)
        found_as = [*(f"{name}.{ext}" for ext in EXTENSIONS), f"{name}/"]
        candidates = [spec.path] if spec.path else found_as
        for candidate in candidates:
            path = candidate if "://" in candidate else str(data_dir / candidate)
            if "://" in path or Path(path).exists():
                fmt = file_format(path)
                if Path(path).is_dir():
                    fmt, path = "folder", str(Path(path))
                    if not any(Path(path).rglob("*.parquet")):
                        raise MissingTableError(name, _no_parquet(name, Path(path)))
                sheet = _chosen_sheet(name, spec.sheet, path, fmt)
                found[name] = Source(table, path, fmt, dict(spec.columns), spec.encoding,
                                     dict(spec.formats), sheet)  # fmt: skip
                break
        else:
            if not spec.path and (sheet_in := _sheet_in_workbooks(data_dir, name)):
                found[name] = Source(table, sheet_in[0], "excel", dict(spec.columns),
                                     spec.encoding, dict(spec.formats), sheet_in[1])  # fmt: skip
                continue
            if table.required or spec.path:  # asked for by name: its absence is an error
                what = "required table" if table.required else "table configured but"
                unread = "" if spec.path else _unread(data_dir, name)
                raise MissingTableError(
                    name,
                    f"{what} not found in {data_dir} "
                    f"(looked for {', '.join(candidates)}){unread}; map its "
                    f"path in the config under data.tables.{name}.path",
                )
            log.info("table %s not found: its features are skipped", name)
    return found


def _chosen_sheet(name: str, sheet: str | None, path: str, fmt: str) -> str | int:
    """The sheet of a table's file to read: the configured one (its name, or one that differs
    only in case, spaces and punctuation), else the one named like the table, else the first (0).
    MissingTableError if the configured one is not in the workbook, or the file is none."""
    if fmt != "excel":
        if sheet:
            raise MissingTableError(name, f"data.tables.{name}.sheet is {sheet!r}, but {path} is "
                                    "not a workbook (.xlsx)")  # fmt: skip
        return 0
    sheets = _sheets(path)
    if sheet is None:
        return sheets.get(_plain(name), 0)
    if sheet in sheets.values():
        return sheet
    if _plain(sheet) in sheets:
        return sheets[_plain(sheet)]
    raise MissingTableError(name, f"no sheet {sheet!r} in {path} (its sheets: "
                            f"{', '.join(sheets.values())}); set data.tables.{name}.sheet")


def _sheets(path: Path | str) -> dict[str, str]:
    """A workbook's sheets: each name without case, spaces or punctuation → the name."""
    import openpyxl  # only for workbooks

    book = openpyxl.load_workbook(path, read_only=True)
    try:
        return {_plain(sheet): sheet for sheet in book.sheetnames}
    finally:
        book.close()


def _sheet_in_workbooks(data_dir: Path, name: str) -> tuple[str, str] | None:
    """The workbook of the folder (`*.xlsx`) and its sheet named like the table, if one has one;
    MissingTableError if several do."""
    books = sorted(data_dir.glob("*.xlsx")) if data_dir.is_dir() else []
    named = [(str(book), sheet) for book in books
             if (sheet := _sheets(book).get(_plain(name)))]  # fmt: skip
    if len(named) > 1:
        raise MissingTableError(name, "sheets named like it in " + " and ".join(
            f"{Path(book).name} ({sheet})" for book, sheet in named)
            + f"; set data.tables.{name}.path and sheet")  # fmt: skip
    return named[0] if named else None


def _unread(data_dir: Path, name: str) -> str:
    """The folder's files named like the table in a format not read (`accounts.xls`), if any."""
    others = sorted(p.name for p in data_dir.glob(f"{name}.*")) if data_dir.is_dir() else []
    return (f"; {', '.join(others)}: a format not read here, save it as Parquet, CSV or "
            ".xlsx" if others else "")  # fmt: skip


def _no_parquet(name: str, folder: Path) -> str:
    """Why a table's folder cannot be read, and what to do."""
    csv = next(folder.rglob("*.csv"), None)
    fix = (f"; a folder is read as Parquet parts: write them as Parquet, or set "
           f"data.tables.{name}.path to one CSV file such as {csv}" if csv else "")  # fmt: skip
    return f"folder {folder} holds no .parquet file, in its subfolders neither{fix}"


def connect(engine: Engine = "duckdb", memory_limit: str | None = None) -> ibis.BaseBackend:
    """An Ibis connection: embedded DuckDB (spilling to a temporary folder past `memory_limit`,
    e.g. '4GB'), or local Spark (`[spark]` extra, Java 17)."""
    if engine == "duckdb":
        con = ibis.duckdb.connect()
        # Timestamps are naive UTC: no session time zone may shift a day boundary.
        con.raw_sql("SET TimeZone = 'UTC'; SET preserve_insertion_order = false")
        if memory_limit:
            spill = _scratch() / "duckdb"
            con.raw_sql(f"SET memory_limit = '{memory_limit}'; SET temp_directory = '{spill}'")
        return con
    if engine == "spark":
        return _spark()
    raise ValueError(f"unknown engine {engine!r}; use 'duckdb' or 'spark'")


def cached(expr: ir.Table) -> ir.Table:
    """`expr` computed once and kept by its engine: a DuckDB temp table, or a cached Spark view
    (the view is created first, which registers the plan's in-memory tables, such as calendars:
    ibis 12's `cache` alone does not on Spark). On Spark the view names the tables `expr`
    caches, which ibis drops once `expr` is gone: `expr` is kept as long as the result."""
    con = ibis.get_backend(expr)
    if con.name != "pyspark":
        return expr.cache()
    result = con.create_view(f"churnml_{uuid.uuid4().hex}", expr).cache()
    _VIEWED[result.op()] = expr
    return result


_VIEWED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # a cached view → its plan


def on_engine(like: ir.Table, rows: pa.Table) -> ir.Table:
    """Small in-memory `rows` as a table of `like`'s engine: on DuckDB a temp table, whose
    statistics let a join to it take a perfect hash (0.5 s less for 93 M events than joining the
    Arrow table); on Spark the in-memory table (`cached` registers it)."""
    con = ibis.get_backend(like)
    if con.name == "pyspark":
        return ibis.memtable(rows)
    return con.create_table(f"churnml_{uuid.uuid4().hex}", rows, temp=True)


def spark_frame(table: ir.Table) -> DataFrame:
    """The Spark DataFrame of an Ibis table on Spark (a plan; nothing runs yet)."""
    con = ibis.get_backend(table)
    return con.raw_sql(con.compile(table))


def _spark() -> ibis.BaseBackend:
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "--engine spark needs the spark extra: pip install 'churnml[spark]'"
        ) from exc
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master(os.environ.get("CHURNML_SPARK_MASTER", "local[2]"))
        .appName("churnml")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.driver.memory", "4g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return ibis.pyspark.connect(session)


class DataEncodingError(ValueError):
    """A CSV file that is not in the encoding the config says (UTF-8 by default)."""


def read_raw(con: ibis.BaseBackend, source: Source) -> ir.Table:
    """The table as stored, its columns renamed to the contract's names (types untouched)."""
    return renamed(read_stored(con, source), source)


def renamed(stored: ir.Table, source: Source) -> ir.Table:
    """The contract's columns of a stored table, by their contract names: each the column the
    config maps it to, else the one of that name, else the one whose name differs only in case,
    spaces and punctuation (`Account ID` for `account_id`), if just one does. Ids written as text
    in a CSV or a workbook lose spaces at their ends (`"A001 "` is `A001`)."""
    columns = {name: stored[col] for name, col in contract_names(stored.columns, source).items()}
    if source.fmt in ("csv", "excel"):
        kinds = {c.name: c.kind for c in source.table.columns}
        columns = {name: value.strip() if kinds[name] == "id" and value.type().is_string()
                   else value for name, value in columns.items()}  # fmt: skip
    return stored.select(**columns)


def contract_names(stored: list[str], source: Source) -> dict[str, str]:
    """The contract's columns found among a stored table's (`stored`) → their stored names (see
    `renamed`)."""
    plain: dict[str, list[str]] = {}
    for column in stored:
        plain.setdefault(_plain(column), []).append(column)
    present = {}
    for name in source.table.column_names:
        mapped = source.user_column(name)
        alike = plain.get(_plain(name), [])
        if mapped in stored:
            present[name] = mapped
        elif name not in source.columns and len(alike) == 1:
            present[name] = alike[0]
    return present


def _plain(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def read_stored(con: ibis.BaseBackend, source: Source) -> ir.Table:
    """The table as stored: its own column names and types."""
    if source.fmt == "parquet":
        raw = con.read_parquet(source.path)
    elif source.fmt == "folder":  # Spark lists a folder's files (and partitions) itself
        spark = con.name == "pyspark"
        raw = con.read_parquet(source.path if spark else f"{source.path}/**/*.parquet")
    elif source.fmt == "excel":
        raw = con.read_parquet(_sheet_copy(source))
    else:
        footer = csv_footer(source)
        path = source.path if _utf8(source) and not footer else _utf8_copy(source, footer)
        try:
            raw = con.read_csv(path, **_csv_options(path, con.name))
        except Exception as exc:  # DuckDB's own error type; only an encoding error is ours
            if "utf-8" not in str(exc).lower():
                raise
            line = re.search(r"Line: (\d+)", str(exc))
            raise _encoding_error(source, line.group(1) if line else "?") from None
    return raw


@dataclass(frozen=True)
class Footer:
    """A report's lines after a CSV's rows (`csv_footer`): where they start, and them."""

    start: int  # byte offset
    lines: list[str]


FOOTER_TAIL = 65_536  # the bytes at a CSV's start and end looked at for its dialect and footer


def footer(source: Source) -> list[str]:
    """The lines of a report's footer after a CSV's or a sheet's rows, left out when the table
    is read (Salesforce writes one: a blank line, then 'Confidential Information - Do Not
    Distribute', 'Generated By: …'); none if it has none."""
    if source.fmt == "excel":
        return json.loads(pq.read_schema(_sheet_copy(source)).metadata[FOOTER_KEY])
    found = csv_footer(source)
    return found.lines if found else []


def _footer_start(rows: list[list[str]]) -> int | None:
    """Where a footer starts among a table's last `rows` (each its cells that are not empty):
    after the last row of two cells or more, at the first empty one, if a cell follows it."""
    end = len(rows)
    while end and len(rows[end - 1]) < 2:
        end -= 1
    blank = next((k for k in range(end, len(rows)) if not rows[k]), None)
    return blank if blank is not None and any(rows[blank:]) else None


def csv_footer(source: Source) -> Footer | None:
    """`footer` of a local, uncompressed CSV: lines of one field at most (with their quotes
    closed) after its rows."""
    if source.fmt != "csv" or "://" in source.path or source.path.lower().endswith(".gz"):
        return None
    with open(source.path, "rb") as f:
        head = b"".join(f.readlines(FOOTER_TAIL))  # whole lines (a report's title lines too)
        start = max(f.seek(0, os.SEEK_END) - FOOTER_TAIL, 0)
        f.seek(start)
        lines = f.read().splitlines(keepends=True)[1 if start else 0 :]  # the first may be cut
    try:
        dialect = csv.Sniffer().sniff(head.decode(source.encoding, "replace"), ",;\t|")
    except csv.Error:  # one column: no footer told apart
        return None
    rows = []
    for line in lines:
        text = line.decode(source.encoding, "replace")
        cells = [c.strip() for c in next(csv.reader([text], dialect), []) if c.strip()]
        rows.append(cells if text.count('"') % 2 == 0 else ["open", "quote"])  # not a footer
    at = _footer_start(rows)
    if at is None:
        return None
    cut = sum(map(len, lines[at:]))
    return Footer(start + sum(map(len, lines)) - cut, [c[0] for c in rows[at:] if c])


def _utf8(source: Source) -> bool:
    return codecs.lookup(source.encoding).name == "utf-8"


def _csv_options(path: str, engine: str) -> dict[str, object]:
    """Reader options from what DuckDB's sniffer finds in a local CSV (none for a remote one).
    Spark: the delimiter (its reader would take a comma). DuckDB: dates and timestamps that the
    sniffer would read in a format other than ISO 8601 are kept as text, for `text_formats` to
    read (the sniffer takes day first where the dates fit month first alike)."""
    if "://" in path:
        return {}
    import duckdb

    sep, columns, date, stamp = duckdb.execute(
        "SELECT Delimiter, Columns, DateFormat, TimestampFormat FROM sniff_csv(?)", [path]
    ).fetchone()
    if engine == "pyspark":
        return {"sep": sep}
    guessed = {"DATE": date, "TIMESTAMP": stamp}  # the sniffer's formats (None: ISO 8601)
    local = {kind for kind, fmt in guessed.items() if fmt and not fmt.startswith("%Y-%m-%d")}
    text = {c["name"]: "VARCHAR" for c in columns if c["type"] in local}
    return {"types": text} if text else {}


def _encoding_error(source: Source, line: int | str) -> DataEncodingError:
    name = source.table.name
    return DataEncodingError(
        f"table {name}: {source.path} is not {source.encoding} text (line {line}); set its "
        f"encoding under data.tables.{name}.encoding (e.g. shift_jis, cp932, latin-1)"
    )


@functools.cache
def _scratch() -> Path:
    """This process's temporary folder (UTF-8 copies, DuckDB's spills): made on first use,
    removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="churnml-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _copy_of(source: Source, suffix: str) -> Path:
    """Where this process keeps a copy of the source's file (one per file version and encoding)."""
    path = Path(source.path)
    stat = path.stat()
    key = hashlib.sha256(
        f"{path.resolve()}|{stat.st_mtime_ns}|{source.encoding}|{source.sheet}".encode())
    return _scratch() / f"{key.hexdigest()[:20]}{suffix}"


def _utf8_copy(source: Source, footer: Footer | None = None) -> str:
    """A UTF-8 copy of a CSV (in another encoding, or with a `footer` left out), decoded line by
    line so that an undecodable byte is reported with its line."""
    copy = _copy_of(source, ".csv")
    end = footer.start if footer else None
    if not copy.exists():
        with (
            (gzip.open if source.path.lower().endswith(".gz") else open)(source.path, "rb") as src,
            atomic_path(copy) as tmp,
            tmp.open("w", encoding="utf-8") as out,
        ):
            read = 0
            for number, line in enumerate(src, 1):
                line = line if end is None else line[: end - read]
                read += len(line)
                try:
                    out.write(line.decode(source.encoding))
                except UnicodeDecodeError:
                    raise _encoding_error(source, number) from None
                if end is not None and read >= end:
                    break
    return str(copy)


FOOTER_KEY = b"churnml.footer"  # a sheet's copy: its footer's lines (JSON), left out


def _sheet_copy(source: Source) -> str:
    """An Excel workbook's sheet (`sheet_frame`, its header found by the table's required
    columns) as Parquet, for any engine to read; its footer's lines in the file's metadata."""
    copy = _copy_of(source, ".parquet")
    if not copy.exists():
        named = [source.user_column(c.name) for c in source.table.columns
                 if c.required and not c.instead]  # fmt: skip
        frame, lines = _sheet_table(source.path, source.sheet, named)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = {**(table.schema.metadata or {}), FOOTER_KEY: json.dumps(lines).encode()}
        with atomic_path(copy) as tmp:
            pq.write_table(table.replace_schema_metadata(meta), tmp)
    return str(copy)


HEADER_ROWS = 20  # a sheet's first rows looked at for its header, and last ones for a footer


def sheet_frame(path: Path | str, sheet: str | int = 0) -> pd.DataFrame:
    """A sheet of an Excel workbook (by default the first), as `_sheet_table` reads it."""
    return _sheet_table(path, sheet)[0]


def _sheet_table(path: Path | str, sheet: str | int = 0, header: list[str] | None = None
                 ) -> tuple[pd.DataFrame, list[str]]:  # fmt: skip
    """A sheet's table, and the lines of a footer after it (see `footer`; left out). Only empty
    cells are missing (pandas would also take text such as "NA", a region); columns of text or
    mixed types (such as ids) are text, the rest as stored (dates as dates); text stays text
    ("007" keeps its zeros). The header is the first row, or the first of the first HEADER_ROWS
    that names every column of `header` (case, spaces and punctuation aside): a report's title
    rows above it are left out (the sheet is read again from there)."""
    read = functools.partial(pd.read_excel, path, sheet_name=sheet, engine="openpyxl",
                             dtype=object, **AS_WRITTEN)  # fmt: skip
    cells = read()
    wanted = {_plain(name) for name in header or ()}
    if not wanted <= {_plain(str(c)) for c in cells.columns}:
        row = next((k + 1 for k, r in enumerate(cells.head(HEADER_ROWS).itertuples(index=False))
                    if wanted <= {_plain(str(c)) for c in r}), None)  # fmt: skip
        cells = cells if row is None else read(header=row)
    last = [[str(v).strip() for v in r if pd.notna(v) and str(v).strip()]
            for r in cells.tail(HEADER_ROWS).itertuples(index=False)]  # fmt: skip
    at = _footer_start(last)
    lines = [] if at is None else [r[0] for r in last[at:] if r]
    if at is not None:
        cells = cells.iloc[: len(cells) - len(last) + at]
    frame = cells.infer_objects()  # cells as stored: text that looks like a number stays text
    mixed = [c for c in frame.columns if frame[c].dtype == object]
    return frame.astype(dict.fromkeys(mixed, "string")), lines


AS_WRITTEN = {"keep_default_na": False, "na_values": [""]}  # pandas: only empty cells missing


def read_frame(path: Path | str) -> pd.DataFrame:
    """A Parquet, CSV or Excel (first sheet) file as written: only empty cells are missing.
    ValueError (or OSError) when it cannot be read as its suffix says."""
    path = Path(path)
    if path.suffix == ".parquet" or path.is_dir():
        return pd.read_parquet(path)
    return sheet_frame(path) if path.suffix == ".xlsx" else pd.read_csv(path, **AS_WRITTEN)


UNIX_LIMIT = 1e17  # numbers read as Unix time are below this (in microseconds: year 5138)


DAY_NUMBERS = 1e5  # numbers below this are a spreadsheet's day numbers (to the year 2173)
DIGIT_DATES = (1e7, 1e8)  # whole numbers in this range are dates written as digits, yyyymmdd
SHEET_EPOCH = 25_569  # the day number of 1970-01-01 (day 0 is 1899-12-30)


def number_time(value: ir.NumericValue) -> ir.TimestampValue:
    """Numbers as times (UTC), to the second, each by its size: a spreadsheet's day number
    (below DAY_NUMBERS; its fraction the time of day), a date written as digits (20240131, in
    DIGIT_DATES), else Unix time in seconds, milliseconds or microseconds (below 1e11, 1e14,
    UNIX_LIMIT). Unix time would put the first two in 1970–1973, when no SaaS data was kept."""
    size, digits = value.abs(), _digit_date(value)
    seconds = ibis.cases((size < DAY_NUMBERS, (value - SHEET_EPOCH) * 86_400),
                         (size < 1e11, value), (size < 1e14, value / 1e3),
                         else_=value / 1e6)  # fmt: skip
    unix = seconds.floor().cast("int64").as_timestamp("s")
    return ibis.ifelse(digits, _digits(value, digits).as_timestamp("%Y%m%d"), unix)


def reads_as_time(value: ir.NumericValue) -> ir.BooleanValue:
    """Whether each number reads as a time (`number_time`), on DuckDB (validation's engine): in
    DIGIT_DATES, only a whole yyyymmdd that is a date."""
    digits = _digit_date(value)
    written = try_strptime(_digits(value, digits), "%Y%m%d").notnull()
    in_digits = value.between(*DIGIT_DATES)
    return (value.abs() < UNIX_LIMIT) & (~in_digits | (digits & written))


def _digit_date(value: ir.NumericValue) -> ir.BooleanValue:
    """Whether a number is written as a date in digits (see `number_time`)."""
    return value.between(*DIGIT_DATES) & (value % 1 == 0)


def _digits(value: ir.NumericValue, digits: ir.BooleanValue) -> ir.StringValue:
    """The digits of a number written as a date (`digits`: `_digit_date`), else '19700101'."""
    return ibis.ifelse(digits, value, 19700101).cast("int64").cast("string")


FORMAT_SAMPLE = 10_000  # rows of a table its text columns' formats are told from
FORMAT_FIRST = 100  # of those, the first each format is tried on
MAX_DAYS = 100_000  # distinct days of a whole column that settle a sample's day first or not


@ibis.udf.scalar.builtin(signature=((str, str), "timestamp"))
def try_strptime(text: str, fmt: str) -> dt.datetime:
    """DuckDB's TRY_STRPTIME: the text read in the format, null if it does not fit."""


def formats_of(kind: str) -> tuple[str, ...]:
    """The formats text columns of a contract kind may be written in (none: ids and text)."""
    if kind in ("date", "timestamp"):
        return TIME_FORMATS
    return tuple(NUMBER_FORMATS) if kind in ("float", "int") else ()


def in_format(value: ir.StringValue, kind: str) -> ir.BooleanValue:
    """The rows of a text column of `kind` that its format reads: of dates and timestamps, those
    not in ISO 8601 (read as such in any format: a column may mix the two, as where rows were
    added by hand); every row of numbers (a plain '1.234' is another number in '1.234,5')."""
    if kind in ("date", "timestamp"):
        return _iso(value).isnull()
    return ibis.literal(True)


def _iso(value: ir.StringValue) -> ir.TimestampValue:
    """Text in ISO 8601 as a timestamp, else null. Only text with '-' after its year is cast: a
    cast that fails costs four times a strptime (10 M day-first times: 2.7 s against 0.6 s)."""
    return ibis.ifelse(value.substr(4, 1) == "-", value.try_cast("timestamp"),
                       ibis.null("timestamp"))  # fmt: skip


def read_text(value: ir.StringValue, kind: str, fmt: str) -> ir.Value:
    """Text in a format (of `formats_of(kind)`) as the kind's type (numbers: as a string to cast;
    times in ISO 8601 as such, see `in_format`), on any engine."""
    if kind in ("date", "timestamp"):
        iso = _iso(value)
        return ibis.ifelse(iso.isnull(), value.as_timestamp(fmt), iso)
    drop, mark = unwritten(fmt)  # spaces, thousands and the currency
    return value.re_replace(drop, "").replace(mark, ".")


def read_numbers(values: pd.Series) -> pd.Series:
    """Numbers as written in a small file (pandas; deals): plain, or in the one format of
    NUMBER_FORMATS that every value fits. What does not read is NaN; ValueError if two formats
    fit alike or the amounts are in more than one currency."""
    plain = pd.to_numeric(values, errors="coerce")
    if (plain.notna() | values.isna()).all():
        return plain
    text = values.dropna().astype(str).str.strip()
    fits = [fmt for fmt, pattern in NUMBER_FORMATS.items()
            if text.str.match(pattern).all()]  # fmt: skip
    currencies = text.str.extract(CURRENCY)[0].dropna().unique()
    if len(currencies) > 1:
        raise ValueError(f"its amounts are in more than one currency ({', '.join(currencies)})")
    if len(fits) > 1:
        example = text[plain.reindex(text.index).isna()].iloc[0]
        raise ValueError(f"its numbers read as {' and '.join(map(repr, fits))} alike (e.g. "
                         f"{example!r}); write them plain")  # fmt: skip
    if not fits:
        return plain
    drop, mark = unwritten(fits[0])
    digits = values.astype("string").str.replace(drop, "", regex=True).str.replace(mark, ".")
    return pd.to_numeric(digits, errors="coerce").astype(float)


def currency(value: ir.StringValue) -> ir.StringValue:
    """The currency a number is written with ('$', 'EUR', …; see `NUMBER_FORMATS`), null if
    none."""
    return value.re_extract(CURRENCY, 0).nullif("")


WRITTEN_CODES = {"€": "EUR", "£": "GBP", "¥": "JPY", "円": "JPY", "₩": "KRW", "₹": "INR",
                 "US$": "USD", "C$": "CAD", "CA$": "CAD", "A$": "AUD", "AU$": "AUD",
                 "NZ$": "NZD", "HK$": "HKD", "S$": "SGD", "R$": "BRL", "MX$": "MXN"}  # fmt: skip


def currency_of(value: ir.StringValue) -> ir.StringValue:
    """The code of the currency a number is written with: an ISO code as written, a mark that
    names one currency (`WRITTEN_CODES`; ¥ is read as yen, as amounts without cents are), else
    null ('$' names several)."""
    mark = currency(value)
    known = ibis.cases(*((mark == m, c) for m, c in WRITTEN_CODES.items()),
                       else_=ibis.null("string"))  # fmt: skip
    return ibis.ifelse(mark.re_search("^[A-Z]{3}$"), mark, known)


def fits_text(value: ir.StringValue, fmt: str) -> ir.BooleanValue:
    """Whether text is written in the format, on DuckDB (validation's engine); a date must be
    in a year from 1900 to 2199 (%Y reads '24' as the year 24)."""
    if fmt in NUMBER_FORMATS:
        return value.strip().re_search(NUMBER_FORMATS[fmt])
    return try_strptime(value, fmt).year().between(1900, 2199).fill_null(False)


def text_formats(raw: ir.Table, source: Source) -> dict[str, tuple[str, ...]]:
    """Each date, timestamp or number column stored as text that does not read as ISO 8601 or a
    plain number → the formats it may be read in: its configured one; else those of its kind
    (`formats_of`) that every value of a sample fits, and where several do, those the whole
    column fits (`_by_whole_column`; one: it is read so; none or several: validation asks for
    it in the config)."""
    texts = [c for c in source.table.columns if formats_of(c.kind)
             and c.name in raw.columns and raw[c.name].type().is_string()]  # fmt: skip
    out = {c.name: (source.formats[c.name],) for c in texts if c.name in source.formats}
    todo = [c for c in texts if c.name not in out]
    if not todo:
        return out
    sample = raw.select(*(c.name for c in todo)).limit(FORMAT_SAMPLE).to_pyarrow()
    con = ibis.duckdb.connect()
    for c in todo:
        written = sample[c.name].drop_null()
        values = ibis.memtable(pa.table({"v": written}))
        unread = values.v.try_cast(_IBIS_TYPES[c.kind]).isnull().sum()
        if not len(written) or not con.execute(unread):
            continue  # empty, ISO 8601 or plain numbers
        values, fits = values.filter(in_format(values.v, c.kind)), formats_of(c.kind)
        for rows in (values.limit(FORMAT_FIRST), values):  # most formats fail on a few rows
            fits = _fitting(con, rows, fits)
        out[c.name] = _by_whole_column(con, raw[c.name], fits) if len(fits) > 1 else fits
        log.info("table %s, column %s: formats that read it: %s",
                 source.table.name, c.name, ", ".join(out[c.name]) or "none")  # fmt: skip
    return out


def _by_whole_column(con: ibis.BaseBackend, value: ir.StringValue, formats: tuple[str, ...]
                     ) -> tuple[str, ...]:  # fmt: skip
    """Those of `formats` (all fitting the sample) that the whole column fits, by one more scan,
    only then: an export sorted by time may start with days 1–12 only, which read day first and
    month first alike (here, their day parts, before the first space), and amounts below a
    million with a thousands mark only (`150,000`) read as 150 and 150,000 alike. Amounts that
    fit both formats all through are read in the one whose decimal mark none of them uses if
    they are in a currency without cents (yen, won)."""
    if all(fmt in NUMBER_FORMATS for fmt in formats):
        return _amounts(value, formats)
    days = {fmt.split(" ")[0] for fmt in formats}
    if len(days) == 1:
        return formats  # the same days with other clocks
    t = value.name("v").as_table()
    t = t.filter(in_format(t.v, "timestamp"))  # ISO 8601 rows are read as such
    written = t.v.strip().split(" ")[0].name("v").as_table().distinct().limit(MAX_DAYS)
    fit = _fitting(con, ibis.memtable(written.to_pyarrow()), tuple(sorted(days)))
    return tuple(fmt for fmt in formats if fmt.split(" ")[0] in fit)


WHOLE_CURRENCIES = ("JPY", "KRW")  # no cents: an amount has no decimals


def _amounts(value: ir.StringValue, formats: tuple[str, ...]) -> tuple[str, ...]:
    """`_by_whole_column` for amounts, on the table's engine."""
    t = value.name("v").as_table()
    text = t.v.strip()
    found = t.filter(text.notnull()).aggregate(
        **{f"misfit{k}": (~text.re_search(NUMBER_FORMATS[f])).any() for k, f in enumerate(formats)},
        **{f"mark{k}": text.contains(f[-2]).any() for k, f in enumerate(formats)},
        whole=currency_of(text).isin(WHOLE_CURRENCIES).fill_null(False).all(),
    ).to_pyarrow().to_pylist()[0]
    fits = [k for k in range(len(formats)) if not found[f"misfit{k}"]]
    if len(fits) > 1 and found["whole"]:  # no decimals: the mark no amount uses
        fits = [k for k in fits if not found[f"mark{k}"]] or fits
    return tuple(formats[k] for k in fits)


def _fitting(con: ibis.BaseBackend, values: ir.Table, formats: tuple[str, ...]
             ) -> tuple[str, ...]:  # fmt: skip
    """Those of `formats` that every text in `values.v` fits."""
    if not formats:
        return ()
    misfits = values.aggregate(**{f"f{k}": (~fits_text(values.v, fmt)).sum()
                                  for k, fmt in enumerate(formats)})  # fmt: skip
    counts = con.execute(misfits).iloc[0]
    return tuple(fmt for k, fmt in enumerate(formats) if not counts[f"f{k}"])


def typed(raw: ir.Table, table: Table, formats: dict[str, tuple[str, ...]] | None = None
          ) -> ir.Table:  # fmt: skip
    """Cast every contract column to its contract type; absent optional columns become nulls
    (or their contract default), empty values their column's fill (if it has one).

    Ids are strings, except that integer ids other than `account_id` (the join key) stay integers.
    Ids stored as floats are whole numbers (validated), read as integers: 42, not 42.0. Dates
    and timestamps stored as numbers are read by `number_time`. Dates, timestamps and numbers
    stored as text are ISO 8601 or plain numbers, or read in their format (`text_formats`, if
    it found just one).
    """
    cols, written = {}, _written_currency(raw, formats or {})
    for column in table.columns:
        dtype = _IBIS_TYPES[column.kind]
        if column.name in raw.columns:
            value = raw[column.name]
            if column.kind in ("date", "timestamp") and value.type().is_numeric():
                value = number_time(value)
            if len((formats or {}).get(column.name, ())) == 1:
                value = read_text(value, column.kind, formats[column.name][0])
            if column.kind == "id" and value.type().is_floating():  # pandas: ints with blanks
                value = value.cast("int64")
            keep = column.kind == "id" and column.name != "account_id" and value.type().is_integer()
            value = value if keep or value.type() == ibis.dtype(dtype) else value.cast(dtype)
            cols[column.name] = value if column.fill is None else value.fill_null(column.fill)
        elif column.name == "currency" and written is not None:
            cols[column.name] = written
        else:
            absent = column.default
            cols[column.name] = ibis.null(dtype) if absent is None else ibis.literal(absent, dtype)
    return raw.select(**cols)


def _written_currency(raw: ir.Table, formats: dict[str, tuple[str, ...]]) -> ir.StringValue | None:
    """Where amounts are read in a number format, each row's currency code as they are written
    (`¥337,500`: JPY; see `currency_of`): the currency of a table without that column."""
    codes = [currency_of(raw[name]) for name, fits in formats.items()
             if len(fits) == 1 and fits[0] in NUMBER_FORMATS]  # fmt: skip
    return functools.reduce(lambda a, b: a.fill_null(b), codes) if codes else None


def load_tables(
    data_dir: Path | str, config: DataConfig, con: ibis.BaseBackend,
    formats: dict[str, dict[str, tuple[str, ...]]] | None = None,
) -> dict[str, ir.Table]:
    """Typed Ibis tables for every table found (call `validate` first for clear errors); text
    columns read in `formats` (by table; validation's, on the same engine), else in those
    `text_formats` finds; with
    `data.event_counts: quantity`, usage events carry `row_events` (the events each row stands
    for, see `churnml.features.rollups.event_count`); with `data.dedupe_events`, usage events
    repeated in every column count once."""
    tables = {}
    for name, source in locate(data_dir, config).items():
        raw = read_raw(con, source)
        found = text_formats(raw, source) if formats is None else formats.get(name, {})
        tables[name] = typed(raw, source.table, found)
    if "subscriptions" in tables:
        tables["subscriptions"] = as_arr(tables["subscriptions"], config.exchange_rates)
    if config.event_counts == "quantity" and "usage_events" in tables:
        events = tables["usage_events"]
        tables["usage_events"] = events.mutate(row_events=events.quantity.fill_null(1))
    if config.dedupe_events and "usage_events" in tables:
        tables["usage_events"] = tables["usage_events"].distinct()
    return tables


def as_arr(subs: ir.Table, rates: dict[str, float]) -> ir.Table:
    """Subscriptions with ARR, yearly and in the book's currency: `arr`, else 12 × `mrr` (monthly
    recurring revenue, as billing systems export it; then left out); each row's times its
    currency's rate, where `data.exchange_rates` gives rates (a row without one, which
    validation reports, as written)."""
    subs = subs.mutate(arr=subs.arr.fill_null(subs.mrr * 12)).drop("mrr")
    if not rates:
        return subs
    code = currency_code(subs)
    rate = ibis.cases(*((code == name, value) for name, value in rates.items()), else_=1.0)
    return subs.mutate(arr=subs.arr * rate)


def currency_code(subs: ir.Table) -> ir.StringValue:
    """A subscription's currency as its code: 'eur ' is EUR."""
    return subs.currency.strip().upper()


def book_currency(subs: ir.Table) -> str | None:
    """The one currency code every subscription is in; None without a `currency` column, or
    where it holds several codes or an empty one."""
    if "currency" not in subs.columns:
        return None
    codes = subs.select(code=currency_code(subs)).code.value_counts().execute()
    code = codes.iloc[0, 0] if len(codes) == 1 else None
    return code if isinstance(code, str) and code else None


def ibis_type(kind: str) -> str:
    return _IBIS_TYPES[kind]

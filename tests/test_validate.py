"""`churnml validate`: each broken rule is caught, named and shown; a clean world passes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from tests.helpers import partition_by_month
from typer.testing import CliRunner

from churnml.cli import app
from churnml.config import DataConfig, TableSource
from churnml.data import load, sources
from churnml.data import validate as validation
from churnml.data.sources import book_currency, connect, load_tables, text_formats
from churnml.data.synthetic import generate_world
from churnml.data.validate import validate


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "world"
    generate_world(out, n_accounts=40, months=6, seed=1, truth_paths=4)
    return out


@pytest.fixture
def world(tiny_world: Path, tmp_path: Path) -> Path:
    """A fresh, writable copy of the tiny world."""
    return Path(shutil.copytree(tiny_world, tmp_path / "world"))


def _edit(world: Path, table: str, change) -> pd.DataFrame:
    path = world / f"{table}.parquet"
    df = change(pd.read_parquet(path))
    df.to_parquet(path, index=False)
    return df


def _only_error(world: Path, config: DataConfig | None = None):
    report = validate(world, config or DataConfig())
    assert len(report.errors) == 1, str(report)
    return report.errors[0]


def test_generated_world_is_valid(world: Path) -> None:
    report = validate(world, DataConfig())
    assert report.ok, str(report)
    assert report.row_counts["usage_events"] > 0


def _in_parts(world: Path, table: str) -> None:
    """`table`.parquet as two parts directly in a folder `table/`."""
    df = pd.read_parquet(world / f"{table}.parquet")
    (world / table).mkdir()
    for i, part in enumerate((df.iloc[: len(df) // 2], df.iloc[len(df) // 2 :])):
        part.to_parquet(world / table / f"part-{i}.parquet", index=False)
    (world / f"{table}.parquet").unlink()


@pytest.mark.parametrize("layout", ["parts", "hive"])
def test_a_table_in_a_folder_reads_as_the_one_file_it_was(world: Path, layout: str) -> None:
    """Parts directly in the folder, or Hive partitions (`month=2024-01/part-0.parquet`)."""
    events = pd.read_parquet(world / "usage_events.parquet")
    if layout == "hive":
        partition_by_month(world, "usage_events", "ts")
    else:
        _in_parts(world, "usage_events")
    report = validate(world, DataConfig())
    assert report.ok, str(report)
    read = load_tables(world, DataConfig(), connect())["usage_events"].to_pandas()
    assert list(read.columns) == list(events.columns)  # `month` is the path's, not the table's
    order = ["ts", "user_id", "event_type"]
    pd.testing.assert_frame_equal(read.sort_values(order, ignore_index=True),
                                  events.sort_values(order, ignore_index=True),
                                  check_dtype=False)  # fmt: skip


def test_ids_stored_as_floats_match_the_same_ids_stored_as_integers(world: Path) -> None:
    """pandas stores an integer column with blanks as floats: 42.0 must still match 42."""
    def numbered(kind: type):
        return lambda df: df.assign(account_id=df.account_id.str[1:].astype(int).astype(kind))

    for path in world.glob("*.parquet"):
        _edit(world, path.stem, numbered(int if path.stem == "accounts" else float))
    report = validate(world, DataConfig())
    assert report.ok, str(report)
    events = load_tables(world, DataConfig(), connect())["usage_events"]
    assert events.account_id.to_pandas().str.fullmatch(r"\d+").all()  # 42, not 42.0
    _edit(world, "usage_events", lambda df: df.assign(
        account_id=df.account_id.where(df.index > 0, 1.5)))  # fmt: skip
    error = _only_error(world)
    assert (error.column, error.rule, error.rows) == ("account_id", "values that are not whole "
                                                      "numbers", 1)  # fmt: skip


@pytest.mark.parametrize("unit", ["s", "ms", "us"])
def test_timestamps_stored_as_unix_time_read_as_the_times_they_are(world: Path, unit: str) -> None:
    """Event exports often store epoch numbers: seconds, milliseconds or microseconds, told
    apart by their size; a number too large for any of them is an error."""
    events = pd.read_parquet(world / "usage_events.parquet")
    seconds = events.ts.astype("datetime64[s]")
    _edit(world, "usage_events", lambda df: df.assign(
        ts=seconds.astype("int64") * {"s": 1, "ms": 1_000, "us": 1_000_000}[unit]))  # fmt: skip
    report = validate(world, DataConfig())
    assert report.ok, str(report)
    read = load_tables(world, DataConfig(), connect())["usage_events"].ts.to_pandas()
    assert (read.to_numpy() == seconds.to_numpy()).all()
    _edit(world, "usage_events", lambda df: df.assign(ts=df.ts.where(df.index > 0, 10**18)))
    error = _only_error(world)
    assert (error.column, error.rows) == ("ts", 1) and "Unix time" in error.rule


def test_dates_stored_as_day_numbers_or_digits_read_as_the_dates_they_are(world: Path) -> None:
    """A sheet's date cells saved as numbers (45292.5 is 2024-01-01 12:00) and a warehouse's
    date keys (20240131): read as those times, not as Unix seconds in 1970; digits that are no
    date are an error."""
    subs = pd.read_parquet(world / "subscriptions.parquet")
    day_numbers = (subs.start_date.astype("datetime64[s]") - pd.Timestamp("1899-12-30")) \
        / pd.Timedelta(days=1) + 0.5  # noon
    digits = pd.to_datetime(subs.end_date).dt.strftime("%Y%m%d").astype(float)
    _edit(world, "subscriptions", lambda df: df.assign(start_date=day_numbers, end_date=digits))
    assert validate(world, DataConfig()).ok
    read = load_tables(world, DataConfig(), connect())["subscriptions"].to_pandas()
    assert (read.start_date.to_numpy() == pd.to_datetime(subs.start_date).to_numpy()).all()
    assert read.end_date.equals(pd.to_datetime(subs.end_date).astype(read.end_date.dtype))
    _edit(world, "subscriptions", lambda df: df.assign(end_date=[20241331.0, 20240101.5,
                                                                 *df.end_date[2:]]))
    error = _only_error(world)
    assert (error.column, error.rows) == ("end_date", 2)
    assert "a date as digits, yyyymmdd" in error.rule


def test_a_folder_without_parquet_files_is_a_clear_error(world: Path) -> None:
    (world / "usage_events.parquet").unlink()
    (world / "usage_events" / "2024").mkdir(parents=True)
    (world / "usage_events" / "2024" / "events.csv").write_text("account_id\n")
    error = _only_error(world)
    assert error.table == "usage_events"
    assert error.rule.startswith(f"folder {world / 'usage_events'} holds no .parquet file")
    assert "data.tables.usage_events.path to one CSV file" in error.rule  # it holds a CSV


def test_only_the_three_required_tables_are_needed(world: Path) -> None:
    for table in (
        "onboarding_milestones",
        "support_tickets",
        "nps_responses",
        "contacts",
        "cs_touchpoints",
    ):
        (world / f"{table}.parquet").unlink()
    report = validate(world, DataConfig())
    assert report.ok, str(report)
    assert set(report.row_counts) == {"accounts", "subscriptions", "usage_events"}


def test_a_one_product_book_may_leave_out_the_product_column(world: Path) -> None:
    _edit(world, "subscriptions", lambda df: df.drop(columns=["product"]))
    report = validate(world, DataConfig())
    assert report.ok, str(report)
    subs = load_tables(world, DataConfig(), connect())["subscriptions"].to_pandas()
    assert (subs["product"] == "product").all() and len(subs) > 0


def test_accounts_without_a_segment_are_unsegmented(world: Path) -> None:
    """A CRM export leaves a few segments empty (a warning); a one-segment book has no column."""
    accounts = _edit(world, "accounts", lambda df: df.assign(
        segment=df.segment.where(df.index >= 3, None)))  # fmt: skip
    report = validate(world, DataConfig())
    assert report.ok, str(report)
    empty = [w for w in report.warnings if w.column == "segment"]
    assert [(w.table, w.rows, w.rule) for w in empty] == [
        ("accounts", 3, "empty: read as 'unsegmented'")]
    assert list(empty[0].examples.account_id) == list(accounts.account_id[:3])
    read = load_tables(world, DataConfig(), connect())["accounts"].to_pandas()
    segments = read.set_index("account_id").segment[accounts.account_id]
    assert (segments.to_numpy() == accounts.segment.fillna("unsegmented").to_numpy()).all()
    _edit(world, "accounts", lambda df: df.assign(segment=df.segment.where(df.index != 4, "all")))
    error = _only_error(world)  # metrics name the whole book so
    assert (error.column, error.rows, list(error.examples.segment)) == ("segment", 1, ["all"])
    _edit(world, "accounts", lambda df: df.drop(columns=["segment"]))
    report = validate(world, DataConfig())
    assert report.ok and not [w for w in report.warnings if w.column == "segment"], str(report)
    read = load_tables(world, DataConfig(), connect())["accounts"].to_pandas()
    assert set(read.segment) == {"unsegmented"}


def test_a_negative_count_in_a_rollup_of_the_events_is_an_error(world: Path) -> None:
    _edit(world, "usage_events",
          lambda df: df.assign(quantity=df.quantity.where(df.index != 2, -3.0)))
    assert validate(world, DataConfig()).ok  # a quantity, not a count of events
    error = _only_error(world, DataConfig(event_counts="quantity"))
    assert (error.column, error.rows, list(error.examples.quantity)) == ("quantity", 1, [-3.0])


def test_missing_required_table(world: Path) -> None:
    (world / "usage_events.parquet").unlink()
    error = _only_error(world)
    assert (error.table, error.rule.split(" (")[0]) == (
        "usage_events",
        f"required table not found in {world}",
    )


def test_missing_column(world: Path) -> None:
    _edit(world, "accounts", lambda df: df.drop(columns="signup_date"))
    error = _only_error(world)
    assert (error.table, error.column) == ("accounts", "signup_date")
    assert error.rule.startswith("required column missing")


def test_arr_or_mrr(world: Path) -> None:
    """ARR may come as monthly revenue (12× `mrr`); without either, the error names both."""
    subs = _edit(world, "subscriptions", lambda df: df.rename(columns={"arr": "MRR"}))
    assert validate(world, DataConfig()).ok
    read = load_tables(world, DataConfig(), connect())["subscriptions"].arr.to_pandas()
    assert read.to_numpy() == pytest.approx(12 * subs.MRR.to_numpy())
    with pd.ExcelWriter(world / "billing.xlsx") as book:  # a title above: the header is found
        subs.to_excel(book, sheet_name="Subscriptions", startrow=2, index=False)
        book.sheets["Subscriptions"]["A1"] = "Billing export"
    (world / "subscriptions.parquet").rename(world / "subscriptions.bak")
    assert validate(world, DataConfig()).ok
    (world / "billing.xlsx").unlink()
    (world / "subscriptions.bak").rename(world / "subscriptions.parquet")
    _edit(world, "subscriptions", lambda df: df.drop(columns="MRR"))
    error = _only_error(world)
    assert (error.column, error.rule.split(" from")[0]) == ("arr", "required column (or mrr) "
                                                            "missing")  # fmt: skip


def test_a_table_with_none_of_the_contracts_columns(world: Path) -> None:
    """Each required column is named (before: an unexpected error on an empty projection)."""
    _edit(world, "accounts", lambda df: df.set_axis([f"Spalte {k}" for k in range(df.shape[1])],
                                                    axis=1))  # fmt: skip
    report = validate(world, DataConfig())
    assert [(e.table, e.column) for e in report.errors] == [("accounts", "account_id"),
                                                            ("accounts", "signup_date")]


def test_unparseable_timestamps(world: Path) -> None:
    def garble(df: pd.DataFrame) -> pd.DataFrame:
        df["created_at"] = df["created_at"].astype(str)
        df.loc[[0, 3], "created_at"] = "yesterday-ish"
        return df

    _edit(world, "support_tickets", garble)
    error = _only_error(world)
    assert (error.table, error.column, error.rows) == ("support_tickets", "created_at", 2)
    assert "cannot be parsed" in error.rule and "ISO 8601" in error.rule
    assert list(error.examples["created_at"]) == ["yesterday-ish", "yesterday-ish"]


def test_wrong_type(world: Path) -> None:
    def words(df: pd.DataFrame) -> pd.DataFrame:
        df["arr"] = df["arr"].astype(str)
        df.loc[1, "arr"] = "a lot"
        return df

    _edit(world, "subscriptions", words)
    error = _only_error(world)
    assert (error.table, error.column, error.rows) == ("subscriptions", "arr", 1)


def test_null_key(world: Path) -> None:
    _edit(world, "accounts", lambda df: df.assign(account_id=df.account_id.mask(df.index < 2)))
    report = validate(world, DataConfig())
    nulls = [e for e in report.errors if e.rule == "must not be null"]
    assert [(e.table, e.column, e.rows) for e in nulls] == [("accounts", "account_id", 2)]


def test_duplicate_key(world: Path) -> None:
    _edit(world, "accounts", lambda df: pd.concat([df, df.head(3)], ignore_index=True))
    error = _only_error(world)
    assert (error.table, error.column, error.rule, error.rows) == (
        "accounts",
        "account_id",
        "duplicate key",
        6,
    )
    assert len(error.examples) == 3


def test_end_before_start(world: Path) -> None:
    def swap(df: pd.DataFrame) -> pd.DataFrame:
        annual = df.index[df.end_date.notna()][:4]
        df.loc[annual, "end_date"] = df.loc[annual, "start_date"] - pd.Timedelta(days=5)
        return df

    _edit(world, "subscriptions", swap)
    error = _only_error(world)
    assert (error.table, error.column, error.rule, error.rows) == (
        "subscriptions",
        "end_date",
        "must be after start_date",
        4,
    )
    assert {"start_date", "end_date"} <= set(error.examples.columns)


def test_negative_arr(world: Path) -> None:
    _edit(world, "subscriptions", lambda df: df.assign(arr=df.arr.where(df.index != 0, -10.0)))
    error = _only_error(world)
    assert (error.column, error.rows) == ("arr", 1)
    assert error.rule.startswith("must not be negative")
    assert error.examples["arr"].tolist() == [-10.0]


def test_nps_outside_0_to_10(world: Path) -> None:
    _edit(world, "nps_responses", lambda df: df.assign(score=df.score.where(df.index > 1, 11)))
    error = _only_error(world)
    assert (error.table, error.column, error.rows) == ("nps_responses", "score", 2)
    assert "between 0 and 10" in error.rule


def test_unknown_account_ids(world: Path) -> None:
    """In subscriptions always an error; elsewhere a warning up to data.max_unknown_accounts of
    the rows (test workspaces the CRM does not hold), above it an error (ids that do not match)."""
    tickets = pd.read_parquet(world / "support_tickets.parquet")
    _edit(world, "support_tickets", lambda df: df.assign(
        account_id=df.account_id.where(df.index > 0, "A999999")))  # fmt: skip
    [warning] = [w for w in validate(world, DataConfig()).warnings if w.column == "account_id"]
    assert (warning.table, warning.rows) == ("support_tickets", 1)
    share = f"{1 / len(tickets):.1%} of the rows"
    assert warning.rule == f"account_id not in accounts ({share}; never scored)"
    error = _only_error(world, DataConfig(max_unknown_accounts=0))
    assert (error.table, error.column, error.rows) == ("support_tickets", "account_id", 1)
    assert error.rule.startswith("account_id not in accounts") and "do its ids match" in error.rule
    assert error.examples["account_id"].tolist() == ["A999999"]
    _edit(world, "usage_events", lambda df: df.assign(
        account_id=df.account_id.where(df.index > 0, "A999997")))  # fmt: skip
    rules = _warnings(world)  # unknown, not also "usage but no subscription"
    assert not any(r.startswith("accounts with usage but no subscription") for r in rules)
    _edit(world, "subscriptions", lambda df: df.assign(
        account_id=df.account_id.where(df.index > 0, "A999998")))  # fmt: skip
    error = _only_error(world)
    assert (error.table, error.rows, error.examples["account_id"].tolist()) == (
        "subscriptions", 1, ["A999998"])


@pytest.mark.parametrize(("ids", "tickets", "said"), [
    (str, str.lower, "differ from accounts' only in case"),
    (str, lambda i: f"{i}   ", "differ from accounts' only in spaces at their ends"),
    (lambda i: i[1:], lambda i: i[1:].lstrip("0"), "match accounts' without leading zeros"),
    (lambda i: f"0015g0000{i[1:]}AQX", lambda i: f"0015g0000{i[1:]}",
     "match accounts' in their first 15 characters"),
])  # fmt: skip
def test_unknown_ids_written_another_way_say_so(world: Path, ids, tickets, said: str) -> None:
    for path in world.glob("*.parquet"):
        form = tickets if path.stem == "support_tickets" else ids
        _edit(world, path.stem, lambda df, f=form: df.assign(account_id=df.account_id.map(f)))
    error = _only_error(world, DataConfig(max_unknown_accounts=0))
    assert (error.table, error.column) == ("support_tickets", "account_id")
    unknown = pd.read_parquet(world / "support_tickets.parquet").account_id.nunique()
    assert f"; {unknown} of the {unknown} unknown ids {said}" in error.rule


def test_rows_outside_lifetime_are_warnings(world: Path) -> None:
    def early(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[:2, "ts"] = pd.Timestamp("2001-01-01")
        return df

    _edit(world, "usage_events", early)
    report = validate(world, DataConfig())
    assert report.ok
    [warning] = report.warnings
    assert (warning.table, warning.column, warning.rows) == ("usage_events", "ts", 3)


def test_csv_and_a_column_mapping(world: Path) -> None:
    accounts = pd.read_parquet(world / "accounts.parquet").rename(
        columns={"account_id": "AccountId"}
    )
    (world / "accounts.parquet").unlink()
    accounts.to_csv(world / "crm_accounts.csv", index=False)
    config = DataConfig(
        tables={
            "accounts": TableSource(path="crm_accounts.csv", columns={"account_id": "AccountId"})
        }
    )
    assert validate(world, config).ok
    assert not validate(world, DataConfig()).ok


def test_column_names_that_differ_in_case_and_spacing_need_no_mapping(world: Path) -> None:
    """A CRM export's `Account ID`, `Segment`, `SignupDate` are the contract's columns; ids
    typed with a space at the end match; a missing column is named with the file's columns."""
    accounts = pd.read_parquet(world / "accounts.parquet")
    (world / "accounts.parquet").unlink()
    accounts.rename(columns={"account_id": "Account ID", "segment": "Segment",
                             "signup_date": "SignupDate"}).to_csv(world / "accounts.csv",
                                                                  index=False)  # fmt: skip
    assert validate(world, DataConfig()).ok
    read = load_tables(world, DataConfig(), connect())["accounts"].to_pandas()
    assert list(read.account_id) == list(accounts.account_id)
    assert list(read.segment) == list(accounts.segment)
    padded = accounts.assign(account_id=accounts.account_id + " ")  # typed by hand
    padded.to_csv(world / "accounts.csv", index=False)
    assert validate(world, DataConfig()).ok  # its ids still match the other tables'
    read = load_tables(world, DataConfig(), connect())["accounts"].to_pandas()
    assert list(read.account_id) == list(accounts.account_id)
    accounts.rename(columns={"signup_date": "Created"}).to_csv(world / "accounts.csv", index=False)
    error = _only_error(world)
    assert (error.column, error.rows) == ("signup_date", 0)
    assert "columns found: account_id, segment, Created, account_name" in error.rule


def test_cli_exits_non_zero_and_names_the_rule(world: Path) -> None:
    _edit(world, "subscriptions", lambda df: df.assign(arr=df.arr.where(df.index != 0, -1.0)))
    result = CliRunner().invoke(app, ["validate", "--data", str(world)])
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert "table subscriptions, column arr: must not be negative (" in said and "(1 rows)" in said


def test_cli_accepts_a_clean_world(world: Path) -> None:
    result = CliRunner().invoke(app, ["validate", "--data", str(world)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_cli_reports_a_bad_config(world: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("data:\n  tables:\n    acounts: {path: x.csv}\n")
    result = CliRunner().invoke(app, ["validate", "--data", str(world), "--config", str(config)])
    assert result.exit_code == 1
    assert "unknown table 'acounts'" in result.output


# -- what used to pass silently ------------------------------------------------------------------
def _warnings(world: Path) -> dict[str, object]:
    report = validate(world, DataConfig())
    assert report.ok, str(report)
    return {f.rule: f for f in report.warnings}


def test_events_loaded_twice_are_a_warning_with_the_count(world: Path) -> None:
    events = pd.read_parquet(world / "usage_events.parquet")
    twice = events.drop_duplicates().head(len(events) // 10)
    _edit(world, "usage_events", lambda df: pd.concat([df, twice]))
    found = {r: f for r, f in _warnings(world).items() if "repeated exactly" in r}
    assert [f.rows for f in found.values()] == [len(events) - len(events.drop_duplicates())
                                                + len(twice)]  # fmt: skip


def test_infinite_arr_is_an_error(world: Path) -> None:
    inf = float("inf")
    _edit(world, "subscriptions", lambda df: df.assign(arr=df.arr.where(df.index != 2, inf)))
    error = _only_error(world)
    assert (error.column, error.rule, error.rows) == ("arr", "must be a finite number", 1)


def test_absurd_arr_is_a_warning(world: Path) -> None:
    _edit(world, "subscriptions", lambda df: df.assign(arr=df.arr.where(df.index != 0, 1e15)))
    rules = _warnings(world)
    assert rules["above data.max_arr = 100,000,000 (is it in cents?)"].rows == 1
    outlier = rules["more than 1,000× the median ARR of its segment"]
    assert outlier.rows == 1 and outlier.examples["arr"].tolist() == [1e15]


def test_events_of_no_user_are_a_warning(world: Path) -> None:
    _edit(world, "usage_events", lambda df: df.assign(user_id=df.user_id.mask(df.index % 50 == 0)))
    anonymous = _warnings(world)["no user (counted as events, not as users; with no user in any "
                                 "row, the features that count users are left out)"]
    events = pd.read_parquet(world / "usage_events.parquet")
    assert (anonymous.table, anonymous.column) == ("usage_events", "user_id")
    assert anonymous.rows == events.user_id.isna().sum() > 0


def test_accounts_with_usage_but_no_subscription_are_a_warning(world: Path) -> None:
    subs = pd.read_parquet(world / "subscriptions.parquet")
    gone = sorted(subs.account_id.unique())[:3]
    _edit(world, "subscriptions", lambda df: df[~df.account_id.isin(gone)])
    lone = _warnings(world)["accounts with usage but no subscription row (never scored)"]
    assert lone.rows == 3 and lone.examples["account_id"].tolist() == gone


def test_an_empty_required_table_is_an_error(world: Path) -> None:
    _edit(world, "usage_events", lambda df: df.head(0))
    error = _only_error(world)
    assert (error.table, error.rule) == ("usage_events", "required table has no rows")
    result = CliRunner().invoke(app, ["train", "--data", str(world)])
    assert result.exit_code == 1 and "required table has no rows" in result.output
    assert "Traceback" not in result.output


def test_a_configured_optional_table_that_is_not_there_is_an_error(world: Path) -> None:
    config = DataConfig(tables={"nps_responses": TableSource(path="exports/nps.csv")})
    error = _only_error(world, config)
    assert error.table == "nps_responses" and "table configured but not found" in error.rule
    assert "exports/nps.csv" in error.rule


def test_a_shift_jis_csv_is_read_with_its_encoding_and_refused_clearly_without(
    world: Path, tmp_path: Path
) -> None:
    accounts = pd.read_parquet(world / "accounts.parquet")
    accounts["account_name"] = "株式会社テスト"
    (world / "accounts.parquet").unlink()
    accounts.to_csv(world / "accounts.csv", index=False, encoding="shift_jis")
    result = CliRunner().invoke(app, ["validate", "--data", str(world)])
    message = "".join(result.output.split())  # whatever the terminal's width wrapped
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "accounts.csvisnotutf-8text(line2)" in message
    assert "data.tables.accounts.encoding" in message
    config = DataConfig(tables={"accounts": TableSource(encoding="shift_jis")})
    assert validate(world, config).ok
    tables = load_tables(world, config, connect())
    assert set(tables["accounts"].account_name.execute()) == {"株式会社テスト"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  tables:\n    accounts: {encoding: klingon}\n")
    refused = CliRunner().invoke(app, ["validate", "--data", str(world), "--config", str(bad)])
    assert refused.exit_code == 1 and "unknown encoding 'klingon'" in refused.output


def _as_csv(world: Path, table: str, sep: str = ",", **columns) -> pd.DataFrame:
    """`table` written as a spreadsheet would: a CSV in which each named column is turned into
    text by its function. Returns the table as it was."""
    df = pd.read_parquet(world / f"{table}.parquet")
    (world / f"{table}.parquet").unlink()
    df.assign(**{c: f(df[c]) for c, f in columns.items()}).to_csv(
        world / f"{table}.csv", sep=sep, index=False, encoding="utf-8-sig")  # fmt: skip
    return df


@pytest.mark.parametrize(("sep", "when", "amount"), [
    (";", "%d.%m.%Y %H:%M", lambda x: f"{x:_.2f}".replace(".", ",").replace("_", ".")),
    (",", "%m/%d/%Y %I:%M %p", lambda x: f"{x:,.2f}"),
    (",", "%Y年%m月%d日 %H:%M", lambda x: f"{x:.2f}"),
    (";", "%d/%m/%Y", lambda x: f"{x:_.2f}\u00a0€".replace(".", ",").replace("_", "\u202f")),
    (",", "%m/%d/%y %I:%M:%S %p", lambda x: f"${x:,.2f}"),
    (",", "%Y/%m/%d %H:%M:%S", lambda x: f"{x:.2f} JPY"),
])  # fmt: skip
def test_dates_and_numbers_written_the_local_way_read_as_they_were(
    world: Path, sep: str, when: str, amount
) -> None:
    """Spreadsheet exports write times day first, month first or in Japanese, and amounts with
    a decimal comma or thousands separators, and with a currency: each read as written, with no
    setting."""
    events = _as_csv(world, "usage_events", sep, ts=lambda ts: ts.dt.strftime(when))
    subs = _as_csv(world, "subscriptions", sep, arr=lambda arr: arr.map(amount))
    assert (subs.arr >= 1000).any()  # with thousands separators
    report = validate(world, DataConfig())
    assert report.ok, str(report)
    tables = load_tables(world, DataConfig(), connect())
    read = tables["usage_events"].ts.to_pandas()
    kept = "s" if "%S" in when else "min" if "%M" in when else "D"
    assert (read.to_numpy() == events.ts.dt.floor(kept).to_numpy()).all()
    assert (tables["subscriptions"].arr.to_pandas().to_numpy() == subs.arr.round(2)).all()


def test_times_in_a_format_and_in_iso_8601_are_each_read_as_written(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows added by hand in ISO 8601 to an export written month first (which ISO 8601 rows do
    not fit), whose first rows fit day first too: the whole column's other rows settle the
    format, each row is read as written, and a warning counts the ISO 8601 ones."""
    def mixed(ts: pd.Series) -> list[str]:
        return [str(t) if k % 3 == 0 else t.strftime("%m/%d/%Y %H:%M") for k, t in enumerate(ts)]

    monkeypatch.setattr(sources, "FORMAT_SAMPLE", 20)
    _edit(world, "support_tickets", lambda df: df.sort_values(  # days 1-12 first
        "created_at", key=lambda ts: ts.dt.day > 12, kind="stable", ignore_index=True))
    tickets = _as_csv(world, "support_tickets", created_at=mixed)
    assert tickets.created_at.dt.day.head(20).max() <= 12 < tickets.created_at.dt.day.max()
    report = validate(world, DataConfig())
    assert report.ok, str(report)
    [warning] = report.warnings
    assert (warning.column, warning.rows) == ("created_at", -(-len(tickets) // 3))
    assert "in ISO 8601 among values in '%m/%d/%Y %H:%M'" in warning.rule
    read = load_tables(world, DataConfig(), connect())["support_tickets"].created_at.to_pandas()
    expected = [t if k % 3 == 0 else t.floor("min") for k, t in enumerate(tickets.created_at)]
    assert (read.to_numpy() == pd.Series(expected).to_numpy()).all()


@pytest.mark.parametrize(("written", "code"), [
    (lambda x: f"¥{x:,.0f}", "JPY"), (lambda x: f"{x:_.2f} €".replace(".", ",").replace("_", "."),
                                     "EUR"),
    (lambda x: f"{x:.2f} gbp".upper(), "GBP"), (lambda x: f"${x:,.2f}", None),
])  # fmt: skip
def test_amounts_written_in_a_currency_name_the_books_currency(world: Path, written, code) -> None:
    """Without a currency column, amounts written with a mark that names one currency give each
    row's currency, and so the one amounts are shown in (report.currency set to another: a
    warning); '$' names several: none."""
    _edit(world, "subscriptions", lambda df: df.drop(columns="currency"))
    _as_csv(world, "subscriptions", arr=lambda arr: arr.map(written))
    assert validate(world, DataConfig()).ok
    warned = validate(world, DataConfig(), shown_in="INR").warnings
    assert [w.rule.split(",")[0] for w in warned] == ([f"ARR is in {code}"] if code else [])
    subs = load_tables(world, DataConfig(), connect())["subscriptions"]
    assert book_currency(subs) == code
    assert subs.currency.isnull().sum().execute() == (0 if code else subs.count().execute())


def test_amounts_in_more_than_one_currency_are_an_error(world: Path) -> None:
    subs = _as_csv(world, "subscriptions", arr=lambda arr: arr.map(lambda x: f"${x:,.2f}"))
    csv = pd.read_csv(world / "subscriptions.csv", dtype=str, keep_default_na=False)
    csv.loc[[2, 5], "arr"] = csv.arr[[2, 5]].str.replace("$", "") + " EUR"
    csv.loc[7, "arr"] = csv.arr[7].replace("$", "")  # no currency: the column's
    csv.to_csv(world / "subscriptions.csv", index=False)
    error = _only_error(world)
    assert (error.column, error.rows) == ("arr", 2)
    assert "another currency than most of them ('$')" in error.rule
    assert list(error.examples.arr) == list(csv.arr[[2, 5]])
    assert len(subs) > 7


def test_arr_in_several_currencies_needs_their_rates(world: Path) -> None:
    """Half the accounts pay in euros: an error until each currency has a rate, then ARR in the
    book's currency; a currency without a rate is an error."""
    subs = pd.read_parquet(world / "subscriptions.parquet")
    euro = subs.account_id.isin(subs.account_id.unique()[::2])
    _edit(world, "subscriptions", lambda df: df.assign(
        currency=["eur " if e else "USD" for e in euro], arr=df.arr.where(~euro, df.arr / 1.08)))
    error = _only_error(world)
    assert (error.column, error.rows) == ("currency", min(euro.sum(), (~euro).sum()))
    assert "ARR in another currency than most rows'" in error.rule
    rates = DataConfig(exchange_rates={"usd": 1.0, "EUR": 1.08})
    assert validate(world, rates).ok
    read = load_tables(world, rates, connect())["subscriptions"].to_pandas()
    assert read.arr.to_numpy() == pytest.approx(subs.arr.to_numpy())
    error = _only_error(world, DataConfig(exchange_rates={"USD": 1.0}))
    assert (error.column, error.rows) == ("currency", euro.sum())
    assert error.rule == "no rate in data.exchange_rates (it has USD)"
    with pytest.raises(ValueError, match="exchange rates must be above 0"):
        DataConfig(exchange_rates={"EUR": 0})
    _as_csv(world, "subscriptions", arr=lambda arr: [f"€{a:,.2f}" if e else f"${a:,.2f}"
                                                     for a, e in zip(arr, euro, strict=True)])
    assert validate(world, rates).ok  # the marks agree with the currency column


def test_exchange_rates_need_each_rows_currency(world: Path) -> None:
    """Rates set for a table without a currency column name the column; an empty currency is
    not read as the book's."""
    rates = DataConfig(exchange_rates={"USD": 1.0, "EUR": 1.08})
    _edit(world, "subscriptions", lambda df: df.drop(columns="currency"))
    error = _only_error(world, rates)
    assert (error.table, error.column) == ("subscriptions", "currency")
    assert error.rule.startswith("column that data.exchange_rates converts each row's ARR by "
                                 "missing from")
    subs = _edit(world, "subscriptions", lambda df: df.assign(
        currency=[None if k % 5 == 0 else "EUR" for k in range(len(df))]))
    error = _only_error(world, rates)
    assert (error.column, error.rows) == ("currency", subs.currency.isna().sum())
    assert error.rule == "empty: data.exchange_rates converts each row's ARR by its currency"


def test_a_book_in_another_currency_than_the_one_configured_is_warned_about(
    world: Path, tmp_path: Path
) -> None:
    """Every row in yen, report.currency set to dollars: `churnml validate` says so. Without it
    set, amounts are shown in yen (the data's) and nothing is said."""
    _edit(world, "subscriptions", lambda df: df.assign(currency="jpy"))
    [warning] = validate(world, DataConfig(), shown_in="USD").warnings
    assert (warning.column, warning.rule) == ("currency", "ARR is in JPY, but report.currency "
                                              "shows amounts in USD: set it to JPY, or leave it "
                                              "out (amounts are then shown in the data's "
                                              "currency)")  # fmt: skip
    assert not validate(world, DataConfig(), shown_in="JPY").warnings
    dollars = tmp_path / "usd.yaml"
    dollars.write_text("report:\n  currency: USD\n")
    said = CliRunner().invoke(app, ["validate", "--data", str(world), "--config", str(dollars)])
    assert "set it to JPY" in " ".join(said.output.split())
    quiet = CliRunner().invoke(app, ["validate", "--data", str(world)])
    assert "JPY" not in quiet.output and quiet.exit_code == 0


def test_arr_is_checked_in_the_books_currency(world: Path) -> None:
    """A tenth of the accounts pay in won (1,333 won to the dollar): their ARR is no outlier."""
    subs = pd.read_parquet(world / "subscriptions.parquet")
    won = subs.account_id.isin(subs.account_id.unique()[::10])
    _edit(world, "subscriptions", lambda df: df.assign(
        currency=["KRW" if w else "USD" for w in won], arr=df.arr.where(~won, df.arr / 0.00075)))
    report = validate(world, DataConfig(exchange_rates={"USD": 1.0, "KRW": 0.00075}))
    assert report.ok and not [w for w in report.warnings if w.column == "arr"], str(report)


def test_loading_reads_text_in_the_formats_validation_found(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`load` validates, then reads: each table's formats are told once, not again."""
    _as_csv(world, "usage_events", ts=lambda ts: ts.dt.strftime("%d.%m.%Y %H:%M"))
    told = []

    def counted(raw, source):
        told.append(source.table.name)
        return text_formats(raw, source)

    monkeypatch.setattr(sources, "text_formats", counted)
    monkeypatch.setattr(validation, "text_formats", counted)
    events = load(world, DataConfig())["usage_events"]
    assert sorted(told) == sorted(set(told)) and "usage_events" in told
    assert events.ts.max().execute() > pd.Timestamp("2023-01-13")  # day first, as written


@pytest.mark.parametrize("written", ["%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M:%S"])
def test_day_first_or_month_first_is_asked_when_the_dates_do_not_tell(
    world: Path, written: str
) -> None:
    """Every day is 12 or less. (DuckDB's CSV reader alone reads the second day first.)"""
    events = _edit(world, "usage_events", lambda df: df.assign(ts=df.ts.map(
        lambda ts: ts.replace(day=min(ts.day, 12)))))  # fmt: skip
    _as_csv(world, "usage_events", ts=lambda ts: ts.dt.strftime(written))
    error = _only_error(world)
    assert (error.column, error.rows) == ("ts", len(events))
    clock = written.split(" ")[1]
    assert f"'%d/%m/%Y {clock}' and '%m/%d/%Y {clock}' alike" in error.rule
    assert "data.tables.usage_events.formats.ts" in error.rule
    config = DataConfig(tables={"usage_events": TableSource(
        path="usage_events.csv", formats={"ts": written})})  # fmt: skip
    assert validate(world, config).ok
    read = load_tables(world, config, connect())["usage_events"].ts.to_pandas()
    kept = "s" if written.endswith("%S") else "min"
    assert (read.to_numpy() == events.ts.dt.floor(kept).to_numpy()).all()
    csv = pd.read_csv(world / "usage_events.csv", dtype=str)
    csv.ts = csv.ts.where(csv.index != 3, "3rd of May")
    csv.to_csv(world / "usage_events.csv", index=False)
    error = _only_error(world, config)
    assert (error.column, error.rows) == ("ts", 1) and "do not fit the format" in error.rule


@pytest.mark.parametrize(("formats", "message"), [
    ({"segment": "%Y"}, "formats are for its date, timestamp and number columns"),
    ({"arr": "1 234,5"}, "a number format is one of '1.234,5', '1,234.5'"),
    ({"start_date": "dd/mm/yyyy"}, "has no strptime code"),
])  # fmt: skip
def test_a_format_that_cannot_be_is_a_config_error(formats: dict[str, str], message: str) -> None:
    table = "accounts" if "segment" in formats else "subscriptions"
    with pytest.raises(ValueError, match=message):
        DataConfig(tables={table: TableSource(formats=formats)})


def test_an_excel_workbook_reads_as_the_table_it_holds(world: Path) -> None:
    """The first sheet; "NA" (a region) is text, not a missing value; dates kept as text in a
    sheet are read in their format like a CSV's."""
    accounts = pd.read_parquet(world / "accounts.parquet").assign(region="NA")
    (world / "accounts.parquet").unlink()
    accounts.assign(signup_date=pd.to_datetime(accounts.signup_date).dt.strftime("%d.%m.%Y")
                    ).to_excel(world / "accounts.xlsx", index=False)  # fmt: skip
    report = validate(world, DataConfig())
    assert report.ok, str(report)
    read = load_tables(world, DataConfig(), connect())["accounts"].to_pandas()
    read["signup_date"] = pd.to_datetime(read.signup_date)
    expected = accounts.assign(signup_date=pd.to_datetime(accounts.signup_date))
    pd.testing.assert_frame_equal(read, expected, check_dtype=False)


def test_text_in_a_workbook_stays_text(world: Path) -> None:
    """An id typed as text ("000042") keeps its zeros: pandas alone reads it as the number 42."""
    for path in world.glob("*.parquet"):
        _edit(world, path.stem, lambda df: df.assign(account_id=df.account_id.str[1:]))
    accounts = pd.read_parquet(world / "accounts.parquet")
    (world / "accounts.parquet").unlink()
    accounts.to_excel(world / "accounts.xlsx", index=False)
    assert accounts.account_id.str.startswith("0").all()
    assert validate(world, DataConfig()).ok
    read = load_tables(world, DataConfig(), connect())["accounts"].account_id.to_pandas()
    assert read.tolist() == accounts.account_id.tolist()


def _as_read(frame: pd.DataFrame) -> pd.DataFrame:
    """A table in a form that compares across storage: dates as timestamps, rows in order."""
    dates = [c for c in frame if c.endswith(("_date", "_at"))]
    frame = frame.assign(**{c: pd.to_datetime(frame[c]) for c in dates})
    return frame.sort_values(list(frame.columns), ignore_index=True)


def test_a_workbook_with_a_sheet_per_table(world: Path) -> None:
    """Sheets named like the tables ('Support Tickets'), after a cover sheet, in a workbook of
    the folder, are those tables; the same table in two workbooks is an error that names them."""
    names = ("accounts", "subscriptions", "support_tickets")
    frames = {name: pd.read_parquet(world / f"{name}.parquet") for name in names}
    cover = pd.DataFrame({"note": ["exported on 5 Jan"]})
    with pd.ExcelWriter(world / "crm export.xlsx") as book:
        cover.to_excel(book, sheet_name="About", index=False)
        for name, frame in frames.items():
            frame.to_excel(book, sheet_name=name.replace("_", " ").title(), index=False)
            (world / f"{name}.parquet").unlink()
    assert validate(world, DataConfig()).ok
    tables = load_tables(world, DataConfig(), connect())
    for name, frame in frames.items():
        read = tables[name].to_pandas()
        pd.testing.assert_frame_equal(_as_read(read), _as_read(frame[read.columns]),
                                      check_dtype=False)  # fmt: skip
    with pd.ExcelWriter(world / "accounts.xlsx") as book:  # its sheet named like it, not first
        cover.to_excel(book, sheet_name="About", index=False)
        frames["accounts"].head(5).to_excel(book, sheet_name="ACCOUNTS", index=False)
    accounts = load_tables(world, DataConfig(), connect())["accounts"]
    assert accounts.count().execute() == 5
    (world / "accounts.xlsx").rename(world / "copy.xlsx")
    error = _only_error(world)
    assert error.table == "accounts" and error.rule == (
        "sheets named like it in copy.xlsx (ACCOUNTS) and crm export.xlsx (Accounts); set "
        "data.tables.accounts.path and sheet")
    chosen = TableSource(path="crm export.xlsx", sheet="Accounts")
    assert validate(world, DataConfig(tables={"accounts": chosen})).ok
    chosen = TableSource(path="crm export.xlsx", sheet="accounts ")  # case and spaces aside
    assert validate(world, DataConfig(tables={"accounts": chosen})).ok


def test_a_sheet_that_is_not_there_is_named(world: Path) -> None:
    """A configured sheet absent from the workbook, or set for a file that is no workbook."""
    pd.read_parquet(world / "accounts.parquet").to_excel(world / "crm.xlsx", sheet_name="Accts",
                                                         index=False)  # fmt: skip
    missing = TableSource(path="crm.xlsx", sheet="Accounts")
    error = _only_error(world, DataConfig(tables={"accounts": missing}))
    assert (error.table, error.rule) == ("accounts", f"no sheet 'Accounts' in {world / 'crm.xlsx'}"
                                         " (its sheets: Accts); set data.tables.accounts.sheet")
    not_a_book = TableSource(sheet="Accounts")
    error = _only_error(world, DataConfig(tables={"accounts": not_a_book}))
    assert error.rule == (f"data.tables.accounts.sheet is 'Accounts', but "
                          f"{world / 'accounts.parquet'} is not a workbook (.xlsx)")


def test_gzipped_csv_and_tsv_are_read_and_other_formats_named(world: Path) -> None:
    """Warehouse exports: `<table>.csv.gz` (here in Shift-JIS) and `<table>.tsv` read as their
    Parquet did; a table only in a format not read (`accounts.xls`) is named in the error."""
    frames = {name: pd.read_parquet(world / f"{name}.parquet")
              for name in ("accounts", "support_tickets")}  # fmt: skip
    frames["accounts"] = frames["accounts"].assign(account_name="株式会社テスト")
    frames["accounts"].to_csv(world / "accounts.csv.gz", index=False, encoding="shift_jis")
    frames["support_tickets"].to_csv(world / "support_tickets.tsv", sep="\t", index=False)
    for name in frames:
        (world / f"{name}.parquet").unlink()
    config = DataConfig(tables={"accounts": TableSource(encoding="shift_jis")})
    assert validate(world, config).ok
    tables = load_tables(world, config, connect())
    for name, frame in frames.items():
        read = tables[name].to_pandas()
        pd.testing.assert_frame_equal(_as_read(read), _as_read(frame[read.columns]),
                                      check_dtype=False)  # fmt: skip
    (world / "accounts.csv.gz").rename(world / "accounts.xls")
    error = _only_error(world, config)
    assert error.table == "accounts" and "; accounts.xls: a format not read here, save it as " \
        "Parquet, CSV or .xlsx; map its path" in error.rule


SALESFORCE_FOOTER = ('\n"Confidential Information - Do Not Distribute"\n"Copyright (c) 2000-2026 '
                     'salesforce.com, inc. All rights reserved."\n\n"Generated By:  Jane Doe  '
                     '12/3/2026 9:14 AM"\n"Acme, Inc."\n')  # fmt: skip


@pytest.mark.parametrize("encoding", ["utf-8", "shift_jis"])
def test_a_reports_footer_is_left_out_and_said(world: Path, encoding: str) -> None:
    """A Salesforce report exported as CSV starts with its title and ends in a footer: the rows
    read as they were, and a warning says what was left out (before, the sniffer read the file
    as one column)."""
    accounts = pd.read_parquet(world / "accounts.parquet").assign(account_name="株式会社テスト")
    (world / "accounts.parquet").unlink()
    with open(world / "accounts.csv", "w", encoding=encoding, newline="") as f:
        f.write('"Accounts by owner"\n\n' + accounts.to_csv(index=False) + SALESFORCE_FOOTER)
    config = DataConfig(tables={"accounts": TableSource(encoding=encoding)})
    report = validate(world, config)
    assert report.ok and [str(w) for w in report.warnings] == [
        f"warning: table accounts, column *: the last lines of {world / 'accounts.csv'} are a "
        "report's footer, not rows ('Confidential Information - Do Not Distribute', …): left "
        "out (4 rows)"]
    read = load_tables(world, config, connect())["accounts"].to_pandas()
    pd.testing.assert_frame_equal(_as_read(read), _as_read(accounts[read.columns]),
                                  check_dtype=False)  # fmt: skip


def test_a_reports_workbook_reads_between_its_title_and_its_footer(world: Path) -> None:
    """A Salesforce report exported as a workbook: title rows above the header, a footer after
    a blank row. The rows read as they were (dates stay dates), and a warning says what was left
    out."""
    accounts = pd.read_parquet(world / "accounts.parquet")
    (world / "accounts.parquet").unlink()
    with pd.ExcelWriter(world / "accounts.xlsx") as book:
        accounts.to_excel(book, sheet_name="Accounts", startrow=3, index=False)
        sheet = book.sheets["Accounts"]
        sheet["A1"], sheet["A2"] = "Accounts by owner", "As of 3 December 2026"
        for k, line in enumerate(["Confidential Information - Do Not Distribute",
                                  "Generated By: Jane Doe"]):  # fmt: skip
            sheet.cell(row=len(accounts) + 6 + k, column=1, value=line)
    report = validate(world, DataConfig())
    assert report.ok and [w.rule for w in report.warnings] == [
        f"the last lines of {world / 'accounts.xlsx'} are a report's footer, not rows "
        "('Confidential Information - Do Not Distribute', …): left out"]
    read = load_tables(world, DataConfig(), connect())["accounts"].to_pandas()
    pd.testing.assert_frame_equal(_as_read(read), _as_read(accounts[read.columns]),
                                  check_dtype=False)  # fmt: skip


def test_a_last_row_that_looks_like_a_footer_is_kept(world: Path) -> None:
    """A name over several lines in the last cell, one of them blank, is no footer."""
    note = "Acme\n\nsee notes"
    accounts = pd.read_parquet(world / "accounts.parquet")
    accounts.loc[len(accounts) - 1, "account_name"] = note
    last = accounts.account_id.iloc[-1]
    (world / "accounts.parquet").unlink()
    accounts[[*accounts.columns.drop("account_name"), "account_name"]].to_csv(
        world / "accounts.csv", index=False)
    assert sources.csv_footer(sources.locate(world, DataConfig())["accounts"]) is None
    assert validate(world, DataConfig()).ok
    read = load_tables(world, DataConfig(), connect())["accounts"].to_pandas()
    assert read.set_index("account_id").account_name[last] == note


def test_a_few_identical_events_by_chance_are_not_reported(world: Path) -> None:
    _edit(world, "usage_events", lambda df: pd.concat([df.drop_duplicates(), df.head(1)]))
    assert not [r for r in _warnings(world) if "repeated exactly" in r]


def test_a_float_where_a_whole_number_belongs_is_an_error(world: Path) -> None:
    """Found by the fuzz test: 1e308 in an integer column overflowed the cast (a traceback)."""
    _edit(world, "nps_responses", lambda df: df.assign(score=df.score.astype(float))
          .assign(score=lambda d: d.score.where(d.index != 0, 1e308)))  # fmt: skip
    error = _only_error(world)
    assert (error.column, error.rule) == ("score", "values that are not whole numbers")
    assert error.rows == 1


def _shift_jis_accounts(world: Path) -> None:
    accounts = pd.read_parquet(world / "accounts.parquet").assign(account_name="株式会社テスト")
    (world / "accounts.parquet").unlink()
    accounts.to_csv(world / "accounts.csv", index=False, encoding="shift_jis")


def _nps_path_that_is_not_there(world: Path) -> list[str]:
    config = world / "c.yaml"
    config.write_text("data:\n  tables:\n    nps_responses: {path: exports/nps.csv}\n")
    return ["--config", str(config)]


REFUSED = {  # how the data is broken (extra arguments, if any) → words the refusal must say
    "infinite ARR": (lambda w: _edit(w, "subscriptions", lambda df: df.assign(
        arr=df.arr.where(df.index != 2, float("inf")))), "must be a finite number"),
    "no usage events": (lambda w: _edit(w, "usage_events", lambda df: df.head(0)),
                        "required table has no rows"),
    "a Shift-JIS CSV": (_shift_jis_accounts, "accounts.csv is not utf-8 text"),
    "a null key": (lambda w: _edit(w, "accounts", lambda df: df.assign(
        account_id=df.account_id.where(df.index != 0, None))), "account_id"),
    "a configured table that is not there": (_nps_path_that_is_not_there,
                                             "table configured but not found"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_score_refuses_broken_data_in_one_message_and_writes_nothing(
    case: str, world: Path, tmp_path: Path
) -> None:
    breaks, words = REFUSED[case]
    extra = breaks(world)  # the edits return the table; a config case, its arguments
    extra = extra if isinstance(extra, list) else []
    out = tmp_path / "scores"
    result = CliRunner().invoke(app, ["score", "--data", str(world), "--as-of", "2024-01-01",
                                      "--out", str(out), *extra])  # fmt: skip
    message = "".join(result.output.split())  # whatever the terminal's width wrapped
    assert result.exit_code == 1 and "".join(words.split()) in message
    assert "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.glob(".scores*"))


def test_a_sample_of_early_days_is_settled_by_the_whole_column(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export sorted by time whose sample holds days 1–12 only reads day first and month
    first alike; a later 13th settles it, with no setting."""
    monkeypatch.setattr(sources, "FORMAT_SAMPLE", 20)
    events = _edit(world, "usage_events", lambda df: df.sort_values("ts", ignore_index=True))
    assert events.ts.dt.day.head(20).max() <= 12 < events.ts.dt.day.max()
    _as_csv(world, "usage_events", ts=lambda ts: ts.dt.strftime("%m/%d/%Y %H:%M:%S"))
    assert validate(world, DataConfig()).ok
    read = load_tables(world, DataConfig(), connect())["usage_events"].ts.to_pandas()
    assert (read.to_numpy() == events.ts.dt.floor("s").to_numpy()).all()


@pytest.mark.parametrize(("written", "arr"), [
    (lambda x: f"{x:,.0f}", lambda a: a.where(a.index > 0, 2_500_000.0)),  # a later million
    (lambda x: f"¥{x:,.0f}", lambda a: a),  # yen, all below a million: no decimals
    (lambda x: f"{x:_.0f}円".replace("_", "."), lambda a: a),  # yen, a point for thousands
])  # fmt: skip
def test_amounts_of_thousands_only_are_settled_by_the_whole_column(
    world: Path, monkeypatch: pytest.MonkeyPatch, written, arr
) -> None:
    """Amounts below a million with a thousands mark only (`150,000`) read as 150 and 150,000
    alike: a larger one later settles it, and so does a currency without cents (yen)."""
    monkeypatch.setattr(sources, "FORMAT_SAMPLE", 20)
    subs = _edit(world, "subscriptions", lambda df: df.assign(
        arr=arr((df.arr * 150).round().clip(1000, 999_000)).iloc[::-1].to_numpy()))
    assert (subs.arr.iloc[:20] < 1e6).all()
    _as_csv(world, "subscriptions", arr=lambda a: a.map(written))
    assert validate(world, DataConfig()).ok
    read = load_tables(world, DataConfig(), connect())["subscriptions"].arr.to_pandas()
    assert read.to_numpy() == pytest.approx(subs.arr.to_numpy())

"""Features are point in time, declared once, and computed on rollups, on DuckDB and Spark alike."""

from __future__ import annotations

import datetime as dt
import gc
import logging
import shutil
from pathlib import Path

import ibis
import pandas as pd
import pytest
from tests.helpers import T, accounts, day, events, partition_by_month, subscription, tables
from typer.testing import CliRunner

from churnml.cli import app
from churnml.config import Config, DataConfig, FeatureConfig
from churnml.data import load
from churnml.data.history import as_known_on
from churnml.data.sources import cached, connect, load_tables
from churnml.data.synthetic import generate_world, shape_of
from churnml.data.synthetic.exports import as_daily_rollup
from churnml.features import build, rollups
from churnml.features.build import available, compute_features
from churnml.features.catalogue import FEATURE_FAMILIES, by_name, catalogue, event_slugs
from churnml.features.labels import default_as_of, snapshots
from churnml.models.pipeline import keyed_config, training_table


def _features(t: dict, cfg: FeatureConfig | None = None) -> pd.DataFrame:
    snaps = snapshots(t["subscriptions"], [T])
    out = compute_features(t, snaps, [T], cfg or FeatureConfig()).execute()
    return out.set_index("account_id").sort_index()


def _usage_world(*rows: tuple[str, pd.Timestamp], signup: int = -400) -> dict:
    return _usage_world_of(events(*rows), signup)


def _usage_world_of(used: pd.DataFrame, signup: int = -400) -> dict:
    """`used` (usage events) and a subscription for each of its accounts and a quiet one."""
    ids = sorted({*used.account_id, "quiet"})
    subs = pd.DataFrame([subscription(a, signup, None, seats=4) for a in ids])
    return tables(accounts=accounts(*ids, signup=signup), subscriptions=subs, usage_events=used)


# -- the catalogue -------------------------------------------------------------------------------
KEYED = FeatureConfig(key_events=("Report Created", "sync-run"))


def test_every_feature_has_english_and_japanese_descriptions() -> None:
    for f in catalogue(KEYED):
        assert f.en.strip() and f.ja.strip(), f.name
        assert f.en != f.ja, f.name


def test_feature_names_are_unique_and_every_family_is_covered() -> None:
    names = [f.name for f in catalogue(KEYED)]
    assert len(names) == len(set(names))
    assert {f.family for f in catalogue(KEYED)} == set(FEATURE_FAMILIES)


def test_computed_columns_are_exactly_the_catalogue(small_world: Path) -> None:
    cfg = Config()
    t = load_tables(small_world, cfg.data, connect())
    snaps = snapshots(t["subscriptions"], [T])
    out = compute_features(t, snaps, [T], cfg.features)
    assert out.columns == ("account_id", "as_of", *[f.name for f in catalogue(cfg.features)])


def test_missing_optional_tables_skip_their_family(caplog: pytest.LogCaptureFixture) -> None:
    t = _usage_world(("a", day(-3)))
    with caplog.at_level(logging.INFO):
        names = {f.name for f in available(catalogue(FeatureConfig()), t)}
    assert "active_users_30d" in names and "seat_utilisation_30d" in names
    assert not names & {"tickets_30d", "nps_last", "has_champion", "onboarding_done"}
    assert "support_tickets is missing" in caplog.text
    assert set(_features(t).columns) == names | {"as_of"}


# -- key events from the data --------------------------------------------------------------------
def test_key_events_are_the_types_most_accounts_used_before_as_of() -> None:
    used = pd.concat([
        events(("a", day(-5)), ("b", day(-40)), event_type="Report Created"),
        events(("a", day(-3)), event_type="sync-run"),
        events(("a", day(0)), ("b", day(0)), ("c", day(1)), event_type="on_or_after_t"),
    ])  # fmt: skip
    t = tables(usage_events=used)
    assert build.top_event_types(t["usage_events"], T, 5) == ("Report Created", "sync-run")
    assert build.top_event_types(t["usage_events"], T, 1) == ("Report Created",)


def test_event_names_become_column_names_that_never_clash() -> None:
    assert event_slugs(["Report Created", "report-created", "2FA check", "!!"]) == [
        "report_created", "report_created_1", "event_2fa_check", "event"
    ]  # fmt: skip


def test_key_event_users_trend_and_lifetime_are_point_in_time() -> None:
    key = "Report Created"
    used = pd.concat([
        events(("a", day(-100)), ("a", day(-10)), event_type=key),
        events(("a", day(-5)), user=2, event_type=key),
        events(("a", day(-200)), event_type="login"),  # the account's first use
        events(("a", day(0)), ("a", day(0)), user=3, event_type=key),  # on T: unseen
    ])  # fmt: skip
    subs = pd.DataFrame([subscription("a", -400, None, seats=4)])
    t = tables(accounts=accounts("a"), subscriptions=subs, usage_events=used)
    row = _features(t, FeatureConfig(key_events=(key,))).loc["a"]
    assert row.report_created_users_30d == 2 and row.report_created_events_30d == 2
    assert row.report_created_trend_30d == pytest.approx((2 + 1) / (0 + 1))
    assert row.report_created_days_since_first == 100 and row.days_since_first_use == 200
    assert row.report_created_per_30d_lifetime == pytest.approx(3 * 30 / 200)
    assert row.events_per_30d_lifetime == pytest.approx(4 * 30 / 200)


def test_new_users_headroom_user_trend_and_stickiness() -> None:
    used = pd.concat([
        events(("a", day(-200)), ("a", day(-45)), user=1),  # an old user, active 31–60 days ago
        events(("a", day(-10)), ("a", day(-9)), user=2),  # new in the last 30 days
        events(("a", day(-40)), user=3),  # new 31–60 days ago
        events(("a", day(-6)), ("a", day(-40)), user=5),  # active in both, and in the last 7
        events(("a", day(0)), user=4),  # first seen on T: unseen
    ])  # fmt: skip
    subs = pd.DataFrame([subscription("a", -400, None, seats=4)])
    t = tables(accounts=accounts("a"), subscriptions=subs, usage_events=used)
    row = _features(t).loc["a"]
    assert row.new_users_30d == 1 and row.seat_headroom_30d == 4 - 2
    assert row.active_users_trend_30d == pytest.approx((2 + 1) / (3 + 1))
    assert row.weekly_stickiness_30d == pytest.approx(1 / 2)


def test_events_of_no_user_count_as_events_not_as_users() -> None:
    """A null user_id (an API call, a system job): its events and days count; it is no user."""
    used = pd.concat([
        events(("a", day(-10)), ("a", day(-3)), user=1),
        events(("a", day(-5)), ("a", day(-3)), ("b", day(-4)), user=None),
    ])  # fmt: skip
    out = _features(_usage_world_of(used))
    a, b = out.loc["a"], out.loc["b"]
    assert (a.events_30d, a.active_days_7d, a.days_since_last_activity) == (4, 2, 3)
    assert (a.active_users_30d, a.new_users_30d) == (1, 1)
    assert a.weekly_stickiness_30d == 1  # user 1, in the last 7 days
    assert (b.events_30d, b.active_days_7d, b.active_users_30d, b.new_users_30d) == (1, 1, 0, 0)


def test_an_account_can_use_more_event_types_than_a_small_integer_holds() -> None:
    """Types used are counted as bits, 63 to a column; DuckDB's bit count is a TINYINT, so the
    sum over three columns (130 types) overflowed before it was widened."""
    used = pd.concat([events(("a", day(-1 - k % 20)), event_type=f"page_{k}") for k in range(130)])
    row = _features(_usage_world_of(used)).loc["a"]
    assert (row.breadth_30d, row.events_30d) == (130, 130)


def test_a_new_vocabulary_gets_features_named_after_its_events(tmp_path: Path) -> None:
    world = tmp_path / "world"
    vocabulary = "Report Created,sync-run,2FA check"
    generate_world(world, 40, 6, seed=5, truth_paths=2, shape=shape_of(events=vocabulary))
    cfg = keyed_config(world, Config())
    assert sorted(cfg.features.key_events) == sorted(vocabulary.split(","))
    cat = by_name(cfg.features)
    report = cat["report_created_events_30d"]
    assert "'Report Created'" in report.en and "「Report Created」" in report.ja
    own = [n for n in cat if n.startswith(("report_created_", "sync_run_", "event_2fa_check_"))]
    assert len(own) == 3 * 8
    frame = training_table(world, cfg, check=False)
    assert set(own) <= set(frame.columns) and frame.report_created_events_90d.sum() > 0
    listed = CliRunner().invoke(app, ["features", "--list", "--data", str(world), "--lang", "ja"])
    assert listed.exit_code == 0 and "「sync-run」" in listed.output


@pytest.mark.parametrize("setting", ["EVENTS_PER_PART", "TYPE_BITS", "AS_OF_BITS", "SPAN_DAYS"])
def test_features_do_not_depend_on_how_the_events_are_split(
    small_world: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    """DuckDB aggregates big event tables in account parts (to bound memory), event types past 63
    go to more bit columns, as_of dates past 63 to more chunks of the users' window masks, and
    spans longer than 63 days are cut: none of this changes a feature."""
    cfg = Config()
    t = load_tables(small_world, cfg.data, connect())
    dates = default_as_of(t)[-6:]
    whole = build.build_features(t, as_of=dates, cfg=cfg).execute()
    split = {"EVENTS_PER_PART": t["usage_events"].count().execute() // 3 + 1, "TYPE_BITS": 2,
             "AS_OF_BITS": 2, "SPAN_DAYS": 3}  # fmt: skip
    monkeypatch.setattr(rollups, setting, split[setting])
    parts = build.build_features(t, as_of=dates, cfg=cfg).execute()
    assert len(whole) > 200 and whole.breadth_30d.max() > 2
    pd.testing.assert_frame_equal(whole, parts)


# -- point in time, at the edges -----------------------------------------------------------------
def test_event_at_as_of_is_excluded() -> None:
    out = _features(_usage_world(("a", day(0)), ("a", day(0) - pd.Timedelta(seconds=1))))
    assert out.loc["a", "events_30d"] == 1
    assert out.loc["a", "active_days_7d"] == 1
    assert out.loc["a", "days_since_last_activity"] == 1


def test_users_are_counted_exactly_at_each_window_edge() -> None:
    """Users' windows are kept as bits over the as_of dates, not by day: each window's first day
    still counts, the day before does not (also for the 30 days before the last 30: days 31 to
    60), and days since the first and last use stay exact, also long before the first window."""
    at = {"a": -30, "b": -31, "c": -7, "d": -8, "e": -90, "f": -91, "g": -200, "h": -60, "i": -61}
    out = _features(_usage_world(*((a, day(d)) for a, d in at.items())),
                    FeatureConfig(key_events=("login",)))  # fmt: skip
    within = {w: {a: int(d >= -w) for a, d in at.items()} | {"quiet": 0} for w in (7, 30, 90)}
    assert out.login_users_30d.to_dict() == within[30] == out.new_users_30d.to_dict()
    assert out.active_users_7d.to_dict() == within[7]
    assert out.active_users_90d.to_dict() == within[90]
    before = {a: int(-60 <= d < -30) for a, d in at.items()}
    trend = {a: (within[30][a] + 1) / (before[a] + 1) for a, d in at.items() if d >= -90}
    assert out.active_users_trend_30d.dropna().to_dict() == trend
    assert out.days_since_first_use.drop("quiet").to_dict() == {a: -d for a, d in at.items()}
    assert out.days_since_last_activity.drop("quiet").to_dict() == {a: -d for a, d in at.items()}


def test_users_seen_between_sparse_as_of_dates_are_new_only_where_they_should_be() -> None:
    """Days in no window (here between as_of dates 200 days apart) are kept as one user span per
    run: a user first seen there is new nowhere, and use there does not hide a user first seen
    just before the earlier as_of."""
    first = T - dt.timedelta(days=200)
    used = pd.concat([
        events(("a", day(-250)), ("a", day(-10)), user=1),  # in the first window, then now
        events(("a", day(-150)), ("a", day(-20)), user=2),  # first between the windows
        events(("a", day(-25)), user=3),  # new at T
        events(("a", day(-210)), ("a", day(-150)), user=4),  # new at the first as_of
        events(("a", day(-150)), user=5),  # only between the windows
    ])  # fmt: skip
    t = tables(accounts=accounts("a"), subscriptions=pd.DataFrame([subscription("a", -400, None)]),
               usage_events=used)  # fmt: skip
    snaps = snapshots(t["subscriptions"], [first, T])
    out = compute_features(t, snaps, [first, T], FeatureConfig()).execute()
    out = out.assign(as_of=pd.to_datetime(out.as_of).dt.date).set_index("as_of")
    assert out.new_users_30d.to_dict() == {first: 1, T: 1}
    assert out.active_users_30d.to_dict() == {first: 1, T: 3}
    assert out.active_users_90d.to_dict() == {first: 2, T: 3}
    assert out.active_users_trend_30d.to_dict() == {first: (1 + 1) / (1 + 1), T: (3 + 1) / 1}


def test_lowest_and_highest_bit_are_the_first_and_last_day_of_a_span() -> None:
    """A span's days are the bits of an int64 (bits 0..62): the engine finds the lowest and the
    highest set, whatever lies between."""
    values = [1, 2, 3, 5, 6, 1 << 62, (1 << 62) | 1, (1 << 63) - 1, (1 << 40) | (1 << 7), 0b1011000]
    t = ibis.memtable({"bits": values})
    bits = t.select(low=rollups.lowest_bit(t.bits), high=rollups.highest_bit(t.bits))
    got = connect().execute(bits)
    assert got.low.tolist() == [(v & -v).bit_length() - 1 for v in values]
    assert got.high.tolist() == [v.bit_length() - 1 for v in values]


def test_event_at_window_start_is_included() -> None:
    out = _features(_usage_world(("a", day(-30)), ("b", day(-31)), ("c", day(-7)), ("d", day(-8))))
    assert out.active_days_30d.to_dict() == {"a": 1, "b": 0, "c": 1, "d": 1, "quiet": 0}
    assert out.active_days_7d.to_dict() == {"a": 0, "b": 0, "c": 1, "d": 0, "quiet": 0}
    assert out.active_users_30d.to_dict() == out.active_days_30d.to_dict()
    assert out.loc["b", "active_users_90d"] == 1


def test_monthly_use_counts_whole_months_before_as_of_only() -> None:
    """The adoption chart's months: the 12 full months before as_of's month. The days of as_of's
    own month, before and after as_of, and the day before the first month do not count."""
    ts = pd.Timestamp
    days = ("2023-02-28 23:59", "2023-03-01", "2024-02-29 23:00", "2024-03-01", "2024-03-15",
            "2024-04-02")  # fmt: skip
    first = events(*[("a", ts(d)) for d in days])
    second = events(("a", ts("2024-02-10")), ("a", ts("2024-02-11")), user=2)
    use = rollups.monthly_use(tables(usage_events=pd.concat([first, second]))["usage_events"],
                              dt.date(2024, 3, 15)).execute()  # fmt: skip
    got = use.assign(month=pd.to_datetime(use.month)).set_index("month").sort_index()
    assert list(got.index) == [ts("2023-03-01"), ts("2024-02-01")]
    assert got.users.tolist() == [1, 2] and got.events.tolist() == [1, 3]


def test_account_with_no_events_has_zero_counts_and_unknown_recency() -> None:
    out = _features(_usage_world(("a", day(-2))))
    quiet = out.loc["quiet"]
    assert (quiet.active_users_30d, quiet.events_30d, quiet.breadth_30d) == (0, 0, 0)
    assert quiet.seat_utilisation_30d == 0
    assert pd.isna(quiet.days_since_last_activity)
    assert pd.isna(quiet.events_per_active_user_30d)


def test_account_that_starts_mid_window() -> None:
    out = _features(_usage_world(("a", day(-5)), ("a", day(-4)), signup=-10))
    assert out.loc["a", "tenure_days"] == 10
    assert out.loc["a", "active_days_30d"] == 2
    assert out.loc["a", "seat_utilisation_30d"] == pytest.approx(0.25)


def test_timestamps_are_read_as_utc() -> None:
    tokyo = pd.Timestamp("2024-03-01 08:00", tz="Asia/Tokyo")  # 2024-02-29 23:00 UTC
    t = _usage_world(("a", day(-20)))
    t["usage_events"] = tables(
        usage_events=events(("a", tokyo), ("a", tokyo + pd.Timedelta(hours=2)))
    )["usage_events"]
    out = _features(t)
    assert (
        out.loc["a", "events_30d"] == 1
    )  # 23:00 UTC the day before counts; 01:00 UTC on T does not


def test_subscription_changes_from_as_of_on_do_not_count() -> None:
    subs = pd.DataFrame(
        [
            subscription("a", -300, 65, seats=5),
            subscription("a", 0, 65, arr=500.0, seats=3),  # upsell signed on T: not yet known
            subscription("b", -300, None, seats=5, canceled_at=day(0), cancel_reason="bankruptcy"),
            subscription(
                "c", -300, None, seats=5, canceled_at=day(-1), cancel_reason="non_payment"
            ),
        ]
    )
    t = tables(
        accounts=accounts("a", "b", "c"), subscriptions=subs, usage_events=events(("a", day(-1)))
    )
    snaps = ibis.memtable(
        {"account_id": ["a", "b", "c"], "as_of": [T] * 3},
        schema={"account_id": "string", "as_of": "date"},
    )
    out = compute_features(t, snaps, [T], FeatureConfig()).execute().set_index("account_id")
    assert out.loc["a", ["arr", "seats", "days_to_renewal"]].tolist() == [1200.0, 5.0, 65]
    assert out.loc["b", "arr"] == 1200.0  # cancelled on T: not known before T
    assert pd.isna(out.loc["c", "arr"])  # cancelled the day before: gone


# -- leakage: a world cut at T gives the same features as the full world -------------------------
def _with_boundary_rows(world: Path, out: Path) -> Path:
    """Copy the world and add, for a few accounts, rows exactly at T that a leak would pick up."""
    shutil.copytree(world, out)
    subs = pd.read_parquet(out / "subscriptions.parquet")
    at_t = pd.Timestamp(T)
    ids = subs.loc[(subs.start_date < at_t.date()) & (subs.end_date.isna()), "account_id"].unique()[
        :6
    ]

    def add(table: str, rows: pd.DataFrame) -> None:
        df = pd.read_parquet(out / f"{table}.parquet")
        rows = rows.reindex(columns=df.columns).astype(df.dtypes.to_dict())
        pd.concat([df, rows], ignore_index=True).to_parquet(out / f"{table}.parquet", index=False)

    n = len(ids)
    add(
        "usage_events",
        pd.DataFrame(
            {"account_id": ids, "user_id": 1, "ts": at_t, "event_type": "export", "quantity": 1.0}
        ),
    )
    add(
        "support_tickets",
        pd.DataFrame(
            {
                "account_id": ids,
                "ticket_id": [f"TT{i}" for i in range(n)],
                "created_at": at_t,
                "priority": "urgent",
                "resolved_at": at_t,
                "category": "bug",
                "csat": 1.0,
            }
        ),
    )
    add("nps_responses", pd.DataFrame({"account_id": ids, "submitted_at": at_t, "score": 0}))
    add("cs_touchpoints", pd.DataFrame({"account_id": ids, "ts": at_t, "kind": "qbr"}))
    add(
        "onboarding_milestones",
        pd.DataFrame(
            {
                "account_id": ids,
                "milestone": "boundary",
                "completed_at": at_t,
                "due_date": at_t.date(),
            }
        ),
    )
    add(
        "contacts",
        pd.DataFrame(
            {
                "account_id": ids,
                "contact_id": [f"CT{i}" for i in range(n)],
                "role": "champion",
                "start_date": at_t.date(),
                "end_date": None,
            }
        ),
    )
    # A champion who leaves on T, an upsell signed on T, a cancellation on T.
    contacts = pd.read_parquet(out / "contacts.parquet")
    champs = contacts.index[
        (contacts.role == "champion") & contacts.account_id.isin(ids) & contacts.end_date.isna()
    ]
    contacts.loc[champs[:3], "end_date"] = at_t.date()
    contacts.to_parquet(out / "contacts.parquet", index=False)
    subs.loc[subs.account_id == ids[0], ["canceled_at", "cancel_reason"]] = [
        at_t.date(),
        "bankruptcy",
    ]
    upsell = pd.DataFrame([subscription(ids[1], 0, None, arr=999.0, seats=9, plan="pro")])
    subs = pd.concat([subs, upsell.reindex(columns=subs.columns).astype(subs.dtypes.to_dict())])
    subs.to_parquet(out / "subscriptions.parquet", index=False)
    return out


def _features_at_t(world: Path, snaps: pd.DataFrame) -> pd.DataFrame:
    cfg = Config().with_key_events(("export", "login", "create_report"))  # T adds exports
    t = load_tables(world, cfg.data, connect())
    out = compute_features(t, ibis.memtable(snaps), [T], cfg.features).execute()
    return out.sort_values("account_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def cut_worlds(
    small_world: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, pd.DataFrame]:
    base = tmp_path_factory.mktemp("leak")
    full = _with_boundary_rows(small_world, base / "full")
    known = as_known_on(full, T, base / "known")
    cfg = Config()
    snaps = (
        snapshots(load_tables(full, cfg.data, connect())["subscriptions"], [T])
        .select("account_id", "as_of")
        .execute()
    )
    return full, known, snaps


def test_features_on_the_full_world_equal_features_on_the_world_known_at_t(cut_worlds) -> None:
    full, known, snaps = cut_worlds
    assert len(snaps) > 50
    pd.testing.assert_frame_equal(_features_at_t(full, snaps), _features_at_t(known, snaps))


def test_the_leakage_check_catches_a_leak(cut_worlds, monkeypatch: pytest.MonkeyPatch) -> None:
    full, known, snaps = cut_worlds

    def leaky(snaps, rows, time_col):
        j = snaps.select(rollups.KEYS).inner_join(rows, "account_id")
        day_ = j[time_col].cast("date")
        return j.filter(day_ <= j.as_of).mutate(age=rollups.age(j, day_))

    monkeypatch.setattr(rollups, "before", leaky)
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(_features_at_t(full, snaps), _features_at_t(known, snaps))


# -- engines and the command ---------------------------------------------------------------------
@pytest.mark.spark
def test_a_cached_spark_table_outlives_the_plan_it_was_made_from(tmp_path: Path) -> None:
    """On Spark `cached` makes a view whose SQL names the cached tables its plan reads; ibis
    drops a cached table once nothing refers to it, so the plan is kept with the result."""
    pd.DataFrame({"a": range(5)}).to_parquet(tmp_path / "t.parquet")
    table = connect("spark").read_parquet(tmp_path / "t.parquet")
    doubled = cached(cached(table).mutate(b=ibis._.a * 2))  # nothing else holds the inner one
    gc.collect()
    assert doubled.b.sum().execute() == 20


@pytest.mark.spark
@pytest.mark.slow
def test_duckdb_and_spark_give_identical_features(tmp_path: Path) -> None:
    """Also from a CSV that Spark's reader alone would misread (semicolons, decimal commas, day
    first with some rows in ISO 8601, end dates as digits), and accounts from a report (signup
    dates as a sheet's day numbers, a footer after the rows)."""
    from churnml.data.synthetic import generate_world

    world = generate_world(tmp_path / "w", n_accounts=80, months=8, seed=4, truth_paths=4).out
    partition_by_month(world, "usage_events", "ts")  # each engine lists the folder its own way
    subs = pd.read_parquet(world / "subscriptions.parquet")  # as a German spreadsheet writes it
    (world / "subscriptions.parquet").unlink()
    start = pd.to_datetime(subs.start_date)
    subs.assign(start_date=start.dt.strftime("%d.%m.%Y 00:00").where(subs.index % 5 > 0,
                                                                     start.dt.strftime("%Y-%m-%d")),
                end_date=pd.to_datetime(subs.end_date).dt.strftime("%Y%m%d"),
                arr=subs.arr.map(lambda x: f"{x:.2f}".replace(".", ","))).to_csv(
        world / "subscriptions.csv", sep=";", index=False)  # fmt: skip
    accounts = pd.read_parquet(world / "accounts.parquet")
    (world / "accounts.parquet").unlink()
    signup = (pd.to_datetime(accounts.signup_date) - pd.Timestamp("1899-12-30")).dt.days
    (world / "accounts.csv").write_text(accounts.assign(signup_date=signup).to_csv(index=False)
                                        + '\n"Generated By: Jane Doe"\n')  # fmt: skip
    cfg = Config()
    frames = []
    for engine in ("duckdb", "spark"):
        out = tmp_path / f"{engine}.parquet"
        build.write_features(world, cfg, out, engine=engine, check=False)
        frames.append(pd.read_parquet(out))
    duck, spark = frames
    assert len(duck) > 300
    spark_out = tmp_path / "spark.parquet"  # a folder the executors wrote, committed
    assert (spark_out / "_SUCCESS").is_file() and list(spark_out.glob("part-*.parquet"))
    pd.testing.assert_frame_equal(duck, spark, check_exact=False, rtol=1e-9, check_dtype=False)


def test_cli_writes_features_and_labels(small_world: Path, tmp_path: Path) -> None:
    """…and writes them again over the file of an earlier run (it once refused: "cannot write")."""
    out = tmp_path / "features.parquet"
    out.write_text("an earlier run")
    args = ["features", "--data", str(small_world), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--as-of", "2024-03-01", "--as-of", "2024-04-01"])
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(out)
    assert sorted(df.as_of.astype(str).unique()) == ["2024-03-01", "2024-04-01"]
    assert not df.duplicated(["account_id", "as_of"]).any()
    assert {"churn_90d", "expansion_90d", "involuntary_churn_90d", "seat_utilisation_30d"} <= set(
        df.columns
    )


def test_cli_lists_the_catalogue_in_japanese() -> None:
    result = CliRunner().invoke(app, ["features", "--list", "--lang", "ja"])
    assert result.exit_code == 0, result.output
    assert "tenure_days" in result.output and "購入シート" in result.output


def test_events_loaded_twice_count_once_with_dedupe(tmp_path: Path) -> None:
    world = tmp_path / "world"
    generate_world(world, 20, 5, seed=2, truth_paths=2)
    events_ = pd.read_parquet(world / "usage_events.parquet").drop_duplicates()
    pd.concat([events_, events_]).to_parquet(world / "usage_events.parquet", index=False)
    counts = {}
    for dedupe in (False, True):
        cfg = Config(data={"dedupe_events": dedupe}).with_key_events(("login",))
        t = load_tables(world, cfg.data, connect())
        snaps = snapshots(t["subscriptions"], [dt.date(2023, 5, 1)])
        out = compute_features(t, snaps, [dt.date(2023, 5, 1)], cfg.features).execute()
        counts[dedupe] = out.set_index("account_id").events_30d.sort_index()
    assert (counts[False] == 2 * counts[True]).all() and counts[True].sum() > 0


def test_a_daily_rollup_of_the_events_gives_the_features_of_the_events(tmp_path: Path) -> None:
    """Usage kept as one row per account, user, day and event type, with its count in
    `quantity` (`data.event_counts: quantity`), gives every feature the raw events give."""
    world = tmp_path / "world"
    generate_world(world, 40, 8, seed=5, truth_paths=2)
    used = pd.read_parquet(world / "usage_events.parquet")
    used.loc[used.index[:50], "user_id"] = None  # some of no user
    used.to_parquet(world / "usage_events.parquet", index=False)
    cfg, rolled = Config(), Config(data=DataConfig(event_counts="quantity"))

    def features(config: Config) -> pd.DataFrame:
        t = load_tables(world, config.data, connect())
        return build.build_features(t, as_of=default_as_of(t)[-4:], cfg=config).execute()

    expected = features(cfg)
    assert as_daily_rollup(world) < 0.9 * len(used) and expected.events_90d.sum() > 1000
    pd.testing.assert_frame_equal(expected, features(rolled))
    assert features(cfg).events_90d.sum() < expected.events_90d.sum()  # rows, not events


def test_usage_kept_by_account_gives_every_feature_but_those_of_users(tmp_path: Path) -> None:
    """Usage events without user_id (telemetry kept by account; here also as a daily rollup)
    give the features the same events give with users, less those that count users (which
    would read 0 active users, 0% of seats used)."""
    built = {}
    for users in (True, False):
        world = generate_world(tmp_path / f"w{users}", 40, 8, seed=5, truth_paths=2,
                               usage_rollup=not users, users=users).out  # fmt: skip
        config = Config(data=DataConfig(event_counts="quantity" if not users else "rows"))
        t = load_tables(world, config.data, connect())
        as_of = default_as_of(t)[-4:]
        built[users] = build.build_features(t, as_of=as_of, cfg=config).execute()
    named, kept = built[True], built[False]
    left_out = set(named.columns) - set(kept.columns)
    assert {"active_users_30d", "active_users_trend_30d", "new_users_30d", "seat_utilisation_30d",
            "weekly_stickiness_30d"} <= left_out  # fmt: skip
    features = by_name(build.with_key_events(config, t, max(as_of)).features)

    def of_users(name: str) -> bool:
        return features[name].of_users or any(map(of_users, features[name].inputs))

    assert all(map(of_users, left_out))
    pd.testing.assert_frame_equal(named[kept.columns], kept)


@pytest.mark.parametrize("csv", [None, "de"])
def test_monthly_revenue_gives_the_features_of_arr(tmp_path: Path, csv: str | None) -> None:
    """Subscriptions with `mrr` in place of `arr` (a billing export; also as a German
    spreadsheet writes it, `583,33 €`, to the cent) read as 12× it: the features and labels of
    the ARR."""
    built = []
    for mrr in (False, True):
        world = generate_world(tmp_path / f"w{mrr}", 40, 8, seed=5, truth_paths=2, mrr=mrr,
                               csv_locale=csv).out  # fmt: skip
        assert mrr == ("mrr" in pd.read_csv(world / "subscriptions.csv", sep=None,
                                             engine="python").columns if csv else
                       "mrr" in pd.read_parquet(world / "subscriptions.parquet"))  # fmt: skip
        t = load(world, DataConfig())
        built.append(build.build_features(t, as_of=default_as_of(t)[-4:], cfg=Config()).execute())
    arr, mrr = built
    money = ["arr", "arr_after_90d"]  # 12× an MRR to the cent: within 12 half cents of the ARR
    pd.testing.assert_frame_equal(arr.drop(columns=money), mrr.drop(columns=money))
    assert ((arr[money] - mrr[money]).abs().fillna(0) <= (0.06 if csv else 1e-9)).all().all()


def test_the_csms_context_sees_only_what_was_known_before_as_of() -> None:
    """The overdue milestone is the earliest-due one not done before as_of (one done on as_of
    itself is still overdue); the contact to call is the champion in place, else the sponsor,
    never someone who starts on as_of or who left before it."""
    plan = FeatureConfig().onboarding_plan  # kickoff 7, admin_setup 14, … days after signup
    t = tables(
        accounts=accounts("a", "b", "c", signup=-100),
        onboarding_milestones=pd.DataFrame({
            "account_id": ["a", "a", "b"], "milestone": ["kickoff", "admin_setup", "kickoff"],
            "completed_at": [day(-95), day(0), day(-90)]}),
        contacts=pd.DataFrame({
            "account_id": ["a", "a", "a", "b", "b"], "contact_id": ["a1", "a2", "a3", "b1", "b2"],
            "role": ["exec_sponsor", "champion", "champion", "exec_sponsor", "champion"],
            "start_date": [day(-90), day(-80), day(0), day(-90), day(-60)],
            "end_date": [None, None, None, None, day(-1)]}),
    )  # fmt: skip
    snaps = ibis.memtable({"account_id": ["a", "b", "c"], "as_of": [T, T, T]})
    got = build.csm_context(t, snaps, [T], FeatureConfig()).execute().set_index("account_id")
    assert list(plan)[:2] == ["kickoff", "admin_setup"]
    assert got.overdue_milestone.to_dict() == {
        "a": "admin_setup", "b": "admin_setup", "c": "kickoff"}  # fmt: skip
    assert got.primary_contact.fillna("-").to_dict() == {"a": "a2", "b": "b1", "c": "-"}
    assert got.primary_contact_role.fillna("-").to_dict() == {
        "a": "champion", "b": "exec_sponsor", "c": "-"}  # fmt: skip

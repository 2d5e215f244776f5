"""The synthetic world: deterministic, realistic rates, and a truth that is a real oracle."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churnml.config import Config, DataConfig
from churnml.data.contract import TABLES
from churnml.data.synthetic import PRESETS, Shape, Vocabulary, generate_world, shape_of
from churnml.features.build import write_features
from churnml.features.truth import labels_with_truth


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): _truth_digest(p) if p.parent.name == "_truth"
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.parquet"))
    }  # fmt: skip


def _truth_digest(path: Path) -> str:
    """The oracle's probabilities to 9 decimals: NumPy's exp may differ in the last bit from
    one CPU's vector instructions to another's, and the file with it."""
    truth = pd.read_parquet(path)
    numbers = truth.select_dtypes("float").columns
    rounded = truth.assign(**{c: truth[c].round(9) for c in numbers})
    return hashlib.sha256(pd.util.hash_pandas_object(rounded, index=False).to_numpy()).hexdigest()


def test_same_seed_gives_byte_identical_tables(tmp_path: Path) -> None:
    generate_world(tmp_path / "a", n_accounts=120, months=8, seed=11, truth_paths=8)
    generate_world(tmp_path / "b", n_accounts=120, months=8, seed=11, truth_paths=8)
    generate_world(tmp_path / "c", n_accounts=120, months=8, seed=12, truth_paths=8)
    a, b, c = (_digests(tmp_path / x) for x in "abc")
    assert len(a) == len(TABLES) + 2  # and the two truth files
    assert a == b
    assert a["usage_events.parquet"] != c["usage_events.parquet"]


# Digests of `generate_world(n_accounts=120, months=8, seed=11, truth_paths=8)` as first written
# (pyarrow 25.0.1; the oracle's probabilities to 9 decimals): options added to the generator must
# leave the default world as it was. The signing truth was added later, beside it. The tables were
# rewritten with LZ4 for zstd later still (their contents checked equal, frame by frame).
DEFAULT_WORLD = {
    "_truth/signing.parquet": "9871261b9af0939fd53d39e7f79e80b2b406b6cb90971d9d7f84fc3b3434a107",
    "_truth/truth.parquet": "7aa65eeb6766bdfefc2e53fecb157b18b6296b3e9e94ef38424b0a3453eacb15",
    "accounts.parquet": "45b98cb604cadbbeb5a0ebe15a20af39dff8f20a9690d53025bc779d17a7eaa2",
    "contacts.parquet": "79ff384662ff717b17d143050f17cb603ca774c71446d159438d93501deef6b7",
    "cs_touchpoints.parquet": "c661ff3514decbe3cb39cc5be00ce6ca62d5be9f77336bf4b4c8a1b836f155d7",
    "nps_responses.parquet": "83ad705f9a298327c193afa1355bd03e61d674a34a528cfd5d12c674254a9c1f",
    "onboarding_milestones.parquet": (
        "4507a63fcd8cb25e0baa62e40d7218306f65290a11dfbaf2442493aa49a88d91"
    ),
    "subscriptions.parquet": "8393179189b5b651b08d6bed7e4ac3ddf60fcc597748068b495fb87d2f19eea0",
    "support_tickets.parquet": "1d1789cf93b447f1d246e416d637ad68bb7f69afb88910d5d12cb25f26386dcd",
    "usage_events.parquet": "ae4e331ebc7bbbc59330ad6ee84dc8cf2a6df8ffbd625bed6544e7ad0e73fa21",
}


def test_the_default_world_is_unchanged_byte_for_byte(tmp_path: Path) -> None:
    generate_world(tmp_path / "w", n_accounts=120, months=8, seed=11, truth_paths=8)
    generate_world(tmp_path / "b2b", 120, 8, seed=11, truth_paths=8, shape=shape_of("b2b"))
    assert _digests(tmp_path / "w") == DEFAULT_WORLD == _digests(tmp_path / "b2b")


def _shaped(tmp_path: Path, shape: Shape, months: int = 12) -> dict[str, pd.DataFrame]:
    out = tmp_path / "world"
    generate_world(out, n_accounts=150, months=months, seed=2, truth_paths=4, shape=shape)
    return {p.stem: pd.read_parquet(p) for p in out.rglob("*.parquet")}


def test_another_event_vocabulary(tmp_path: Path) -> None:
    world = _shaped(tmp_path, shape_of(events="post, like,message,adview"))
    counts = world["usage_events"].event_type.value_counts()
    assert set(counts.index) == {"post", "like", "message", "adview"}
    assert counts.index[0] == "post"  # weights fall with the rank in the list
    with pytest.raises(ValueError, match="at least two distinct names"):
        Vocabulary.named(("post", "post"))


def test_expansion_switched_off(tmp_path: Path) -> None:
    world = _shaped(tmp_path, shape_of(expansion=False))
    subs = world["subscriptions"]
    assert set(subs["product"]) == {"platform"}
    assert subs.groupby("account_id").seats.nunique().max() == 1  # no upsell of seats
    assert (world["truth"].p_expansion_90d == 0).all()


def test_monthly_billing_gives_one_month_terms_renewed_as_rows(tmp_path: Path) -> None:
    subs = _shaped(tmp_path, shape_of(billing="monthly"))["subscriptions"]
    core = subs[subs["product"] == "platform"]
    months = (pd.to_datetime(core.end_date).dt.to_period("M") - pd.to_datetime(
        core.start_date).dt.to_period("M")).map(lambda d: d.n)  # fmt: skip
    assert core.end_date.notna().all() and months.le(1).all()
    assert core.groupby("account_id").size().median() >= 4  # a new row every month


def test_one_segment(tmp_path: Path) -> None:
    world = _shaped(tmp_path, shape_of(segment="mid_market"))
    assert set(world["accounts"].segment) == {"mid_market"}


def test_a_short_history_spans_its_months(tmp_path: Path) -> None:
    ts = _shaped(tmp_path, Shape(), months=12)["usage_events"].ts
    assert ts.min() >= pd.Timestamp("2023-01-01") and ts.max() < pd.Timestamp("2024-01-01")


def test_consumer_preset_has_one_user_per_account_and_only_required_tables(
    tmp_path: Path,
) -> None:
    world = _shaped(tmp_path, PRESETS["consumer"])
    assert set(world) == {"accounts", "subscriptions", "usage_events", "truth", "signing"}
    assert world["usage_events"].groupby("account_id").user_id.nunique().max() == 1
    assert "post" in set(world["usage_events"].event_type)


@pytest.mark.parametrize(("locale", "rollup"), [("de", True), ("us", False), ("ja", False)])
def test_a_world_exported_as_users_systems_write_it_gives_the_same_features(
    tmp_path: Path, locale: str, rollup: bool
) -> None:
    """Spreadsheet CSV in a locale (and usage as a daily rollup) read with default settings."""
    kept = generate_world(tmp_path / "kept", 40, 8, seed=6, truth_paths=2,
                          shape=shape_of(required_only=True)).out  # fmt: skip
    exported = generate_world(tmp_path / "csv", 40, 8, seed=6, truth_paths=2,
                              shape=shape_of(required_only=True), csv_locale=locale,
                              usage_rollup=rollup).out  # fmt: skip
    assert not list(exported.glob("*.parquet")) and len(list(exported.glob("*.csv"))) == 3
    written = (exported / "subscriptions.csv").read_text()
    assert {"de": "01.2023;", "us": "/2023,", "ja": "2023/01/"}[locale] in written
    assert {"de": ",00\u00a0€", "us": '"$1,', "ja": ".00,"}[locale] in written
    cfg = Config(data=DataConfig(event_counts="quantity" if rollup else "rows"))
    frames = [write_features(world, config, tmp_path / f"{world.name}.parquet").path
              for world, config in ((kept, Config()), (exported, cfg))]  # fmt: skip
    kept_features, exported_features = (pd.read_parquet(f) for f in frames)
    assert len(kept_features) > 100
    pd.testing.assert_frame_equal(kept_features, exported_features, check_dtype=False)


def test_an_unknown_locale_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown locale 'fr'; use one of de, us, ja"):
        generate_world(tmp_path / "w", 10, 4, csv_locale="fr")
    assert not (tmp_path / "w").exists()


def test_world_uses_the_contract_column_names(small_world: Path) -> None:
    """…all of them, but those that stand in for another (`mrr` for `arr`: `--mrr` writes it)."""
    for name, table in TABLES.items():
        columns = pd.read_parquet(small_world / f"{name}.parquet").columns
        stand_ins = {c.instead for c in table.columns}
        assert list(columns) == [c for c in table.column_names if c not in stand_ins], name


def test_events_stay_inside_each_account_lifetime(small_world: Path) -> None:
    events = pd.read_parquet(small_world / "usage_events.parquet", columns=["account_id", "ts"])
    subs = pd.read_parquet(small_world / "subscriptions.parquet")
    accounts = pd.read_parquet(small_world / "accounts.parquet").set_index("account_id")
    span = events.groupby("account_id").ts.agg(["min", "max"])
    ends = pd.to_datetime(subs.canceled_at.fillna(subs.end_date)).groupby(subs.account_id).max()
    assert (
        span["min"].dt.normalize() >= pd.to_datetime(accounts.signup_date.reindex(span.index))
    ).all()
    churned = ends.dropna().index.intersection(span.index)
    assert (span.loc[churned, "max"] < ends[churned] + pd.Timedelta(days=1)).all()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Realised labels joined with the simulator's truth on a 1,200-account, 30-month world."""
    out = tmp_path_factory.mktemp("rates") / "world"
    generate_world(out, n_accounts=1200, months=30, seed=21, truth_paths=60)
    return labels_with_truth(out, Config())


def test_rates_are_in_b2b_saas_ranges(outcomes: pd.DataFrame) -> None:
    churn = outcomes.dropna(subset=["churn_90d"])
    monthly = 1 - (1 - churn.churn_90d.mean()) ** (1 / 3)
    by_segment = churn.groupby("segment").churn_90d.mean()
    expansion = outcomes.expansion_90d.dropna().mean()
    assert 0.005 <= monthly <= 0.04
    assert by_segment["smb"] > by_segment["mid_market"] > by_segment["enterprise"]
    assert 0.05 <= expansion <= 0.20


def test_truth_is_a_calibrated_oracle(outcomes: pd.DataFrame) -> None:
    churn = outcomes.dropna(subset=["churn_90d"])
    voluntary = churn[churn.involuntary_churn_90d == 0]
    expansion = outcomes.dropna(subset=["expansion_90d"])
    auc = roc_auc_score(voluntary.churn_90d, voluntary.p_churn_90d)
    assert 0.75 <= auc <= 0.92
    assert roc_auc_score(expansion.expansion_90d, expansion.p_expansion_90d) > 0.65
    # Probabilities agree with what happened, overall and in the riskiest decile.
    assert voluntary.p_churn_90d.mean() == pytest.approx(voluntary.churn_90d.mean(), rel=0.15)
    assert expansion.p_expansion_90d.mean() == pytest.approx(
        expansion.expansion_90d.mean(), rel=0.15
    )
    top = voluntary[voluntary.p_churn_90d >= voluntary.p_churn_90d.quantile(0.9)]
    assert top.p_churn_90d.mean() == pytest.approx(top.churn_90d.mean(), rel=0.2)


def test_the_truth_follows_the_horizon_it_is_given(tmp_path: Path) -> None:
    """A 30-day world's oracle is named for 30 days and matches 30-day outcomes (it would be
    three times too high if the simulator kept its 90 days)."""
    generate_world(tmp_path, n_accounts=1200, months=24, seed=3, truth_paths=30, horizon_days=30)
    cfg = Config.model_validate({"labels": {"horizon_days": 30}})
    outcomes = labels_with_truth(tmp_path, cfg).dropna(subset=["churn_30d"])
    assert "p_churn_90d" not in outcomes
    voluntary = outcomes[outcomes.involuntary_churn_30d == 0]
    assert voluntary.p_churn_30d.mean() == pytest.approx(voluntary.churn_30d.mean(), rel=0.25)
    assert outcomes.p_expansion_30d.mean() == pytest.approx(outcomes.expansion_30d.mean(), rel=0.25)


def test_a_product_change_mid_way_lowers_recorded_use_in_its_segment_only(tmp_path: Path) -> None:
    """From the shift on, smb accounts record about half their active days; before it, and in
    other segments, about as many as in the same world without the shift (events are drawn
    after the simulation, so not the very same ones); contracts, and so churn, are unchanged."""
    plain = _shaped(tmp_path / "plain", Shape())
    shifted = _shaped(tmp_path / "shifted", shape_of(shift="2023-07-01:0.5:smb"))

    def days(world: dict[str, pd.DataFrame], after: bool, smb: bool) -> int:
        e = world["usage_events"].merge(world["accounts"][["account_id", "segment"]])
        e = e[(e.ts >= pd.Timestamp("2023-07-01")) == after]
        e = e[(e.segment == "smb") == smb]
        return e.assign(day=e.ts.dt.date)[["account_id", "day"]].drop_duplicates().shape[0]

    assert abs(days(shifted, False, True) / days(plain, False, True) - 1) < 0.05
    assert days(shifted, True, True) < 0.65 * days(plain, True, True)
    assert abs(days(shifted, True, False) / days(plain, True, False) - 1) < 0.1
    assert shifted["subscriptions"].equals(plain["subscriptions"])
    with pytest.raises(ValueError, match="DATE:FACTOR"):
        shape_of(shift="soon")


def test_a_planted_problem_makes_one_industry_and_channel_onboard_poorly_and_churn(
    tmp_path: Path,
) -> None:
    """In the planted cell, first value is rarely reached and accounts churn more; elsewhere
    onboarding is as in the world without it (the firmographics come from their own stream)."""
    out = tmp_path / "world"
    generate_world(out, n_accounts=1500, months=12, seed=3, truth_paths=2,
                   shape=shape_of(problem="software:inbound"))  # fmt: skip
    accounts = pd.read_parquet(out / "accounts.parquet")
    first = pd.read_parquet(out / "onboarding_milestones.parquet")
    done = first[first.milestone == "first_value"].set_index("account_id").completed_at.notna()
    subs = pd.read_parquet(out / "subscriptions.parquet")
    end = pd.to_datetime(subs.canceled_at.fillna(subs.end_date)).fillna(pd.Timestamp("2099-01-01"))
    last = end.groupby(subs.account_id)
    ended = last.max().reindex(accounts.account_id).lt(pd.Timestamp("2023-12-01")).to_numpy()
    software = (accounts.industry == "software").to_numpy()
    cell = software & (accounts.acquisition_channel == "inbound").to_numpy()
    reached = done.reindex(accounts.account_id).to_numpy(dtype=bool)
    assert cell.sum() > 30
    assert reached[cell].mean() < 0.25 < 0.5 < reached[~cell].mean()
    assert ended[cell].mean() > 1.5 * ended[~cell].mean()
    with pytest.raises(ValueError, match="INDUSTRY:CHANNEL"):
        shape_of(problem="software")
    with pytest.raises(ValueError, match="unknown industry"):
        shape_of(problem="shipbuilding:inbound")


def test_fit_strength_is_bounded() -> None:
    with pytest.raises(ValueError, match="fit strength"):
        shape_of(fit=5.0)

"""Batch scoring: reasons that add up, safe CRM cells, changed rows only, atomic and repeatable."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from tests.helpers import T, accounts, day, events, subscription, tables
from typer.testing import CliRunner

from churnml.cli import app
from churnml.config import Config, RegistryConfig
from churnml.data import load
from churnml.data.sources import cached
from churnml.features.catalogue import by_name
from churnml.io import run_file
from churnml.models.registry import export_models, resolve_models
from churnml.reports.site import build_report, safe_name
from churnml.scoring import changes, outputs, stream
from churnml.scoring.actions import next_best_action
from churnml.scoring.crm import load_field_map, neutralise, read_export
from churnml.scoring.outputs import (
    ADOPTION_FILE,
    CURRENCY,
    FORECAST,
    KEY_EVENTS,
    MODELS,
    read_meta,
)
from churnml.scoring.score import check_as_of, score, score_table, scoring_table, trained_config

AS_OF = dt.date(2024, 9, 1)
NASTY = {0: '=HYPERLINK("http://x","y")', 1: "@SUM(1)", 2: "株式会社さくら, 東京", 3: "-2+3"}


@pytest.fixture(scope="module")
def setup(small_world: Path, trained_config: Config,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:  # fmt: skip
    """The trained small world, with account names a spreadsheet or a page could run."""
    world = Path(shutil.copytree(small_world, tmp_path_factory.mktemp("scoring") / "world"))
    accounts = pd.read_parquet(world / "accounts.parquet")
    for i, name in NASTY.items():  # several accounts each, so that some are active at AS_OF
        accounts.loc[accounts.index[i:80:4], "account_name"] = name
    accounts.to_parquet(world / "accounts.parquet", index=False)
    return trained_config, world


@pytest.fixture(scope="module")
def scored(setup: tuple[Config, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg, world = setup
    out = tmp_path_factory.mktemp("out") / "scores"
    score(cfg, data_dir=world, as_of=AS_OF, out=out)
    return out


def test_reasons_add_up_to_the_probability(scored: Path) -> None:
    scores = pd.read_parquet(scored / "scores.parquet").set_index("account_id")
    contrib = pd.read_parquet(scored / "contributions.parquet")
    for target in ("churn", "expansion"):
        mine = contrib[contrib.target == target].set_index("account_id").drop(columns="target")
        total = mine.sum(axis=1)
        gap = scores[f"{target}_probability"] - scores[f"{target}_base_rate"]
        assert np.abs(total.reindex(scores.index) - gap).max() < 1e-6
    assert scores.churn_base_rate.nunique() == 1  # one base rate per model


def test_reasons_are_levers_that_raise_the_probability_and_read_as_they_should(
    scored: Path,
) -> None:
    """A reason is something a CSM can move: context (tenure, renewal timing, segment, size) is
    never one. Reasons come largest first, each raising its probability by at least MIN_POINTS,
    and none reads against itself: a churn reason is not better than its segment median, an
    expansion signal not worse."""
    from churnml.scoring.reasons import MIN_POINTS

    scores = pd.read_parquet(scored / "scores.parquet")
    contrib = pd.read_parquet(scored / "contributions.parquet")
    events = outputs.read_key_events(scored / "scores.parquet")
    cat = by_name(Config().with_key_events(events).features)
    shown = 0
    for target, column in (("churn", "churn_reasons"), ("expansion", "expansion_signals")):
        mine = contrib[contrib.target == target].set_index("account_id").drop(columns="target")
        for _, row in scores.iterrows():
            reasons = list(row[column])
            if row[f"{target}_model_skill"] != "ok":
                assert reasons == []  # a model without skill gives no reasons
            points = [mine.loc[row.account_id, r["feature"]] for r in reasons]
            assert points == sorted(points, reverse=True)
            assert all(p >= MIN_POINTS for p in points)
            for r in reasons:
                f = cat[r["feature"]]
                assert f.lever and r["sentence"].startswith("raises ")
                if f.healthy != "neutral" and r["value"] is not None and not np.isnan(
                    r["segment_median"] or np.nan
                ):
                    better = (float(r["value"]) - r["segment_median"]) * (
                        1 if f.healthy == "higher" else -1)  # fmt: skip
                    assert better <= 0 if target == "churn" else better >= 0, r
            shown += len(reasons)
    assert shown > 100


def test_a_reason_says_its_direction_size_value_and_segment_median() -> None:
    from churnml.scoring.reasons import top_reasons

    cat = by_name(Config().features)
    up = pd.DataFrame({"seat_utilisation_30d": [0.031, 0.02], "tenure_days": [0.0, 0.0]})
    values = pd.DataFrame({"seat_utilisation_30d": [0.38, 0.9], "tenure_days": [10.0, 10.0]})
    medians = pd.DataFrame({"seat_utilisation_30d": [0.5]}, index=["enterprise"])
    segments = pd.Series(["enterprise", "enterprise"])
    shown = Config().report
    en = top_reasons(up, values, segments, medians, cat, "en", 3, "churn", shown).to_pylist()
    assert [r["sentence"] for r in en[0]] == [
        "raises risk +3.1 pts: Active seats 30d 38% (Enterprise median 50%)"]
    assert en[1] == []  # 90% is above the median: not a reason for churn risk
    ja = top_reasons(up, values, segments, medians, cat, "ja", 3, "expansion", shown).to_pylist()
    assert ja[1][0]["sentence"] == (
        "拡大見込みを+2.0pt押し上げ：アクティブシート率（30日） 90%（大企業の中央値 50%）")


def test_money_in_a_reason_is_in_the_books_currency() -> None:
    from churnml.scoring.reasons import top_reasons

    cat = by_name(Config().features)
    up, values = pd.DataFrame({"arr": [0.02]}), pd.DataFrame({"arr": [1_200_000.0]})
    medians = pd.DataFrame({"arr": [900_000.0]}, index=["smb"])
    shown = Config.model_validate({"report": {"currency": "JPY"}}).report
    [[reason]] = top_reasons(up, values, pd.Series(["smb"]), medians, cat, "en", 3, "churn",
                             shown).to_pylist()  # fmt: skip
    assert reason["sentence"] == "raises risk +2.0 pts: ARR ¥1,200,000 (SMB median ¥900,000)"


def test_a_batch_where_nothing_pushes_the_score_up_has_no_reasons() -> None:
    from churnml.scoring.reasons import top_reasons

    down = pd.DataFrame({"a": [-0.1, -0.2], "b": [-0.3, 0.0]})
    values = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    reasons = top_reasons(down, values, pd.Series(["smb", "smb"]), pd.DataFrame(), {}, "en", 3)
    assert reasons.to_pylist() == [[], []]


def test_every_active_account_is_scored_once_with_the_contract_columns(scored: Path) -> None:
    scores = pd.read_parquet(scored / "scores.parquet")
    assert scores.account_id.is_unique and len(scores) > 100
    required = {
        "account_id",
        "as_of",
        "segment",
        "csm_owner",
        "arr",
        "churn_probability",
        "churn_tier",
        "health_score",
        "arr_at_risk",
        "expansion_probability",
        "expansion_tier",
        "expected_expansion_arr",
        "next_best_action",
        "churn_reasons",
        "expansion_signals",
        "score_adoption",
        "score_onboarding",
        "score_support",
        "score_sentiment",
        "score_relationship",
        "score_contract",
        "churn_model",
        "expansion_model",
        "scored_at",
    }
    assert required <= set(scores.columns)
    assert (
        scores.churn_probability.between(0, 1).all() and scores.health_score.between(0, 100).all()
    )
    np.testing.assert_allclose(scores.arr_at_risk, (scores.churn_probability * scores.arr).round(2))


def test_crm_cells_cannot_run_as_formulas(scored: Path) -> None:
    with open(scored / "crm_export.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    text = (scored / "crm_export.csv").read_text(encoding="utf-8")
    cells = [cell for row in rows for cell in row.values()]
    assert not [
        c
        for c in cells
        if c[:1] in ("=", "+", "@", "\t", "\r") or (c[:1] == "-" and not c[1:2].isdigit())
    ]
    cells = neutralise(pd.Series(['=HYPERLINK("http://x","y")', "@SUM(1)", "\tx", "ok", "-1"]))
    assert cells.tolist() == ['\'=HYPERLINK("http://x","y")', "'@SUM(1)", "'\tx", "ok", "'-1"]
    assert text.startswith('"AccountId__c"')


def test_account_names_reach_the_crm_feed_safely(
    setup: tuple[Config, Path], tmp_path: Path
) -> None:
    cfg, world = setup
    fields = tmp_path / "named.yaml"
    fields.write_text(
        "key: Id\nfields:\n  Id: account_id\n  Name: account_name\n  Risk: churn_probability\n"
    )
    score(cfg, data_dir=world, as_of=AS_OF, out=tmp_path / "out", crm=str(fields))
    with open(tmp_path / "out" / "crm_export.csv", encoding="utf-8", newline="") as f:
        names = {row["Name"] for row in csv.DictReader(f)}
    assert '\'=HYPERLINK("http://x","y")' in names
    assert "'@SUM(1)" in names and "'-2+3" in names
    assert "株式会社さくら, 東京" in names


def test_changed_since_writes_only_changed_rows(
    setup: tuple[Config, Path], scored: Path, tmp_path: Path
) -> None:
    cfg, world = setup
    again = score(cfg, data_dir=world, as_of=AS_OF, out=tmp_path / "again", changed_since=scored)
    assert again.crm_rows == 0
    previous = tmp_path / "previous"
    shutil.copytree(scored, previous)
    feed = pd.read_csv(previous / "crm_export.csv", dtype=str, keep_default_na=False)
    feed.loc[0, "Churn_Risk__c"] = "0.9999"
    feed.to_csv(previous / "crm_export.csv", index=False, quoting=csv.QUOTE_ALL)
    changed = score(cfg, data_dir=world, as_of=AS_OF, out=tmp_path / "changed",
                    changed_since=previous)
    assert changed.crm_rows == 1
    # An earlier run on Spark: crm_export.csv is a folder of parts, a header in each.
    (previous / "crm_export.csv").unlink()
    (previous / "crm_export.csv").mkdir()
    for k, part in enumerate((feed[:1], feed[1:])):
        part.to_csv(previous / "crm_export.csv" / f"part-{k:05}.csv", index=False,
                    quoting=csv.QUOTE_ALL)  # fmt: skip
    with pytest.raises(ValueError, match="has not finished"):
        score(cfg, data_dir=world, as_of=AS_OF, out=tmp_path / "parts", changed_since=previous)
    (previous / "_SUCCESS").touch()
    parts = score(cfg, data_dir=world, as_of=AS_OF, out=tmp_path / "parts", changed_since=previous)
    assert parts.crm_rows == 1 and len(feed) > 10


def test_same_inputs_give_identical_scores(
    setup: tuple[Config, Path], scored: Path, tmp_path: Path
) -> None:
    cfg, world = setup
    score(cfg, data_dir=world, as_of=AS_OF, out=tmp_path / "again")
    a = pd.read_parquet(scored / "scores.parquet").drop(columns="scored_at")
    b = pd.read_parquet(tmp_path / "again" / "scores.parquet").drop(columns="scored_at")
    pd.testing.assert_frame_equal(a, b)


def test_an_interrupted_run_leaves_the_previous_output(
    setup: tuple[Config, Path], scored: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, world = setup
    out = tmp_path / "out"
    shutil.copytree(scored, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def crash(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(stream, "crm_frame", crash)  # half-way: scores.parquet is being written
    with pytest.raises(KeyboardInterrupt):
        score(cfg, data_dir=world, as_of=AS_OF, out=out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_exported_models_score_without_a_tracking_store(
    setup: tuple[Config, Path], scored: Path, tmp_path: Path
) -> None:
    cfg, world = setup
    export_models(cfg, tmp_path / "models")
    offline = cfg.model_copy(
        update={"registry": RegistryConfig(tracking_uri=f"sqlite:///{tmp_path / 'empty.db'}")}
    )
    score(offline, data_dir=world, as_of=AS_OF, out=tmp_path / "out", model_dir=tmp_path / "models")
    a = pd.read_parquet(scored / "scores.parquet")
    b = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    np.testing.assert_allclose(a.churn_probability, b.churn_probability)
    np.testing.assert_allclose(a.expansion_probability, b.expansion_probability)


# churn tier, expansion tier, adoption score, ARR at risk, days to renewal → the play
ACTION_CASES = [
    ("high", "high", 80.0, 1_000.0, 300, "save"),  # at risk: save, whatever the upsell score
    ("high", "low", 80.0, 1_000.0, 300, "save"),
    ("medium", "low", 19.0, 96_981.0, 21, "save"),  # short runway, material ARR at risk
    ("medium", "high", 80.0, 96_981.0, 21, "save"),
    ("medium", "low", 50.0, 100.0, 21, "nurture"),  # short runway, little at stake
    ("medium", "low", 50.0, 96_981.0, 200, "nurture"),  # material, but renewal far away
    ("medium", "high", 80.0, 1_000.0, 200, "fix_then_expand"),  # keen, risk not yet low
    ("low", "high", 20.0, 100.0, 200, "fix_then_expand"),  # keen, adoption weak
    ("low", "high", 80.0, 100.0, 200, "expand"),
    ("low", "medium", 88.0, 28_756.0, 25, "save"),  # low risk of a large ARR, renewing soon
    ("low", "low", 80.0, 100.0, None, "nurture"),
    ("low", None, 80.0, 100.0, 10, "nurture"),  # no expansion model: never pitched
    (None, "high", None, None, None, "expand"),  # no churn model: propensity alone
]


def test_next_best_action_follows_the_table_of_cases() -> None:
    from churnml.config import ScoringConfig

    churn, expansion, adoption, at_risk, runway, expected = zip(*ACTION_CASES, strict=True)
    actions = next_best_action(
        np.array(churn, dtype=object), np.array(expansion, dtype=object),
        np.array(adoption, dtype=float), ScoringConfig(), np.array(at_risk, dtype=float),
        np.array(runway, dtype=float),
    )  # fmt: skip
    assert actions.tolist() == list(expected)


def test_cli_score_in_japanese(setup: tuple[Config, Path], tmp_path: Path) -> None:
    cfg, world = setup
    result = CliRunner().invoke(
        app,
        [
            "score",
            "--data",
            str(world),
            "--as-of",
            "2024-09-01",
            "--out",
            str(tmp_path / "ja"),
            "--config",
            _config(cfg, tmp_path),
            "--lang",
            "ja",
            "--crm",
            "hubspot",
        ],
    )
    assert result.exit_code == 0, result.output
    scores = pd.read_parquet(tmp_path / "ja" / "scores.parquet")
    top = scores.nlargest(5, "arr_at_risk").account_id
    assert "Most ARR at risk" in result.output and all(a in result.output for a in top)
    assert scores.churn_reasons_text.str.contains("セグメント中央値|：").any()
    assert (
        (tmp_path / "ja" / "crm_export.csv")
        .read_text(encoding="utf-8")
        .startswith('"churnml_account_id"')
    )


def test_a_book_in_yen_is_shown_in_yen_unless_the_config_says_otherwise(
    setup: tuple[Config, Path], tmp_path: Path
) -> None:
    """Every subscription in JPY and report.currency not set: the CLI's table, the run and its
    report show yen (they showed dollars). A config that sets report.currency is followed."""
    cfg, world = setup
    yen = Path(shutil.copytree(world, tmp_path / "yen"))
    subs = pd.read_parquet(yen / "subscriptions.parquet")
    subs.assign(currency="jpy").to_parquet(yen / "subscriptions.parquet", index=False)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["score", "--data", str(yen), "--as-of", "2024-09-01",
                                      "--out", str(run), "--config", _config(cfg, tmp_path)])
    assert result.exit_code == 0, result.output
    assert read_meta(run / "scores.parquet", CURRENCY) == "JPY"
    table = result.output[result.output.index("Most ARR at risk"):]
    assert "¥" in table and "$" not in table
    html = build_report(run, tmp_path / "site", Config(), "en").read_text(encoding="utf-8")
    assert "¥" in html and "$" not in html
    dollars = Config.model_validate({"report": {"currency": "USD"}})
    html = build_report(run, tmp_path / "usd", dollars, "en").read_text(encoding="utf-8")
    assert "$" in html and "¥" not in html


def test_cli_fit_score_scores_recent_signings_and_deal_files(
    setup: tuple[Config, Path], tmp_path: Path
) -> None:
    """`train` registered a fit model beside churn and expansion; `fit-score` scores the data's
    recent signings, or a deals file, and refuses a file without the model's columns."""
    cfg, world = setup
    config = _config(cfg, tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")  # as in a new process
    run = CliRunner().invoke(app, ["fit-score", "--data", str(world), "--since", "2024-06-01",
                                   "--out", str(tmp_path / "fit"), "--config", config])  # fmt: skip
    assert run.exit_code == 0, run.output
    scored = pd.read_parquet(tmp_path / "fit" / "deals.parquet")
    subs = pd.read_parquet(world / "subscriptions.parquet")
    signed = pd.to_datetime(subs.start_date).groupby(subs.account_id).min()
    assert set(scored.account_id) == set(signed[signed >= pd.Timestamp("2024-06-01")].index)
    assert (tmp_path / "fit" / "fit.html").is_file() and "deals" in run.output
    deals = scored.drop(columns=["fit_probability", "base_rate", "fit", "reasons"])
    deals.rename(columns={"account_id": "deal_id"}).to_csv(tmp_path / "deals.csv", index=False)
    run = CliRunner().invoke(app, ["fit-score", "--deals", str(tmp_path / "deals.csv"), "--out",
                                   str(tmp_path / "again"), "--config", config, "--lang", "ja"])
    assert run.exit_code == 0, run.output
    again = pd.read_parquet(tmp_path / "again" / "deals.parquet")
    assert again.fit_probability.tolist() == pytest.approx(scored.fit_probability.tolist())
    deals.drop(columns=deals.columns[1]).to_csv(tmp_path / "bad.csv", index=False)
    run = CliRunner().invoke(app, ["fit-score", "--deals", str(tmp_path / "bad.csv"), "--out",
                                   str(tmp_path / "bad"), "--config", config])  # fmt: skip
    assert run.exit_code == 1 and "missing" in run.output and not (tmp_path / "bad").exists()
    run = CliRunner().invoke(app, ["fit-score", "--out", str(tmp_path / "x")])
    assert run.exit_code != 0 and "--deals FILE" in run.output


SORTED = {"scores.parquet": ["account_id"], "contributions.parquet": ["target", "account_id"],
          "features.parquet": ["account_id"], ADOPTION_FILE: ["account_id", "month"]}  # fmt: skip


@pytest.mark.spark
@pytest.mark.slow
def test_spark_executors_write_the_run_that_duckdb_writes(
    setup: tuple[Config, Path], scored: Path, tmp_path: Path
) -> None:
    """Features built on Spark, scored by mapInArrow, ranked by Spark's windows and written by
    the executors as folders of parts: the same rows, column by column, as DuckDB's files."""
    cfg, world = setup
    run = tmp_path / "spark"
    result = score(cfg, data_dir=world, as_of=AS_OF, out=run, engine="spark")
    assert (run / "_SUCCESS").is_file()
    assert len(list((run / "scores.parquet").glob("part-*.parquet"))) > 1  # partitioned
    for name, keys in SORTED.items():
        duck, spark = (pd.read_parquet(r / name).drop(columns="scored_at", errors="ignore")
                       .sort_values(keys, ignore_index=True) for r in (scored, run))  # fmt: skip
        pd.testing.assert_frame_equal(duck, spark, rtol=1e-9, check_dtype=False, obj=name)
    parts = sorted((run / "crm_export.csv").glob("part-*.csv"))
    feed = pd.concat(pd.read_csv(p, dtype=str, keep_default_na=False) for p in parts)
    duck = pd.read_csv(scored / "crm_export.csv", dtype=str, keep_default_na=False)
    stamp = load_field_map("salesforce")
    when = [f for f, c in stamp.fields.items() if c == "scored_at"]
    assert feed.drop(columns=when).sort_values(stamp.key, ignore_index=True).equals(
        duck.drop(columns=when).sort_values(stamp.key, ignore_index=True))
    assert (run / "alerts.csv").read_bytes() == (scored / "alerts.csv").read_bytes()
    for key in (KEY_EVENTS, MODELS, FORECAST):
        assert read_meta(run / "scores.parquet", key) == read_meta(scored / "scores.parquet", key)
    top = pd.read_parquet(scored / "scores.parquet").nlargest(5, "arr_at_risk")
    assert result.top_at_risk.account_id.tolist() == top.account_id.tolist()
    assert result.rows == result.crm_rows == len(pd.read_parquet(scored / "scores.parquet"))
    assert build_report(run, tmp_path / "site", cfg).is_file()  # the report reads the parts


@pytest.mark.spark
def test_a_spark_run_is_committed_whole_or_not_at_all(tmp_path: Path) -> None:
    from churnml.data.sources import connect
    from churnml.io import committed

    session = connect("spark")._session
    run, kind = tmp_path / "run", "scores.parquet"  # what an earlier output holds
    with committed(session, str(run), kind) as tmp:
        session.range(3).write.parquet(f"{tmp}/scores.parquet")
    assert (run / "_SUCCESS").is_file()
    with pytest.raises(RuntimeError, match="half-way"), committed(session, str(run), kind) as tmp:
        session.range(5).write.parquet(f"{tmp}/scores.parquet")
        raise RuntimeError("half-way")
    assert len(pd.read_parquet(run / "scores.parquet")) == 3  # the earlier run, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary prefix left
    with committed(session, str(run), kind) as tmp:
        session.range(5).write.parquet(f"{tmp}/scores.parquet")
    assert len(pd.read_parquet(run / "scores.parquet")) == 5
    (run / "_SUCCESS").unlink()  # as a reader sees a run still being copied on an object store
    with pytest.raises(ValueError, match="not finished"):
        run_file(run, "scores.parquet")
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ValueError, match="not an earlier output"):
        committed(session, str(other), kind).__enter__()


def test_a_model_never_scores_a_table_without_its_features(setup: tuple[Config, Path]) -> None:
    cfg, _ = setup
    model = resolve_models(cfg, {}, None)[0]["churn"].model
    rows = pd.DataFrame({name: [1.0] for name in model.features}).drop(columns="nps_last")
    with pytest.raises(ValueError, match=r"lacks 1 column.*nps_last"):
        model.predict(rows)


def _refusal(args: list[str]) -> str:
    result = CliRunner().invoke(app, ["score", *args])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


def _config(cfg: Config, tmp_path: Path) -> str:
    config = tmp_path / "c.yaml"
    config.write_text(f"registry: {{tracking_uri: '{cfg.registry.tracking_uri}'}}\n")
    return str(config)


def test_score_refuses_an_as_of_beyond_the_data(
    setup: tuple[Config, Path], tmp_path: Path
) -> None:
    cfg, world = setup
    last = pd.read_parquet(world / "usage_events.parquet", columns=["ts"]).ts.max().date()
    late = last + dt.timedelta(days=30)
    args = ["--data", str(world), "--out", str(tmp_path / "out"), "--as-of", str(late)]
    message = _refusal([*args, "--config", _config(cfg, tmp_path)])
    assert f"as_of {late} is beyond the data" in message and str(last) in message
    assert "usage_events" in message and not (tmp_path / "out").exists()
    early = ["--data", str(world), "--out", str(tmp_path / "out"), "--as-of", "2000-01-01"]
    assert "no account is active" in _refusal([*early, "--config", _config(cfg, tmp_path)])
    latest = score(cfg, data_dir=world, as_of=None, out=tmp_path / "ok")  # the default
    assert latest.as_of == last + dt.timedelta(days=1) and latest.rows > 0


def test_score_refuses_when_a_model_is_missing(
    setup: tuple[Config, Path], tmp_path: Path
) -> None:
    _, world = setup
    config = tmp_path / "c.yaml"
    config.write_text(f"registry: {{tracking_uri: 'sqlite:///{tmp_path / 'empty.db'}'}}\n")
    args = ["--data", str(world), "--as-of", str(AS_OF), "--out", str(tmp_path / "out")]
    message = _refusal([*args, "--config", str(config)])
    assert "no churn model registered as churnml-churn" in message
    assert "churnml train" in message
    message = _refusal([*args, "--model-dir", str(tmp_path / "nowhere")])
    assert f"no churn model at {tmp_path / 'nowhere' / 'churn'}" in message
    assert not (tmp_path / "out").exists()


def test_score_refuses_when_a_feature_the_model_needs_is_missing(
    setup: tuple[Config, Path], tmp_path: Path
) -> None:
    cfg, world = setup
    partial = Path(shutil.copytree(world, tmp_path / "world"))
    (partial / "nps_responses.parquet").unlink()  # optional table: its features are skipped
    args = ["--data", str(partial), "--as-of", str(AS_OF), "--out", str(tmp_path / "out")]
    message = _refusal([*args, "--config", _config(cfg, tmp_path)])
    assert "the churn model" in message
    assert "feature column(s) that the feature table lacks" in message
    assert "nps_responses" in message and not (tmp_path / "out").exists()


def _whole_book(cfg: Config, world: Path, out: Path, previous: Path | None = None) -> None:
    """The run of `score` at AS_OF written at once from the whole book scored in memory (with
    what changed since `previous`, a run by the same models that kept its inputs)."""
    tables = load(world, cfg.data)
    models, _ = resolve_models(cfg, {}, None)
    keyed = trained_config(cfg, models, tables, AS_OF)
    table = cached(scoring_table(tables, AS_OF, keyed))
    scores, contributions = score_table(table, models, keyed)
    names = sorted({f for m in models.values() for f in m.model.features} & set(table.columns))
    values = table.select("account_id", *names).execute()
    found = None
    if previous is not None:
        before = changes.read_previous(previous, AS_OF)
        then = tuple(pd.read_parquet(previous / f) for f in ("contributions.parquet",
                                                             "features.parquet"))  # fmt: skip
        scores = scores.assign(**changes.compare(
            scores, before, before, (contributions, then[0]), (values, then[1]),
            by_name(keyed.features), "en", keyed.report.currency))  # fmt: skip
        found = changes.alerts(scores, cfg.scoring.alert_points)
    outputs.write_outputs(scores, contributions, load_field_map("salesforce"), out, alerts=found,
                          features=values)  # fmt: skip


def _same_runs(a: Path, b: Path) -> None:
    """Two runs' files hold the same rows (the time of scoring aside)."""
    for name in ("scores.parquet", "contributions.parquet", "features.parquet"):
        x, y = (pd.read_parquet(d / name).sort_values("account_id", kind="stable")
                .reset_index(drop=True) for d in (a, b))  # fmt: skip
        pd.testing.assert_frame_equal(x.drop(columns="scored_at", errors="ignore"),
                                      y.drop(columns="scored_at", errors="ignore"))  # fmt: skip
    x, y = (pd.read_csv(d / "crm_export.csv", dtype=str, keep_default_na=False) for d in (a, b))
    pd.testing.assert_frame_equal(x.drop(columns="Churn_Model_Scored_At__c"),
                                  y.drop(columns="Churn_Model_Scored_At__c"))  # fmt: skip
    assert (a / "alerts.csv").read_bytes() == (b / "alerts.csv").read_bytes()


def test_scoring_in_chunks_changes_nothing(
    setup: tuple[Config, Path], scored: Path, tmp_path: Path
) -> None:
    """Streamed in chunks of 37 accounts, written as they go (bounded memory), the files hold
    what the whole book scored in memory and written at once holds."""
    cfg, world = setup
    small = cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update={"chunk_rows": 37})})
    score(small, data_dir=world, as_of=AS_OF, out=tmp_path / "chunks")
    _whole_book(cfg, world, tmp_path / "whole")
    for run in (scored, tmp_path / "chunks"):
        _same_runs(tmp_path / "whole", run)


# -- accounts in renewal -------------------------------------------------------------------------
def test_accounts_whose_term_just_ended_are_scored_as_in_renewal() -> None:
    """At the grace boundary: a term ending on as_of, 1 day before, grace-1 and grace+1 days
    before, a cancelled one and a renewed one. Only the first three are in renewal."""
    grace = Config().labels.grace_days
    subs = pd.DataFrame([
        subscription("on_as_of", -365, 0, arr=1000.0, seats=5),
        subscription("day_before", -365, -1, arr=2000.0, seats=5),
        subscription("in_grace", -365, -(grace - 1), arr=3000.0, seats=5),
        subscription("past_grace", -365, -(grace + 1), arr=4000.0, seats=5),
        {**subscription("cancelled", -365, -1, arr=5000.0, seats=5), "canceled_at": day(-20)},
        subscription("renewed", -365, -10, arr=6000.0, seats=5),
        subscription("renewed", -10, 355, arr=7000.0, seats=5),
    ])  # fmt: skip
    ids = sorted(set(subs.account_id))
    t = tables(accounts=accounts(*ids), subscriptions=subs,
               usage_events=events(*[(a, day(-3)) for a in ids]))  # fmt: skip
    out = scoring_table(t, T, Config()).execute().set_index("account_id").sort_index()
    assert sorted(out.index) == ["day_before", "in_grace", "on_as_of", "renewed"]
    assert out.renewal_pending.to_dict() == {
        "day_before": True, "in_grace": True, "on_as_of": True, "renewed": False
    }  # fmt: skip
    days = out.days_since_term_end
    assert days.loc[["on_as_of", "day_before", "in_grace"]].tolist() == [0, 1, grace - 1]
    assert pd.isna(days.loc["renewed"])
    # The contract features are the last term's; ARR at risk counts its ARR.
    assert out.arr_now.to_dict() == {"day_before": 2000.0, "in_grace": 3000.0, "on_as_of": 1000.0,
                                     "renewed": 7000.0}  # fmt: skip
    assert out.arr.to_dict() == out.arr_now.to_dict() and (out.seats == 5).all()
    assert out.days_to_renewal.loc[["on_as_of", "day_before"]].tolist() == [0, -1]


def test_a_model_without_skill_is_scored_but_flagged_and_gives_no_reasons(
    setup: tuple[Config, Path], tmp_path: Path
) -> None:
    cfg, world = setup
    export_models(cfg, tmp_path / "models")
    [meta_path] = (tmp_path / "models" / "churn").rglob("model.json")
    meta = json.loads(meta_path.read_text())
    meta["skill"] = {"no_skill": True, "reason": "set by the test"}
    meta_path.write_text(json.dumps(meta))
    result = score(cfg, data_dir=world, as_of=AS_OF, out=tmp_path / "out",
                   model_dir=tmp_path / "models")
    assert "churn" in result.no_skill
    scores = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    assert (scores.churn_model_skill == "no_skill").all()
    assert scores.churn_probability.notna().all() and scores.health_score.isna().all()
    assert scores.churn_reasons.map(len).eq(0).all()
    crm = pd.read_csv(tmp_path / "out" / "crm_export.csv", dtype=str, keep_default_na=False)
    assert (crm.Churn_Model_Skill__c == "no_skill").all() and (crm.Churn_Reasons__c == "").all()


def test_a_few_stray_events_far_ahead_do_not_make_a_far_as_of_scoreable() -> None:
    ids = [f"a{i}" for i in range(30)]
    daily = [(a, day(-k)) for a in ids for k in range(1, 101)]  # 3,000 events up to T
    stray = [(a, pd.Timestamp("2029-02-15")) for a in ids[:2]]  # a clock gone wrong
    t = tables(usage_events=events(*daily, *stray))
    check_as_of(t, T, 3)  # the data reaches T
    with pytest.raises(ValueError, match=r"beyond the data.*stray ones reach 2029-02-15"):
        check_as_of(t, dt.date(2029, 3, 1), 3)


def test_the_scorecard_spreads_and_says_no_signal_where_a_family_has_no_data(
    scored: Path, setup: tuple[Config, Path]
) -> None:
    """Health spans the book (it ranks churn risk); each family is a percentile within the
    segment with a real spread, and empty for an account without any NPS response."""
    _, world = setup
    scores = pd.read_parquet(scored / "scores.parquet")
    assert scores.health_score.min() <= 10 and scores.health_score.max() >= 90
    order = scores.sort_values(["churn_probability", "health_score"], ascending=[True, False])
    assert (np.diff(order.health_score) <= 0).all()  # healthier: never more churn risk
    # Calibration's steps give many accounts one probability; health keeps the model's order.
    assert scores.health_score.nunique() >= scores.churn_probability.nunique()
    assert scores.health_score.value_counts().max() <= 0.05 * len(scores)
    for family in ("adoption", "onboarding", "support", "relationship", "contract"):
        assert scores[f"score_{family}"].std() > 10, family
    nps = pd.read_parquet(world / "nps_responses.parquet")
    answered = set(nps.account_id[pd.to_datetime(nps.submitted_at) < pd.Timestamp(AS_OF)])
    silent = ~scores.account_id.isin(answered)
    assert silent.any() and scores.score_sentiment[silent].isna().all()
    assert scores.score_sentiment[~silent].notna().all()


def test_plays_follow_the_driver_the_segment_and_the_renewal() -> None:
    from churnml.scoring.plays import choose_plays, load_library

    cases = [  # action, driver, family, segment, renewal → play, owner, due
        ("save", "champion_left_90d", "relationship", "enterprise", "2026-06-01",
         "new_champion", "account_executive", "2026-01-15"),
        ("save", "champion_left_90d", "relationship", "smb", "2026-06-01",
         "new_champion", "csm", "2026-01-15"),
        ("save", "high_priority_tickets_30d", "support", "smb", "2026-02-10",
         "escalation_review", "support_lead", "2026-01-01"),  # renewal close: due now
        ("fix_then_expand", "onboarding_overdue", "onboarding", "smb", None,
         "onboarding_finish", "csm", "2026-01-15"),
        ("save", "seat_utilisation_30d", "adoption", "smb", "2026-09-01",
         "seat_activation", "csm", "2026-01-15"),
        ("save", None, None, "smb", None, "save_plan", "csm", "2026-01-08"),
        ("nurture", "seat_utilisation_30d", "adoption", "smb", None,
         "keep_cadence", "csm", "2026-02-15"),
        ("expand", "seat_utilisation_30d", "adoption", "smb", "2026-12-01",
         "expansion_proposal", "account_executive", "2026-01-31"),
        (None, None, None, "smb", None, None, None, None),  # no model, no action, no play
    ]  # fmt: skip
    frame = pd.DataFrame(cases, columns=["action", "driver", "family", "segment", "renewal",
                                         "play", "owner", "due"])  # fmt: skip
    got = choose_plays(load_library(), frame.action, frame.driver, frame.family, frame.segment,
                       pd.Series(pd.Timestamp("2026-01-01"), index=frame.index),
                       pd.to_datetime(frame.renewal))  # fmt: skip
    def plain(values: pd.Series) -> list[str | None]:
        return [None if pd.isna(v) else str(v) for v in values]

    for column, want in (("play", "play"), ("play_owner", "owner"), ("play_due", "due")):
        assert plain(got[column]) == plain(frame[want]), column


def test_a_play_library_without_a_catch_all_is_refused(tmp_path: Path) -> None:
    from churnml.config import ConfigError
    from churnml.scoring.plays import load_library

    library = tmp_path / "plays.yaml"
    library.write_text("owners: {csm: {en: CSM, ja: CSM}}\nplays:\n- id: x\n  actions: [save]\n"
                       "  family: support\n  owner: csm\n  due_days: 7\n"
                       "  en: {title: t, text: t}\n  ja: {title: t, text: t}\n")  # fmt: skip
    with pytest.raises(ConfigError, match="no catch-all play"):
        load_library(str(library))


def test_the_main_driver_is_read_from_reasons_gathered_from_chunks() -> None:
    from churnml.scoring.book import first_feature
    from churnml.scoring.reasons import REASON

    def chunk(rows: list) -> pd.Series:
        return pd.Series(pd.arrays.ArrowExtensionArray(pa.array(rows, pa.list_(REASON))))

    reason = {"feature": "nps_last", "value": "3", "contribution": 0.02, "segment_median": 8.0,
              "sentence": "s"}  # fmt: skip
    gathered = pd.concat([chunk([[reason], []]), chunk([None, [{**reason, "feature": "x"}]])],
                         ignore_index=True)  # fmt: skip
    assert first_feature(gathered).tolist() == ["nps_last", None, None, "x"]


# -- what changed since a previous run --------------------------------------------------------
BEFORE = dt.date(2024, 8, 1)


@pytest.fixture(scope="module")
def changed(setup: tuple[Config, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg, world = setup
    base = tmp_path_factory.mktemp("changes")
    score(cfg, data_dir=world, as_of=BEFORE, out=base / "before")
    score(cfg, data_dir=world, as_of=AS_OF, out=base / "now", previous=base / "before")
    return base


def test_score_changes_add_up_exactly_to_the_change_in_probability(changed: Path) -> None:
    """Same model, same data: the model part is nil, and the per-feature deltas of the
    contributions sum to the change; each driver is one of those deltas, for a value that moved."""
    now = pd.read_parquet(changed / "now" / "scores.parquet").set_index("account_id")
    before = pd.read_parquet(changed / "before" / "scores.parquet").set_index("account_id")
    both = now.index.intersection(before.index)
    assert len(both) > 50 and now.churn_change[now.index.difference(both)].isna().all()
    c_now, c_before = (pd.read_parquet(changed / d / "contributions.parquet")
                       .query("target == 'churn'").set_index("account_id").drop(columns="target")
                       .loc[both] for d in ("now", "before"))  # fmt: skip
    deltas = c_now - c_before
    change = now.churn_probability[both] - before.churn_probability[both]
    np.testing.assert_allclose(now.churn_change[both], change, atol=1e-12)
    np.testing.assert_allclose(deltas.sum(axis=1), change, atol=1e-9)
    assert now.churn_change_model[both].abs().max() < 1e-9
    drivers = 0
    for account in both:
        for d in now.churn_change_drivers[account]:
            assert d["points"] == pytest.approx(deltas.loc[account, d["feature"]], abs=1e-9)
            assert d["before"] != d["after"] and np.sign(d["points"]) == np.sign(change[account])
            drivers += 1
    assert drivers > 50
    moved = now.loc[both].sort_values("churn_change").iloc[-1]
    assert moved.churn_change_text.startswith(f"Churn risk +{moved.churn_change * 100:.1f} pts "
                                              "since Aug 1, 2024: ")  # fmt: skip
    assert moved.churn_change_drivers[0]["sentence"] in moved.churn_change_text


@pytest.mark.parametrize(("unit", "old", "new", "expected"), [
    ("share", 0.0241, 0.0244, ("2.41%", "2.44%")),  # 2.4% → 2.4% was a driver that did not move
    ("share", 0.034, 0.035, ("3.4%", "3.5%")),
    ("ratio", 1.23401, 1.23449, ("1.2340×", "1.2345×")),
    ("users", 12.341, 12.346, ("12.34", "12.35")),
    ("share", None, 0.5, ("–", "50.0%")),
])  # fmt: skip
def test_a_small_move_is_shown_with_the_fewest_digits_that_tell_it(
    unit: str, old: float | None, new: float, expected: tuple[str, str]
) -> None:
    same = pa.array(["same"])
    shown = changes._told_apart([same, same], np.array([old], dtype=object),
                                np.array([new], dtype=object), np.array([True]), unit)  # fmt: skip
    assert tuple(a[0].as_py() for a in shown) == expected


@pytest.mark.parametrize(("lang", "value", "shown"), [
    ("en", 1.0, "1 day"), ("en", 0.6, "1 day"), ("en", 2.0, "2 days"), ("en", 0.0, "0 days"),
    ("en", 1234.0, "1,234 days"), ("ja", 1.0, "1日"), ("ja", 3.0, "3日"),
])  # fmt: skip
def test_days_read_as_a_csm_says_them(lang: str, value: float, shown: str) -> None:
    """'Active days 7d fell 3 days → 1 day', not '1 days'."""
    from churnml.scoring.reasons import value_formatter

    assert value_formatter("days", lang, "USD")(value) == shown


def test_a_change_under_half_a_tenth_of_a_point_reads_the_same_in_any_batch() -> None:
    """Changes are formatted once per distinct rounded value; -0.0 and 0.0 are one value, so
    the sign shown must not depend on which came first (a chunk's accounts, or the book's)."""
    first = changes._points(np.array([-0.0004, 0.0, 0.0123])).to_pylist()
    second = changes._points(np.array([0.0, -0.0004, 0.0123])).to_pylist()
    assert first == ["+0.0", "+0.0", "+1.2"] and second == ["+0.0", "+0.0", "+1.2"]


def test_a_chunk_of_accounts_all_new_since_the_previous_run_has_no_change(
    changed: Path,
) -> None:
    """A chunk whose accounts the previous run did not score (none in its range of accounts):
    change columns empty, the previous date still named."""
    now = pd.read_parquet(changed / "now" / "scores.parquet")
    before = pd.read_parquet(changed / "before" / "scores.parquet", columns=list(changes.BEFORE))
    new = now[~now.account_id.isin(before.account_id)]
    assert len(new) > 0
    first = new.account_id.max()
    chunk = now[now.account_id == first].reset_index(drop=True)
    assert not before.account_id.between(first, first).any()
    since = changes.Since(changed / "before", before, before, by_name(Config().features), "en",
                          "USD", Config().scoring.alert_points)  # fmt: skip
    got = since.compare(chunk, changed / "now")
    assert (got.previous_as_of == BEFORE).all() and got.churn_change.isna().all()
    assert got.churn_change_text.isna().all()


def test_a_chunk_reads_only_its_accounts_rows_of_a_run_file_or_of_spark_parts(
    tmp_path: Path,
) -> None:
    """`Since` reads a run's rows by range of accounts, from one file or from a committed folder
    of parts (as Spark writes), whatever the order of the rows."""
    rows = pd.DataFrame({"account_id": [f"A{k:03d}" for k in (5, 1, 9, 3, 7)], "x": range(5)})
    rows.to_parquet(tmp_path / "one.parquet", row_group_size=2)
    (tmp_path / "parts.parquet").mkdir()
    for k, part in enumerate((rows.iloc[:2], rows.iloc[2:])):
        part.to_parquet(tmp_path / "parts.parquet" / f"part-{k:05}.parquet")
    (tmp_path / "parts.parquet" / "_SUCCESS").touch()
    for name in ("one.parquet", "parts.parquet"):
        got = changes._between(tmp_path / name, "A003", "A007")
        assert sorted(got.account_id) == ["A003", "A005", "A007"], name


def test_a_new_model_is_told_apart_from_the_data(changed: Path, setup: tuple[Config, Path],
                                                  tmp_path: Path) -> None:  # fmt: skip
    """A previous run by another model: its gap to today's model on the same day is the model
    part, said as such (in Japanese here)."""
    cfg, world = setup
    before = pd.read_parquet(changed / "before" / "scores.parquet")
    before = before.assign(churn_probability=before.churn_probability - 0.02,
                           churn_model="models:/another/1")  # fmt: skip
    (tmp_path / "before").mkdir()
    before.to_parquet(tmp_path / "before" / "scores.parquet")
    score(cfg, data_dir=world, as_of=AS_OF, out=tmp_path / "now", lang="ja",
          previous=tmp_path / "before")
    now = pd.read_parquet(tmp_path / "now" / "scores.parquet").dropna(subset=["churn_change"])
    np.testing.assert_allclose(now.churn_change_model, 0.02, atol=1e-9)
    assert now.churn_change_text.str.endswith("モデル変更またはデータ修正（+2.0pt）").all()
    assert now.churn_change_text.str.startswith("解約リスク ").all()


def test_alerts_are_risk_that_rose_ranked_by_arr_at_stake(changed: Path) -> None:
    now = pd.read_parquet(changed / "now" / "scores.parquet")
    alerts = pd.read_csv(changed / "now" / "alerts.csv", dtype={"account_id": str})
    rank = {"high": 3, "medium": 2, "low": 1}
    up = (now.churn_tier.map(rank) > now.churn_tier_before.map(rank)) | (
        now.expansion_tier.map(rank) > now.expansion_tier_before.map(rank))  # fmt: skip
    expected = now[up | (now.churn_change >= Config().scoring.alert_points)]
    assert sorted(alerts.account_id) == sorted(expected.account_id) and len(alerts) > 0
    assert alerts.priority.is_monotonic_decreasing
    mine = alerts.set_index("account_id").churn_change
    np.testing.assert_allclose(mine, now.set_index("account_id").churn_change[mine.index],
                               atol=1e-4)  # fmt: skip
    assert not pd.read_csv(changed / "before" / "alerts.csv").shape[0]  # no --previous: no rows


def test_changes_compared_chunk_by_chunk_are_those_of_the_whole_book(
    setup: tuple[Config, Path], changed: Path, tmp_path: Path
) -> None:
    """With --previous, scored and compared in chunks of 37 accounts (each chunk reads only
    its accounts' rows of both runs), the run holds what the whole book compared in memory
    holds: change columns, CRM feed and alerts, in the same order."""
    cfg, world = setup
    small = cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update={"chunk_rows": 37})})
    result = score(small, data_dir=world, as_of=AS_OF, out=tmp_path / "chunks",
                   previous=changed / "before")  # fmt: skip
    _whole_book(small, world, tmp_path / "whole", previous=changed / "before")
    _same_runs(tmp_path / "whole", tmp_path / "chunks")
    alerts = pd.read_csv(tmp_path / "chunks" / "alerts.csv")
    assert result.alerts == len(alerts) > 0 and result.rows > 3 * 37


def test_previous_must_be_an_earlier_run(changed: Path, setup: tuple[Config, Path],
                                         tmp_path: Path) -> None:  # fmt: skip
    _, world = setup
    args = ["score", "--data", str(world), "--as-of", str(BEFORE), "--out", str(tmp_path / "o")]
    later = CliRunner().invoke(app, [*args, "--previous", str(changed / "now")])
    assert later.exit_code == 1 and "it must be before 2024-08-01" in " ".join(later.output.split())
    empty = CliRunner().invoke(app, [*args, "--previous", str(tmp_path)])
    assert empty.exit_code == 1 and "no scores.parquet in" in empty.output
    assert not (tmp_path / "o").exists()


# -- monitoring -----------------------------------------------------------------------------------
def test_monitoring_measures_past_runs_and_sees_a_product_change(
    setup: tuple[Config, Path], changed: Path, tmp_path: Path
) -> None:
    """Runs whose horizon has passed are measured against what happened, and the model's own
    world raises no flag; in the same world generated with a product change that cuts recorded
    use from July, adoption drifts and the verdict is retrain."""
    from churnml.data.sources import connect, load_tables
    from churnml.data.synthetic import generate_world, shape_of
    from churnml.features.labels import labelled_snapshots
    from churnml.monitoring.monitor import PSI_SHIFT, monitor, write_page

    cfg, world = setup
    early = tmp_path / "early"
    score(cfg, data_dir=world, as_of=dt.date(2024, 3, 1), out=early)
    runs = [early, changed / "before", changed / "now"]
    calm = monitor(cfg, world, runs)
    assert calm.as_of == AS_OF and dt.date(2024, 3, 1) in set(calm.realised.as_of)
    book = calm.realised.set_index(["as_of", "segment"]).loc[(dt.date(2024, 3, 1), "all")]
    scores = pd.read_parquet(early / "scores.parquet").set_index("account_id")
    labels = labelled_snapshots(load_tables(world, cfg.data, connect()), [dt.date(2024, 3, 1)],
                                cfg.labels).execute().set_index("account_id")  # fmt: skip
    labels = labels[labels.involuntary_churn_90d != 1].dropna(subset=["churn_90d"])
    both = scores.index.intersection(labels.index)
    from sklearn.metrics import roc_auc_score

    assert book.accounts == len(both) and book.churned == labels.churn_90d[both].sum()
    assert book.auc == pytest.approx(roc_auc_score(labels.churn_90d[both],
                                                   scores.churn_probability[both]))  # fmt: skip
    assert book.auc > 0.6
    assert 0 <= book.flagged_60d_churned_arr <= book.flagged_churned_arr <= 1
    pulls = calm.families.set_index("family")
    assert (pulls.pull_reference > 0).any() and pulls.pull_now.notna().all()
    assert calm.verdict == "keep" and calm.reasons == [] and calm.shifted == 0
    quiet = tmp_path / "quiet"  # the same world (conftest), where use falls by 70% in July 2024
    generate_world(quiet, n_accounts=300, months=24, seed=3, truth_paths=40,
                   shape=shape_of(shift="2024-07-01:0.3"))  # fmt: skip
    shifted = monitor(cfg, quiet, [changed / "now"])
    adoption = shifted.families.set_index("family").largest_psi["adoption"]
    assert adoption >= PSI_SHIFT > calm.families.set_index("family").largest_psi["adoption"]
    assert shifted.verdict == "retrain" and any(r.startswith("adoption") for r in shifted.reasons)
    assert shifted.shifted > 0
    assert (shifted.families.set_index("family").pull_now["adoption"]
            != pulls.pull_now["adoption"])  # fmt: skip
    page = write_page(shifted, tmp_path / "page").read_text(encoding="utf-8")
    assert 'data-metric="verdict">retrain<' in page


def test_cli_monitor_logs_a_run_and_refuses_a_folder_without_scores(
    setup: tuple[Config, Path], changed: Path, tmp_path: Path
) -> None:
    cfg, world = setup
    config = _config(cfg, tmp_path)
    args = ["monitor", "--data", str(world), "--config", config, "--out", str(tmp_path / "m")]
    result = CliRunner().invoke(app, [*args, "--scores", str(changed / "now")])
    assert result.exit_code == 0, result.output
    assert "Verdict:" in result.output and (tmp_path / "m" / "monitoring.html").is_file()
    from mlflow.tracking import MlflowClient

    runs = MlflowClient(cfg.registry.tracking_uri).search_runs(
        [e.experiment_id for e in MlflowClient(cfg.registry.tracking_uri).search_experiments()],
        "tags.`churnml.kind` = 'monitoring'")  # fmt: skip
    assert runs and runs[0].data.tags["churnml.model"].startswith("models:/")
    refused = CliRunner().invoke(app, [*args, "--scores", str(tmp_path)])
    assert refused.exit_code == 1 and "no scores.parquet in" in refused.output


def test_the_retrospective_of_a_run_matches_a_case_worked_by_hand() -> None:
    from churnml.monitoring.monitor import _performance

    run = pd.DataFrame({
        "churn_probability": [0.9, 0.6, 0.3, 0.1], "churned": [1, 0, 1, 0],
        "arr": [100.0, 200.0, 300.0, 400.0], "churn_tier": ["high", "medium", "medium", "low"],
        "days_to_churn": [70, np.nan, 30, np.nan],
    })  # fmt: skip
    got = _performance(run)
    assert got["accounts"] == 4 and got["churned"] == 2
    assert got["auc"] == pytest.approx(3 / 4)  # 0.9 > 0.6, 0.9 > 0.1, 0.3 > 0.1; not 0.3 > 0.6
    assert got["ece"] == pytest.approx((0.1 + 0.7 + 0.6 + 0.1) / 4)  # one account per bin
    assert got["mean_probability"] == pytest.approx(0.475) and got["churn_rate"] == 0.5
    assert got["top_decile_churned_arr"] == pytest.approx(100 / 400)  # the riskiest account
    assert got["flagged_churned_arr"] == pytest.approx(1.0)  # both churned were flagged
    assert got["flagged_60d_churned_arr"] == pytest.approx(100 / 400)  # one 70 days ahead


def test_with_the_same_model_the_previous_files_are_compared_without_scoring_again(
    setup: tuple[Config, Path], changed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The previous run kept its inputs (features.parquet) and named its models: the change is
    read from its files, and is the same as when the previous date is scored again (as for a
    previous run without features.parquet)."""
    from churnml.scoring import score as scoring

    cfg, world = setup
    calls: list[int] = []
    real = scoring.write_scores
    monkeypatch.setattr(scoring, "write_scores", lambda *a, **k: calls.append(1) or real(*a, **k))
    score(cfg, data_dir=world, as_of=AS_OF, out=tmp_path / "fast", previous=changed / "before")
    assert len(calls) == 1  # today only
    stripped = Path(shutil.copytree(changed / "before", tmp_path / "stripped"))
    (stripped / "features.parquet").unlink()
    score(cfg, data_dir=world, as_of=AS_OF, out=tmp_path / "slow", previous=stripped)
    assert len(calls) == 3  # today, then the previous date again
    fast, slow = (pd.read_parquet(tmp_path / d / "scores.parquet").set_index("account_id")
                  for d in ("fast", "slow"))  # fmt: skip
    np.testing.assert_allclose(fast.churn_change, slow.churn_change, atol=1e-12)
    np.testing.assert_allclose(slow.churn_change_model.dropna(), 0, atol=1e-9)
    assert fast.churn_change_text.equals(slow.churn_change_text)


def test_changes_are_the_same_block_by_block_and_in_any_row_order(
    changed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compare() works through the rows in blocks, and aligns the previous run's rows by
    account: blocks of 7 rows, and the previous files shuffled, give the same columns."""
    from churnml.scoring import changes

    def files(run: str, columns: list[str] | None = None) -> list[pd.DataFrame]:
        return [pd.read_parquet(changed / run / f"{name}.parquet", columns=columns)
                for name in ("scores", "contributions", "features")]  # fmt: skip

    now, now_c, now_v = files("now")
    before, then_c, then_v = files("before")
    before = before[list(changes.BEFORE)]

    def compared(shuffle: int | None) -> pd.DataFrame:
        mixed = [f if shuffle is None else f.sample(frac=1, random_state=shuffle)
                 for f in (before, then_c, then_v)]  # fmt: skip
        return changes.compare(now, mixed[0], mixed[0], (now_c, mixed[1]), (now_v, mixed[2]),
                               by_name(Config().features), "en", "USD")  # fmt: skip

    whole = compared(None)
    monkeypatch.setattr(changes, "BLOCK_ROWS", 7)
    blocks = compared(3)
    assert whole.churn_change_text.notna().sum() > 50
    pd.testing.assert_frame_equal(whole.drop(columns=["churn_change_drivers",
                                                      "expansion_change_drivers"]),
                                  blocks.drop(columns=["churn_change_drivers",
                                                       "expansion_change_drivers"]))  # fmt: skip
    for column in ("churn_change_drivers", "expansion_change_drivers"):
        assert whole[column].tolist() == blocks[column].tolist()


def test_largest_takes_the_top_of_each_row_and_leaves_the_matrix_alone() -> None:
    from churnml.scoring.reasons import largest

    matrix = np.array([[0.5, np.nan, 0.9, 0.2], [0.0, 0.3, -1.0, 0.3], [0.1, 0.1, 0.1, 0.1]])
    kept = matrix.copy()
    rows, cols, values, offsets = largest(matrix, 3, 0.25)
    assert rows.tolist() == [0, 0, 1, 1] and cols.tolist() == [2, 0, 1, 3]
    assert values.tolist() == [0.9, 0.5, 0.3, 0.3] and offsets.tolist() == [0, 2, 4, 4]
    np.testing.assert_array_equal(matrix, kept)
    assert largest(matrix, 9, 0.0)[3].tolist() == [0, 3, 6, 10]  # k beyond the columns


def test_the_report_charts_monthly_users_from_the_scoring_run_alone(
    setup: tuple[Config, Path], scored: Path, tmp_path: Path
) -> None:
    """Scoring counts each account's users per month (`adoption.parquet`); the report draws them
    from the run's folder, with no input tables."""
    cfg, world = setup
    used = pd.read_parquet(scored / outputs.ADOPTION_FILE)
    august = used[pd.to_datetime(used.month) == pd.Timestamp("2024-08-01")].set_index("account_id")
    raw = pd.read_parquet(world / "usage_events.parquet")
    raw = raw[(raw.ts >= pd.Timestamp("2024-08-01")) & (raw.ts < pd.Timestamp(AS_OF))]
    expected = raw.groupby("account_id").user_id.nunique()
    assert august.users.sort_index().tolist() == expected.sort_index().tolist()
    index = build_report(scored, tmp_path / "site", cfg)
    top = august.users.idxmax()
    page = (index.parent / "account" / safe_name(top)).read_text(encoding="utf-8")
    assert f"<title>2024-08: {august.users[top]:,.0f}</title>" in page


@pytest.mark.spark
@pytest.mark.slow
def test_spark_compares_with_the_previous_run_as_duckdb_does(
    setup: tuple[Config, Path], changed: Path, tmp_path: Path
) -> None:
    """--previous on Spark: the executors join each account's rows of both runs to the ranked
    book and compare them batch by batch; Spark finds and ranks the alerts. The same change
    columns, CRM feed and alerts as DuckDB's, whether the previous run is compared from its own
    files (same models) or its date is scored again (another model)."""
    cfg, world = setup
    other = tmp_path / "other"  # the previous run, by another model
    shutil.copytree(changed / "before", other)
    before = pd.read_parquet(other / "scores.parquet")
    before.assign(churn_probability=before.churn_probability - 0.02,
                  churn_model="models:/another/1").to_parquet(other / "scores.parquet")  # fmt: skip
    score(cfg, data_dir=world, as_of=AS_OF, out=tmp_path / "duck", previous=other)
    for previous, duck in ((changed / "before", changed / "now"), (other, tmp_path / "duck")):
        run = tmp_path / f"spark_{previous.name}"
        result = score(cfg, data_dir=world, as_of=AS_OF, out=run, engine="spark",
                       previous=previous)  # fmt: skip
        assert (run / "_SUCCESS").is_file() and not list(run.glob("_then*"))
        x, y = (pd.read_parquet(r / "scores.parquet").drop(columns="scored_at")
                .sort_values("account_id", ignore_index=True) for r in (duck, run))  # fmt: skip
        pd.testing.assert_frame_equal(x, y, rtol=1e-9, check_dtype=False)
        assert x.churn_change.notna().sum() > 50
        alerts = read_export(run / "alerts.csv")
        assert alerts.equals(read_export(duck / "alerts.csv")) and result.alerts == len(alerts) > 0


@pytest.mark.spark
@pytest.mark.slow
def test_spark_writes_only_the_crm_rows_changed_since_a_run(
    setup: tuple[Config, Path], scored: Path, tmp_path: Path
) -> None:
    """--changed-since on Spark: the executors join the feed to the earlier export and write the
    rows with a changed cell and those of accounts the export lacks, as DuckDB does;
    scores.parquet stays whole."""
    cfg, world = setup
    previous = tmp_path / "previous"
    shutil.copytree(scored, previous)
    feed = pd.read_csv(previous / "crm_export.csv", dtype=str, keep_default_na=False)
    feed.loc[0, "Churn_Risk__c"] = "0.9999"
    feed.drop(index=1).to_csv(previous / "crm_export.csv", index=False, quoting=csv.QUOTE_ALL)
    runs = {engine: tmp_path / engine for engine in ("duckdb", "spark")}
    results = {engine: score(cfg, data_dir=world, as_of=AS_OF, out=out, engine=engine,
                             changed_since=previous) for engine, out in runs.items()}  # fmt: skip
    assert results["spark"].crm_rows == results["duckdb"].crm_rows == 2
    fields = load_field_map("salesforce")
    key, when = fields.key, [f for f, c in fields.fields.items() if c == "scored_at"]
    written = [read_export(out / "crm_export.csv").drop(columns=when) for out in runs.values()]
    assert written[0].sort_values(key, ignore_index=True).equals(
        written[1].sort_values(key, ignore_index=True))
    assert sorted(written[1][key]) == sorted(feed[key][:2])
    assert results["spark"].rows == len(pd.read_parquet(runs["spark"] / "scores.parquet"))


@pytest.mark.spark
def test_spark_reads_back_a_csv_as_churnml_wrote_it(tmp_path: Path) -> None:
    """Quotes, commas, line breaks, guarded formulas and empty cells, from one file and from a
    folder of parts with a header in each (an earlier export, alerts)."""
    from churnml.data.sources import connect
    from churnml.scoring.crm import write_csv
    from churnml.scoring.spark import _read_csv

    cells = pd.DataFrame({"Id": ["a", "b", "c", "d"],
                          "Text": ['say "hi", twice', "two\nlines", "'=SUM(1)", ""]})  # fmt: skip
    write_csv(cells, tmp_path / "one.csv")
    (tmp_path / "parts").mkdir()
    for k, part in enumerate((cells[:2], cells[2:])):
        write_csv(part, tmp_path / "parts" / f"part-{k:05}.csv")
    session = connect("spark")._session
    for name in ("one.csv", "parts"):
        got = _read_csv(session, str(tmp_path / name)).toPandas().fillna("")
        assert got.sort_values("Id", ignore_index=True).equals(cells), name

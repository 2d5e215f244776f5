"""The CLI is a thin layer: it runs the API, shows a summary, and turns bad input into exit 1."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import churnml
import churnml.data.validate
from churnml import cli
from churnml.cli import app
from churnml.io import atomic_dir, write_text


def test_generate_then_validate(tmp_path: Path) -> None:
    out = tmp_path / "world"
    result = CliRunner().invoke(
        app, ["generate", "--out", str(out), "--accounts", "60", "--months", "6"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "_truth" / "truth.parquet").exists()
    assert "usage_events rows" in result.output
    assert CliRunner().invoke(app, ["validate", "--data", str(out)]).exit_code == 0


def test_generate_rejects_a_bad_start_date(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["generate", "--out", str(tmp_path / "w"), "--start", "someday"]
    )
    assert result.exit_code == 1
    assert "error" in result.output
    assert not (tmp_path / "w").exists()


def test_generate_takes_a_preset_and_its_options(tmp_path: Path) -> None:
    out = tmp_path / "world"
    args = ["generate", "--out", str(out), "--accounts", "40", "--months", "12"]
    result = CliRunner().invoke(app, [*args, "--preset", "consumer", "--events", "post,like"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.parquet")) == [
        "accounts.parquet", "subscriptions.parquet", "usage_events.parquet"
    ]  # fmt: skip
    refused = CliRunner().invoke(app, [*args, "--billing", "weekly"])
    assert refused.exit_code == 1 and "unknown billing 'weekly'" in refused.output


def test_a_young_product_without_expansion_trains_scores_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """12 months of history, nobody ever expands: the default config trains churn alone, and
    scoring and the report leave expansion empty (not zero) and never suggest an expansion."""
    monkeypatch.chdir(tmp_path)  # the default registry is ./mlruns.db
    cli = CliRunner()
    world = ["--data", "world"]
    steps = [
        ["generate", "--out", "world", "--accounts", "300", "--months", "12", "--seed", "3",
         "--no-expansion"],
        ["train", *world],
        ["score", *world, "--out", "scores"],  # as of the day after the data: 2024-01-01
        ["report", "--scores", "scores", "--out", "report"],
    ]  # fmt: skip
    for step in steps:
        result = cli.invoke(app, step)
        assert result.exit_code == 0, f"{step[0]}: {result.output}"
        if step[0] == "train":
            assert "expansion not trained" in result.output and "single class" in result.output
        if step[0] == "score":
            assert "2024-01-01 (the day after the usage events)" in result.output
    scores = pd.read_parquet("scores/scores.parquet")
    assert len(scores) > 200 and scores.churn_probability.notna().all()
    assert scores.expansion_probability.isna().all() and scores.expected_expansion_arr.isna().all()
    assert scores.expansion_model_skill.isna().all()
    assert not scores.next_best_action.isin(["expand", "fix_then_expand"]).any()
    crm = pd.read_csv("scores/crm_export.csv", keep_default_na=False, dtype=str)
    assert (crm.Expansion_Propensity__c == "").all() and (crm.Churn_Risk__c != "").all()
    index = Path("report/index.html").read_text()
    assert "no model was trained for this portfolio" in index


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"churnml {churnml.__version__}"


@pytest.mark.parametrize("command", ["generate", "score", "report", "export"])
def test_an_output_that_is_a_file_is_refused_before_any_work(command: str, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    args = {
        "generate": ["generate", "--accounts", "5"],
        "score": ["score", "--data", str(tmp_path), "--as-of", "2024-01-01"],
        "report": ["report", "--scores", str(tmp_path)],
        "export": ["export"],
    }[command]
    result = CliRunner().invoke(app, [*args, "--out", str(taken)])
    assert result.exit_code == 1 and "exists and is not a folder" in result.output
    assert taken.read_text() == "keep me" and "Traceback" not in result.output


def test_an_unknown_crm_is_refused_before_any_work(tmp_path: Path) -> None:
    args = ["score", "--data", str(tmp_path / "none"), "--as-of", "2024-01-01"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o"), "--crm", "zoho"])
    assert result.exit_code == 1 and "no CRM field map 'zoho'" in result.output


def test_written_files_get_the_mode_the_umask_allows(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_text("x", tmp_path / "a.txt")
        with atomic_dir(tmp_path / "out") as tmp:
            write_text("y", tmp / "b.txt")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "out" / "b.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755


def test_an_output_folder_that_is_a_mount_point_gets_its_files_copied_then_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = os.replace, []
    (tmp_path / "out").mkdir()
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p) == tmp_path / "out")

    def cross_device_once(src: object, dest: object) -> None:
        calls.append(dest)
        if len(calls) == 1:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real(src, dest)

    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "b.txt").write_text("y")
        monkeypatch.setattr(os, "replace", cross_device_once)
    assert (tmp_path / "out" / "b.txt").read_text() == "y" and len(calls) == 2


@pytest.mark.parametrize(("raised", "code", "words"), [
    (RuntimeError("disk on fire\nsecond line"), 1, "RuntimeError: disk on fire (run with -v"),
    (KeyboardInterrupt(), 130, "interrupted: previous output kept"),
    (RuntimeError("Query interrupted"), 130, "interrupted: previous output kept"),  # DuckDB's
])  # fmt: skip
def test_anything_unexpected_is_one_line_and_ctrl_c_keeps_the_output(
    raised: BaseException, code: int, words: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    def boom(*_: object, **__: object) -> None:
        raise raised

    monkeypatch.setattr(churnml.data.validate, "validate", boom)
    assert cli.main(["validate", "--data", "."]) == code
    err = capsys.readouterr().err
    assert words in " ".join(err.split()) and "Traceback" not in err and "second line" not in err


def test_a_folder_of_outputs_is_replaced_as_a_whole_and_other_files_are_kept(
    tmp_path: Path,
) -> None:
    """The new set takes the old one's place in one step (the folder itself is new), files the
    run did not write stay (the same file, linked), and a failed run changes nothing."""
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        write_text("old a", tmp / "a.txt")
        write_text("old b", tmp / "sub" / "b.txt")
    (out / "mine.txt").write_text("the user's")
    before, mine = out.stat().st_ino, (out / "mine.txt").stat().st_ino
    with atomic_dir(out) as tmp:
        write_text("new a", tmp / "a.txt")
        write_text("new b", tmp / "sub" / "b.txt")
        assert (out / "a.txt").read_text() == "old a"  # nothing changes before the end
    assert (out / "a.txt").read_text() == "new a" and (out / "sub" / "b.txt").read_text() == "new b"
    assert (out / "mine.txt").stat().st_ino == mine
    assert out.stat().st_ino != before  # swapped in one step, not file by file
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        write_text("half", tmp / "a.txt")
        raise RuntimeError("interrupted")
    assert (out / "a.txt").read_text() == "new a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp folder left

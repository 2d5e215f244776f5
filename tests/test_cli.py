"""The CLI is a thin layer: it runs the API, shows a summary, and turns bad input into exit 1."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from churnml.cli import app


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

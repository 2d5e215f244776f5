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

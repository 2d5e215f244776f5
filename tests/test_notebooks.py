"""The notebooks run top to bottom on a small world, and each .ipynb matches its .py pair."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

from churnml.config import Config

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def _sources(nb: nbformat.NotebookNode) -> list[str]:
    return [cell.source for cell in nb.cells]


@pytest.mark.parametrize("name", ["01_explore_world", "02_model_review"])
def test_ipynb_is_paired_with_py(name: str) -> None:
    py = jupytext.read(NOTEBOOKS / f"{name}.py")
    ipynb = jupytext.read(NOTEBOOKS / f"{name}.ipynb")
    assert _sources(py) == _sources(ipynb)


def _run(name: str, cwd: Path) -> nbformat.NotebookNode:
    nb = jupytext.read(NOTEBOOKS / f"{name}.py")
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return nb


def test_notebooks_execute(
    small_world: Path, trained_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURNML_DATA", str(small_world))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_config.registry.tracking_uri)
    explore = _run("01_explore_world", tmp_path)
    outputs = "".join(str(o) for cell in explore.cells for o in cell.get("outputs", []))
    assert "mid_market" in outputs and "churn_90d" in outputs
    review = _run("02_model_review", tmp_path)
    outputs = "".join(str(o) for cell in review.cells for o in cell.get("outputs", []))
    assert "oracle" in outputs and "image/png" in outputs

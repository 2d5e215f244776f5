"""The package as users install it: a wheel, in a fresh virtual environment outside the
repository."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pandas as pd

from churnml.config import Config

ROOT = Path(__file__).resolve().parents[1]
CLEAN = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no other churnml on the path


def test_an_installed_wheel_scores_with_its_own_crm_maps(
    small_world: Path, trained_config: Config, tmp_path: Path
) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--quiet", "--wheel-dir",
         str(wheels)],
        check=True, cwd=tmp_path,
    )  # fmt: skip
    env = tmp_path / "env"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    env_site = Path(_output(python, "import site; print(site.getsitepackages()[0])", tmp_path))
    # Dependencies come from this environment's site-packages, added after the new one's, and
    # without processing its .pth files, so that the editable churnml of the repository stays out.
    (env_site / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet",
         str(next(wheels.glob("churnml-*.whl")))],
        check=True, cwd=tmp_path,
    )  # fmt: skip
    where = _output(python, "import churnml; print(churnml.__file__)", tmp_path)
    assert Path(where).is_relative_to(env_site)  # the wheel, not the repository
    config = tmp_path / "c.yaml"
    config.write_text(f"registry: {{tracking_uri: '{trained_config.registry.tracking_uri}'}}\n")
    out = tmp_path / "scores"
    result = subprocess.run(
        [env / "bin" / "churnml", "score", "--data", str(small_world), "--as-of", "2024-09-01",
         "--out", str(out), "--crm", "hubspot", "--config", str(config)],
        capture_output=True, text=True, cwd=tmp_path, env=CLEAN,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    feed = pd.read_csv(out / "crm_export.csv", dtype=str)
    scores = pd.read_parquet(out / "scores.parquet")
    assert feed.columns[0] == "churnml_account_id" and len(feed) == len(scores) > 0


def _output(python: Path, code: str, cwd: Path) -> str:
    done = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True, cwd=cwd,
                          env=CLEAN)  # fmt: skip
    return done.stdout.strip()

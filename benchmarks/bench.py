"""`make bench`: the benchmarks that fit in 15 minutes on 2 cores, and one table of their ratios.

    python benchmarks/bench.py

Runs, each in turn and in its own processes: features_speed.py (a 20,000-account world),
scoring_speed.py (200,000 accounts, one run of each stage) and scale.py (200,000 and 1,000,000
accounts on DuckDB; its Spark runs take longer than the budget: run `python benchmarks/scale.py`).
Every ratio is against a floor measured in the same run; the table says which.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from _measure import markdown

HERE = Path(__file__).parent
RUNS = {
    "features_speed.py": [],
    "scoring_speed.py": ["--repeat", "1"],
    "scale.py": ["--no-spark"],
}


def main() -> None:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as work:
        for script, extra in RUNS.items():
            out = Path(work) / f"{script}.json"
            print(f"== {script} {' '.join(extra)}", flush=True)
            subprocess.run([sys.executable, str(HERE / script), *extra, "--json", str(out)],
                           check=True)  # fmt: skip
            rows += [{"benchmark": script, **row} for row in json.loads(out.read_text())]
    table = pd.DataFrame(rows)[["benchmark", "what", "seconds", "floor", "ratio", "target",
                                "rss_gb"]]  # fmt: skip
    print("\n" + markdown(table.rename(columns={"rss_gb": "peak RSS (GB)"})))
    print("(2 cores; each ratio is against the floor measured in the same run)")


if __name__ == "__main__":
    main()

"""Screenshots of each report page type in both languages, for the README (`make screenshots`).

    python docs/screenshots.py REPORT_EN REPORT_JA [--monitoring PAGE] [--fit PAGE …] [--out DIR]

Takes the leader summary, the portfolio with the most ARR at risk and its first account, and the
pages given (the monitoring page; Fit pages, named fit_<lang> by their language), with Debian's
Chromium (no network).
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright


def pages(report: Path) -> dict[str, Path]:
    """The three page types: the summary, the first portfolio it lists, that portfolio's first
    account."""
    index = report / "index.html"
    portfolio = report / re.search(r'href="(csm/[^"]+)"', index.read_text("utf-8")).group(1)
    account = re.search(r'href="\.\./(account/[^"]+)"', portfolio.read_text("utf-8")).group(1)
    return {"summary": index, "portfolio": portfolio, "account": report / account}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("en", type=Path)
    parser.add_argument("ja", type=Path)
    parser.add_argument("--monitoring", type=Path, help="a monitoring.html (churnml monitor)")
    parser.add_argument("--fit", type=Path, nargs="*", default=[],
                        help="fit.html pages (churnml fit-score)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        shots = [(f"{kind}_{lang}", path) for lang, report in (("en", args.en), ("ja", args.ja))
                 for kind, path in pages(report).items()]  # fmt: skip
        if args.monitoring:
            shots.append(("monitoring", args.monitoring))
        for path in args.fit:
            lang = re.search(r'<html lang="(\w+)"', path.read_text("utf-8")).group(1)
            shots.append((f"fit_{lang}", path))
        for name, path in shots:
            page.goto(path.resolve().as_uri())
            shot = args.out / f"{name}.png"
            height = min(1400, page.evaluate("document.documentElement.scrollHeight"))
            clip = {"x": 0, "y": 0, "width": 1200, "height": height}
            page.screenshot(path=str(shot), full_page=True, clip=clip)
            print(shot)
        browser.close()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Draws the plots of BENCHMARKS.md from the tables in docs/bench/*.csv.

Each CSV starts with a comment line `# TITLE | AXIS LABEL`, then a header `label,value[,...]`;
every row becomes one horizontal bar (label, value). Writes docs/bench/NAME.svg beside
docs/bench/NAME.csv. Needs matplotlib (installed with pip when missing).

    python3 scripts/plots.py            # every CSV
    python3 scripts/plots.py commit     # docs/bench/commit.csv only
"""
import csv
import subprocess
import sys
from pathlib import Path

try:
    import matplotlib
except ImportError:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"], check=True)
    import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402

BENCH = Path(__file__).resolve().parent.parent / "docs" / "bench"


def plot(path: Path) -> Path:
    lines = path.read_text().splitlines()
    title, axis = (part.strip() for part in lines[0].lstrip("# ").split("|", 1))
    rows = list(csv.DictReader(lines[1:]))
    labels = [row["label"] for row in rows]
    values = [float(row["value"]) for row in rows]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    bars = ax.barh(range(len(rows)), values, color="#4c72b0")
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(axis)
    ax.set_title(title, fontsize=10)
    ax.bar_label(bars, labels=[f"{v:,.0f}" if v >= 100 else f"{v:.2f}" for v in values],
                 padding=3, fontsize=8)
    ax.set_xlim(0, max(values) * 1.2)
    fig.tight_layout()
    out = path.with_suffix(".svg")
    fig.savefig(out, metadata={"Date": None})
    plt.close(fig)
    return out


def main() -> None:
    names = sys.argv[1:]
    paths = [BENCH / f"{n}.csv" for n in names] if names else sorted(BENCH.glob("*.csv"))
    for path in paths:
        print(plot(path))


if __name__ == "__main__":
    main()

"""The README's calibration table, from the calibration benchmark's results files.

    python benchmarks/readme_table.py            # prints the markdown table

Reads ``benchmarks/results/calibration.json`` (random splits and cold start) and
``calibration_kfold.json`` (20 folds); never types a figure by hand. Bold: the lowest MSE of a
protocol.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PROTOCOLS = {
    "random": "random",
    "cpp0": "CPP-0 (new model)",
    "cpp2": "CPP-2",
    "cpp_t0": "CPP-T0 (new task)",
    "cpp_t2": "CPP-T2",
    "kfold": "20-fold",
}
LEVELS = (50, 80, 90, 95)


def rows(groups: dict) -> list[str]:
    out = []
    for key, label in PROTOCOLS.items():
        g = groups.get(f"cpp_crowdsource/{key}")
        if not g:
            continue
        best = min(r["mse"]["mean"] for r in g.values())
        for i, (method, r) in enumerate(g.items()):
            mse = f"{r['mse']['mean']:.4f}"
            cov = " / ".join(f"{r[f'coverage_{c}']['mean']:.2f}" for c in LEVELS
                             if f"coverage_{c}" in r) or "–"
            se = " / ".join(f"{r[f'coverage_{c}']['std']:.2f}" for c in (50, 90)
                            if f"coverage_{c}" in r) or "–"
            secs = (f"{r['fit_seconds']['mean']:.0f} ({r['fit_seconds_first']['mean']:.0f} / "
                    f"{r.get('fit_seconds_later', r['fit_seconds_first'])['mean']:.0f})")
            out.append("| " + " | ".join([
                label if i == 0 else label.split(" (")[0],
                method + (" (point)" if key == "random" and "coverage_50" not in r else ""),
                f"**{mse}**" if r["mse"]["mean"] == best else mse,
                cov, se,
                f"{r['crps']['mean']:.3f}" if "crps" in r else "–",
                f"{r['lpd']['mean']:.2f}" if "lpd" in r else "–",
                secs,
                f"{r['max_rhat']['mean']:.2f}" if "max_rhat" in r else "–",
            ]) + " |")
    return out


def main() -> None:
    groups = {}
    for name in ("calibration", "calibration_kfold"):
        path = RESULTS / f"{name}.json"
        if not path.exists():
            sys.exit(f"{path} is missing: run benchmarks/calibration.py first")
        groups.update(json.loads(path.read_text())["groups"])
    print("| protocol | method | MSE | coverage 50/80/90/95 | ± se (50 / 90) | CRPS | LPD "
          "| s per fit (first / later) | r-hat |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows(groups)))


if __name__ == "__main__":
    main()

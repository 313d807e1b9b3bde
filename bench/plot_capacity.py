"""Plot docs/capacity.json (written by bench/capacity.py): packet age and worker CPU against beds.

Run: python bench/plot_capacity.py   (writes docs/img/capacity.png for docs/SCALING.md)
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    result = json.loads((ROOT / "docs" / "capacity.json").read_text())
    fig, (age, cpu) = plt.subplots(1, 2, figsize=(11, 4))
    for workers, marker in ((1, "o"), (2, "s")):
        # workers alone, under independent monitors (the runs with analysis helper processes, and with every
        # bed's packet at the same instant, are reported beside them, not drawn)
        points = sorted((p for p in result["sweep"] if p["workers"] == workers and not p.get("analysis_processes")
                         and p.get("phases") == "spread"), key=lambda p: p["beds"])
        if not points:
            continue
        beds = [p["beds"] for p in points]
        age.plot(beds, [p["p99_s"] for p in points], marker=marker, label=f"p99, {workers} worker(s)")
        age.plot(beds, [p["p50_s"] for p in points], marker=marker, linestyle="--", label=f"p50, {workers} worker(s)")
        cpu.plot(beds, [p["cpu_share"] for p in points], marker=marker, label=f"workers' CPU, {workers} worker(s)")
        cpu.plot(beds, [p["cpu_ms_per_bed_second"] / 10 for p in points], marker=marker, linestyle=":",
                 label=f"CPU ms per bed-second / 10, {workers} worker(s)")
    age.axhline(1.0, color="#c4001a", linewidth=1)
    age.text(age.get_xlim()[0], 1.02, " target: p99 <= 1 s", color="#c4001a", fontsize=8)
    age.set(xlabel="beds", ylabel="packet age (s)", title="Packet age (publish -> processed)")
    cpu.set(xlabel="beds", ylabel="share of one core", title="Worker CPU")
    for ax in (age, cpu):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{result['machine']}: {result['command']}", fontsize=8)
    fig.tight_layout()
    out = ROOT / "docs" / "img" / "capacity.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()

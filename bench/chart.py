"""The PNG chart of a run (matplotlib, Agg backend): ratios to baselines, freshness, memory."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.result import ScenarioResult

GREEN, RED, GREY = "#2e7d32", "#c62828", "#9e9e9e"


def _ratio_panel(ax: Axes, results: Sequence[ScenarioResult]) -> None:
    labels, values, colors = [], [], []
    for result in results:
        for row in result.rows:
            if row.ratio is None or math.isnan(row.ratio):
                continue
            labels.append(f"[{result.number}] {row.metric} (goal {row.goal})")
            values.append(row.ratio)
            colors.append(GREY if row.met is None else GREEN if row.met else RED)
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks(range(len(values)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("whoop-sync / baseline (log scale; green = goal met, red = missed)")
    ax.set_title("Ratios to the baseline measured in the same run", fontsize=9)


def _freshness_panel(ax: Axes, results: Sequence[ScenarioResult]) -> None:
    fresh = next((r for r in results if r.number == 3 and not r.error), None)
    rates = fresh.details.get("rates", {}) if fresh else {}
    names, p50, p99 = [], [], []
    for rate, stats in rates.items():
        names.append(f"{rate}/s")
        p50.append(stats.get("p50_ms") or 0.0)
        p99.append(stats.get("p99_ms") or 0.0)
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50", color="#1565c0")
    ax.bar([x + 0.2 for x in xs], p99, width=0.4, label="p99", color="#ef6c00")
    ax.axhline(250, color=RED, linestyle="--", linewidth=0.8, label="goal: p99 < 250 ms at 10/s")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("webhook received → record readable (ms)")
    ax.set_title("[3] Freshness lag", fontsize=9)
    ax.legend(fontsize=7)
    if not names:
        ax.text(0.5, 0.5, "not run", ha="center", transform=ax.transAxes)


def _memory_panel(ax: Axes, results: Sequence[ScenarioResult]) -> None:
    labels, values = [], []
    for result in results:
        for name, mb in result.memory_mb.items():
            labels.append(f"[{result.number}] {name}")
            values.append(mb)
    ax.barh(range(len(values)), values, color="#6a1b9a")
    ax.set_yticks(range(len(values)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("peak RSS (MiB, psutil, process and children)")
    ax.set_title("[6] Memory under the loads above", fontsize=9)


def write_chart(results: Sequence[ScenarioResult], path: Path, subtitle: str) -> Path:
    """Draw the run into `path` (PNG)."""
    fig = plt.figure(figsize=(13, 9), layout="constrained")
    grid = fig.add_gridspec(2, 2)
    _ratio_panel(fig.add_subplot(grid[0, :]), results)
    _freshness_panel(fig.add_subplot(grid[1, 0]), results)
    _memory_panel(fig.add_subplot(grid[1, 1]), results)
    fig.suptitle(f"whoop-sync benchmarks — {subtitle}", fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""The economy's PNG: calls per user-day by design for each profile (log scale), and where
whoop-sync's calls went by kind, against what WHOOP's 10,000 calls a day allow each user."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.scenarios.economy.plan import BUDGET_PER_DAY
from bench.scenarios.economy.where import KINDS


def write_chart(table: list[dict[str, Any]], accounts: list[dict[str, Any]], path: Path) -> Path:
    """Two panels: designs by profile, and whoop-sync's calls per user-day by kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5), width_ratios=(3, 2))
    profiles = list(dict.fromkeys(r["profile"] for r in table))
    designs = list(dict.fromkeys(r["design"] for r in table))
    width = 0.8 / max(1, len(profiles))
    for i, profile in enumerate(profiles):
        mine = {r["design"]: r for r in table if r["profile"] == profile}
        values = [mine[d]["calls_per_user_day"] if d in mine else 0.0 for d in designs]
        xs = [x + i * width for x in range(len(designs))]
        users = next(iter(mine.values()))["users"]
        bars = left.bar(xs, values, width, label=f"{profile} ({users} users)")
        left.bar_label(bars, labels=[f"{v:g}" for v in values], fontsize=6)
    left.set_xticks([x + width * (len(profiles) - 1) / 2 for x in range(len(designs))], designs)
    left.tick_params(axis="x", labelsize=7)
    left.set_yscale("symlog", linthresh=1)
    left.set_ylabel("WHOOP calls per user-day")
    left.set_title("Calls per user-day by design: one simulated day", fontsize=10)
    left.legend(fontsize=7)
    _kinds_panel(right, accounts)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _kinds_panel(ax: Any, accounts: list[dict[str, Any]]) -> None:
    names = [f"{a['profile']}\n({a['users']})" for a in accounts]
    bottoms = [0.0] * len(accounts)
    for kind in KINDS:
        values = [a["calls_by_kind"].get(kind, 0) / a["users"] for a in accounts]
        ax.bar(names, values, 0.6, bottom=bottoms, label=kind)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    for x, account in enumerate(accounts):
        allowed = BUDGET_PER_DAY / account["users"]
        ax.hlines(allowed, x - 0.4, x + 0.4, colors="black", linestyles="dashed")
        ax.annotate(f"budget {allowed:.3g}", (x, allowed), ha="center", va="bottom", fontsize=7)
    ax.set_ylabel("whoop-sync calls per user-day")
    ax.set_title("whoop-sync's calls by kind, budget enforced (dashed: 10,000 / users)", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=7)

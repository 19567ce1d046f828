"""Helpers the measurements share: tokens, medians of rounds, goal rows."""

from __future__ import annotations

import asyncio
import statistics
import uuid
from collections.abc import Mapping, Sequence

from bench.infra import ROOT, VENV_BIN
from bench.result import Row
from bench.stats import ratio


async def dev_token(env: Mapping[str, str], user_id: uuid.UUID, ttl: int = 86400) -> str:
    """A bearer token from the product's own `whoop-sync dev-token`."""
    proc = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "whoop-sync"), "dev-token", "--user-id", str(user_id), "--ttl", str(ttl),
        cwd=ROOT, env={**env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"dev-token failed: {err.decode().strip()}")
    return out.decode().strip()


def median(values: Sequence[float]) -> float:
    """Median of the rounds (the mean of two)."""
    return float(statistics.median(values)) if values else float("nan")


def at_least(
    metric: str, product: float, baseline: float, unit: str, factor: float, note: str = ""
) -> Row:
    """A row whose goal is product >= factor * baseline."""
    r = ratio(product, baseline)
    return Row(metric, product, baseline, unit, r, f">= {factor:g}x", r >= factor, note)


def at_most(
    metric: str, product: float, baseline: float, unit: str, factor: float, note: str = ""
) -> Row:
    """A row whose goal is product <= factor * baseline."""
    r = ratio(product, baseline)
    return Row(metric, product, baseline, unit, r, f"<= {factor:g}x", r <= factor, note)


def info(metric: str, product: float, baseline: float | None, unit: str, note: str = "") -> Row:
    """A row with no goal of its own."""
    r = ratio(product, baseline) if baseline is not None else None
    return Row(metric, product, baseline, unit, r, "-", None, note)

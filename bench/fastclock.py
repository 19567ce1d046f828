"""A whoop-sync process on a fast clock: `python -m bench.fastclock FACTOR COMMAND [ARGS...]` runs
`whoop-sync COMMAND ARGS...` with the WHOOP budget's windows FACTOR times shorter (a minute of
60/FACTOR real seconds, a day of 86,400/FACTOR), so that the configured 100 calls a minute and
10,000 a day are WHOOP's budget on the simulator's clock running FACTOR times faster; a user's share
of the budget, where the product has one, counts in windows scaled alike.

Scaling the limits instead (100 x FACTOR a real minute) would not do: the simulator's
X-RateLimit-Remaining counts down from 100 each simulated minute, and whoop-sync weighs it against
its configured per-minute limit (what is left inside the interactive reserve holds background work
back until the reset), so the two must agree on the minute's 100.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping

from bench.infra import VENV_BIN, Cluster, Proc, wait_alive, wait_http

# (module, class, required): the classes whose `window` and `day_window` keyword defaults are the
# budget's windows. Private names, on purpose: the product has no setting for them (module doc).
WINDOWED = (
    ("common.ratelimit", "_BaseLimiter", True),
    ("common.usershare", "LocalUserShare", False),
    ("common.usershare", "RedisUserShare", False),
)


def scale_windows(factor: float) -> list[str]:
    """Make every WHOOP budget (and user share) the process creates count in windows FACTOR times
    shorter; the classes changed."""
    changed = []
    for module_name, class_name, required in WINDOWED:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            module = None
        init = getattr(getattr(module, class_name, None), "__init__", None)
        defaults = getattr(init, "__kwdefaults__", None)
        if defaults is None or not {"window", "day_window"} <= defaults.keys():
            if required:
                raise SystemExit(f"bench.fastclock: {class_name}'s windows are not where expected")
            continue
        defaults["window"] = 60.0 / factor
        defaults["day_window"] = 86400.0 / factor
        changed.append(f"{module_name}.{class_name}")
    return changed


def start(
    procs: Cluster, name: str, command: str, env: Mapping[str, str], factor: float, port: int | None
) -> Proc:
    """Start `whoop-sync COMMAND` on the fast clock (an HTTP process when given a port)."""
    argv = [str(VENV_BIN / "python"), "-m", "bench.fastclock", repr(factor), command]
    if port is not None:
        argv += ["--host", "127.0.0.1", "--port", str(port)]
    return procs.start(name, argv, env, port)


async def start_pipeline(
    procs: Cluster, env: Mapping[str, str], factor: float, *, api_port: int, hook_port: int
) -> tuple[Proc, Proc, Proc]:
    """The product's api, webhook and worker on the fast clock; waits until each is up."""
    api = start(procs, "whoop-sync api", "api", env, factor, api_port)
    hook = start(procs, "whoop-sync webhook", "webhook", env, factor, hook_port)
    worker = start(procs, "whoop-sync worker", "worker", env, factor, None)
    await wait_http(api)
    await wait_http(hook)
    await wait_alive(worker, 1.0)
    return api, hook, worker


def main() -> int:
    """python -m bench.fastclock FACTOR COMMAND [ARGS...]."""
    scale_windows(float(sys.argv[1]))
    from services.cli import main as whoop_sync

    return whoop_sync(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())

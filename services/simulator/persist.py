"""The simulator's data set kept between runs (`--state-file`): the members' records and who is
connected, so that a demo started again serves the same WHOOP history its cache already holds.

The file is the simulator's own (pickle), written when it stops and read when it starts.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import structlog

from services.simulator.world import World

log = structlog.get_logger(__name__)

VERSION = 1


def load(world: World, path: Path) -> bool:
    """Put the saved records back into `world`; whether there was a data set to load."""
    if not path.exists():
        return False
    try:
        saved = pickle.loads(path.read_bytes())  # noqa: S301 - our own file, written by save()
        if saved.get("version") != VERSION or saved["seed"] != world.config.seed:
            return False
        for user_id, data in saved["data"].items():
            if user_id in world.profiles:
                world.restore(user_id, data)
        world.connected.update(u for u in saved["connected"] if u in world.profiles)
        world.steps = saved["steps"]
    except Exception as exc:  # an unreadable file: start a fresh data set, as without one
        log.warning("sim.state_unreadable", path=str(path), error=type(exc).__name__)
        return False
    log.info("sim.state_loaded", path=str(path), members=len(saved["data"]))
    return True


def save(world: World, path: Path) -> None:
    """Write every member's records next to `path`, then move it there."""
    state = {
        "version": VERSION,
        "seed": world.config.seed,
        "data": {user_id: world.data(user_id) for user_id in world.profiles},
        "connected": sorted(world.connected),
        "steps": world.steps,
    }
    partial = path.with_suffix(path.suffix + ".tmp")
    partial.write_bytes(pickle.dumps(state))
    partial.replace(path)

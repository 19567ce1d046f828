"""`--state-file`: a simulator started again serves the data set of the run before (the records a
demo's cache already holds, the scenario's changes included), not a fresh one made at a new now."""

from __future__ import annotations

from pathlib import Path

from services.simulator.app import create_app
from services.simulator.config import SimConfig
from services.simulator.state import Simulator


async def _run(config: SimConfig) -> Simulator:
    """Start and stop the simulator app once; its state."""
    app = create_app(config)
    sim: Simulator = app.state.sim
    async with app.router.lifespan_context(app):
        sim.world.connected.add(10001)
        sim.step(10001, "workout")
    return sim


async def test_a_second_run_keeps_the_data_set(tmp_path: Path) -> None:
    config = SimConfig(users=2, days=3, state_file=str(tmp_path / "sim.pickle"))
    first = await _run(config)
    second = create_app(config).state.sim

    assert second.clock.anchor_ms != first.clock.anchor_ms
    for user_id in first.world.profiles:
        assert second.world.data(user_id) == first.world.data(user_id)
    assert 10001 in second.world.connected
    assert second.world.steps == first.world.steps


async def test_without_a_state_file_each_run_makes_its_own(tmp_path: Path) -> None:
    first = await _run(SimConfig(users=1, days=3))
    second = create_app(SimConfig(users=1, days=3)).state.sim

    assert second.world.data(10001) != first.world.data(10001)  # the workout step is gone


async def test_an_unreadable_file_starts_fresh(tmp_path: Path) -> None:
    path = tmp_path / "sim.pickle"
    path.write_bytes(b"not a pickle")

    sim = create_app(SimConfig(users=1, days=3, state_file=str(path))).state.sim

    assert sim.world.data(10001).profile.user_id == 10001

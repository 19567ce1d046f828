"""The simulated world: members, their records (built lazily on first use), and who is connected."""

from __future__ import annotations

from services.simulator.clock import Clock
from services.simulator.config import SimConfig
from services.simulator.generate import make_profile
from services.simulator.history import build_history
from services.simulator.records import Profile, UserData


class World:
    """All members of one simulator run."""

    def __init__(self, config: SimConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.profiles: dict[int, Profile] = {}
        for index in range(config.users):
            profile = make_profile(config.seed, index, config.first_user_id)
            self.profiles[profile.user_id] = profile
        self._data: dict[int, UserData] = {}
        self.connected: set[int] = set()
        self.steps = 0

    def data(self, user_id: int) -> UserData:
        """The member's records, generated on first use."""
        found = self._data.get(user_id)
        if found is None:
            found = build_history(
                self.profiles[user_id],
                self.config.seed,
                self.config.days,
                self.clock.anchor_ms,
                self.config.first_user_id,
            )
            self._data[user_id] = found
        return found

    def restore(self, user_id: int, data: UserData) -> None:
        """Take a member's records from a run before instead of generating them."""
        self._data[user_id] = data

    def next_unconnected(self, exclude: set[int]) -> int | None:
        """The first member neither connected nor in `exclude`."""
        return next(
            (u for u in self.profiles if u not in self.connected and u not in exclude), None
        )

"""A simulated clock: real time scaled by `speed`, plus manual jumps, in epoch milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Simulated time; `speed` 60 makes a simulated minute last one real second."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.speed = speed
        self._real_anchor = time.time()
        self.anchor_ms = int(self._real_anchor * 1000)
        self._offset_ms = 0

    def now_ms(self) -> int:
        """Simulated now, epoch milliseconds."""
        elapsed = (time.time() - self._real_anchor) * self.speed
        return self.anchor_ms + int(elapsed * 1000) + self._offset_ms

    def set_speed(self, speed: float) -> None:
        """Run at another speed from now on (simulated now does not jump)."""
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        now = self.now_ms()
        self._real_anchor, self.anchor_ms, self._offset_ms = time.time(), now, 0
        self.speed = speed

    def advance(self, seconds: float) -> None:
        """Jump the simulated clock forward."""
        self._offset_ms += int(seconds * 1000)

    def real_seconds(self, simulated_seconds: float) -> float:
        """How long `simulated_seconds` last in real time."""
        return simulated_seconds / self.speed


def iso(ms: int) -> str:
    """WHOOP's timestamp format: UTC, milliseconds, `Z`."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_ms(text: str) -> int:
    """Epoch milliseconds of an ISO 8601 timestamp (naive means UTC); ValueError if malformed."""
    moment = datetime.fromisoformat(text.replace(" ", "+") if "T" in text else text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)

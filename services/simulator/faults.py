"""Fault injection: rules that answer a matching call with a status, a delay, or a hang."""

from __future__ import annotations

import fnmatch
import random
from dataclasses import asdict, dataclass, field
from typing import Any


class BadRule(ValueError):
    """A fault rule the control API cannot accept."""


@dataclass
class FaultRule:
    """Matching calls (path glob, method) get `status` and/or `latency_ms`, or hang (`timeout`:
    `hang_seconds` of silence, then 504). `count` limits the rule to the next N matching calls;
    `fraction` applies it to that share of them."""

    id: int
    path: str = "*"
    method: str = "*"
    status: int | None = None
    latency_ms: int = 0
    timeout: bool = False
    hang_seconds: float = 30.0
    count: int | None = None
    fraction: float = 1.0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        """Whether the rule applies to this call (before drawing `fraction`)."""
        return (self.method in ("*", method)) and fnmatch.fnmatchcase(path, self.path)

    def as_json(self) -> dict[str, Any]:
        """The control API's view."""
        return asdict(self)


@dataclass
class Faults:
    """The active rules; the first that fires wins."""

    rules: list[FaultRule] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    _next_id: int = 1

    def add(self, spec: dict[str, Any]) -> FaultRule:
        """A new rule from the control API's JSON."""
        allowed = {f for f in FaultRule.__dataclass_fields__ if f not in ("id", "hits")}
        unknown = set(spec) - allowed
        if unknown:
            raise BadRule(f"unknown fields: {sorted(unknown)}")
        try:
            rule = FaultRule(id=self._next_id, **spec)
        except TypeError as exc:
            raise BadRule(str(exc)) from None
        _check(rule)
        self._next_id += 1
        self.rules.append(rule)
        return rule

    def pick(self, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this call, if any, spending one of its `count`."""
        for rule in self.rules:
            if not rule.matches(method, path) or self.rng.random() >= rule.fraction:
                continue
            rule.hits += 1
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
            return rule
        return None

    def clear(self) -> None:
        """Remove every rule."""
        self.rules.clear()


def _check(rule: FaultRule) -> None:
    if rule.status is not None and not (isinstance(rule.status, int) and 100 <= rule.status <= 599):
        raise BadRule("status must be an HTTP status code")
    if not 0.0 <= float(rule.fraction) <= 1.0:
        raise BadRule("fraction must be within 0..1")
    if rule.count is not None and (not isinstance(rule.count, int) or rule.count < 1):
        raise BadRule("count must be a positive integer")
    if not isinstance(rule.latency_ms, int) or rule.latency_ms < 0:
        raise BadRule("latency_ms must be a non-negative integer")
    if rule.status is None and not rule.timeout and not rule.latency_ms:
        raise BadRule("a rule needs status, latency_ms or timeout")

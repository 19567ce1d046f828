"""`whoop-sync replay` options (the replay itself is exercised in tests/common/sync/test_service.py)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from services.cli import build_parser
from services.commands.replay import parse_since


def test_since_accepts_an_age() -> None:
    moment = parse_since("2h")
    assert abs((datetime.now(UTC) - timedelta(hours=2) - moment).total_seconds()) < 5


def test_since_accepts_iso_8601_and_reads_a_naive_time_as_utc() -> None:
    assert parse_since("2026-01-02T03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_since("2026-01-02T03:04:05+01:00").utcoffset() == timedelta(hours=1)


def test_since_refuses_anything_else() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_since("yesterday")


def test_status_must_be_an_event_status() -> None:
    args = build_parser("replay").parse_args(["replay", "--status", "failed", "--since", "30m"])
    assert args.status == "failed"
    with pytest.raises(SystemExit):
        build_parser("replay").parse_args(["replay", "--status", "lost"])

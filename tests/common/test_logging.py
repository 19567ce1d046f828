import json

import pytest
import structlog

from common.logging import REDACTED, configure_logging


def test_tokens_and_secrets_never_reach_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json")
    structlog.get_logger().info(
        "whoop.token_refreshed",
        access_token="at-123",
        refresh_token="rt-456",
        client_secret="cs-789",
        headers={"Authorization": "Bearer xyz", "Accept": "json"},
        items=[{"id_token": "it-1"}],
        user_id="u1",
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    for secret in ("at-123", "rt-456", "cs-789", "xyz", "it-1"):
        assert secret not in line
    assert record["access_token"] == REDACTED
    assert record["headers"] == {"Authorization": REDACTED, "Accept": "json"}
    assert record["user_id"] == "u1"
    assert record["event"] == "whoop.token_refreshed"


def test_console_logs_written_to_a_file_carry_no_colour_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("console")  # as `make run` asks, with stderr a file (captured), not a tty
    structlog.get_logger("t").info("demo.started", users=3)

    err = capsys.readouterr().err
    assert "demo.started" in err
    assert "\x1b[" not in err

"""compose.yaml is checked by reading, since no Docker engine runs the tests: every command exists
in the CLI, every variable it sets exists in Settings, every long-running service has a health check
that others wait on, and secrets must be given."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.config import ENV_PREFIX, Settings
from services.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = {
    name: s for name, s in SERVICES.items() if s.get("image", "").startswith("whoop-sync")
}
SECRETS = [
    "WHOOPSYNC_WHOOP_CLIENT_SECRET",
    "WHOOPSYNC_JWT_SECRET",
    "WHOOPSYNC_TOKEN_ENCRYPTION_KEY",
]


def test_every_app_command_exists_in_the_cli() -> None:
    assert set(APP_SERVICES) == {"migrate", "webhook", "api", "worker", "simulator"}
    for name, service in APP_SERVICES.items():
        assert service["command"][0] in COMMANDS, (
            f"{name}: unknown subcommand {service['command'][0]}"
        )


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_every_variable_set_exists_in_settings(name: str) -> None:
    fields = {f"{ENV_PREFIX}{f.upper()}" for f in Settings.model_fields}
    for var in APP_SERVICES[name].get("environment", {}):
        assert var in fields, f"{name} sets {var}, which Settings does not know"


def test_secrets_must_be_given() -> None:
    env = APP_SERVICES["api"]["environment"]
    for var in SECRETS:
        assert re.fullmatch(r"\$\{" + var + r":\?[^}]+\}", env[var]), var
    assert ":?" in SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"]


def test_long_running_services_have_health_checks_that_dependents_wait_on() -> None:
    for name, service in SERVICES.items():
        if name != "migrate":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name in ("webhook", "api", "worker"):
        deps = SERVICES[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"
        assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["simulator"]["profiles"] == ["sim"]


def test_health_checks_point_at_real_endpoints_and_settings() -> None:
    assert SERVICES["worker"]["healthcheck"]["test"] == ["CMD", "whoop-sync", "worker", "--check"]
    worker = build_parser("worker").parse_args(["worker", "--check"])
    assert worker.check is True
    for name, port in (("api", 8001), ("webhook", 8002), ("simulator", 8099)):
        assert f"127.0.0.1:{port}/readyz" in " ".join(SERVICES[name]["healthcheck"]["test"])


def test_dockerfile_is_multi_stage_and_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.MULTILINE)) >= 2
    user = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user
    assert user[-1] not in ("root", "0")

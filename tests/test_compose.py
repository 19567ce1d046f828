"""compose.yaml, the Dockerfile and .dockerignore, held to what a deployer needs. No Docker engine
runs the tests, so the file is read and its variables interpolated the way compose does; what the
containers run (the installed package, the password, the simulator's URLs) is run for real here or
in tests/test_packaging.py."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
import yaml

from common.config import ENV_PREFIX, Settings, load_settings
from services.api.app import check_settings
from services.cli import COMMANDS, build_parser
from tests.faults.services import PrivatePostgres

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
SETTINGS = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
OTEL = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"}
SIM_ENV = ROOT / "deploy" / "sim.env"
# The password of the password test needs escaping in a URL at every character class it has.
AWKWARD_PASSWORD = "p@ss/w:rd%41?#"

_VARIABLE = re.compile(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines, as compose reads an env file (comments and blank lines skipped)."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """`${VAR}`, `${VAR:-default}` and `${VAR:?error}` as compose resolves them."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        found = env.get(name, "")
        if found:
            return found
        if op == ":?":
            raise LookupError(f"{name}: {arg}")
        return arg if op == ":-" else ""

    return _VARIABLE.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def container_env(service: str, env: Mapping[str, str]) -> dict[str, str]:
    """The environment compose gives a service: values interpolated, names without a value
    taken from the environment when set there (else left unset)."""
    resolved = {}
    for name, value in APP_SERVICES[service]["environment"].items():
        if value is None:
            if env.get(name):
                resolved[name] = env[name]
        else:
            resolved[name] = interpolate(str(value), env)
    return resolved


def test_every_app_command_exists_in_the_cli() -> None:
    assert set(APP_SERVICES) == {"migrate", "webhook", "api", "worker", "simulator"}
    for name, service in APP_SERVICES.items():
        assert service["command"][0] in COMMANDS, (
            f"{name}: unknown subcommand {service['command'][0]}"
        )


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_every_setting_reaches_every_app_container(name: str) -> None:
    passed = set(APP_SERVICES[name]["environment"])
    missing = SETTINGS - passed
    assert not missing, f"{name} does not pass {sorted(missing)}: add them to x-settings"
    assert passed >= OTEL, f"{name} does not pass the OTEL_* variables"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_every_variable_passed_is_a_setting(name: str) -> None:
    for var in APP_SERVICES[name]["environment"]:
        assert var in SETTINGS or var.startswith("OTEL_") or var == "PGPASSWORD", (
            f"{name} sets {var}, which Settings does not know"
        )


def test_settings_passed_by_name_keep_the_products_defaults() -> None:
    """A setting the deployer leaves unset stays unset: no second copy of a default here."""
    composed = {
        "WHOOPSYNC_DATABASE_URL",
        "WHOOPSYNC_REDIS_URL",
        "WHOOPSYNC_LOG_FORMAT",
        "WHOOPSYNC_WHOOP_CLIENT_ID",
        "WHOOPSYNC_WHOOP_REDIRECT_URI",
        "PGPASSWORD",
        *SECRETS,
    }
    env = container_env("api", {**read_env_file(SIM_ENV), "WHOOPSYNC_FRESHNESS": "threshold"})
    assert env["WHOOPSYNC_FRESHNESS"] == "threshold"
    for name, value in APP_SERVICES["api"]["environment"].items():
        if name not in composed:
            assert value is None, f"{name} has a value in compose.yaml: {value}"


def test_secrets_must_be_given() -> None:
    env = APP_SERVICES["api"]["environment"]
    for var in SECRETS:
        assert re.fullmatch(r"\$\{" + var + r":\?[^}]+\}", env[var]), var
    assert ":?" in SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"]
    with pytest.raises(LookupError, match="POSTGRES_PASSWORD"):
        container_env(
            "api", {k: v for k, v in read_env_file(SIM_ENV).items() if "POSTGRES" not in k}
        )


def test_the_password_travels_apart_from_the_url() -> None:
    env = container_env(
        "migrate", {**read_env_file(SIM_ENV), "POSTGRES_PASSWORD": AWKWARD_PASSWORD}
    )
    assert env["PGPASSWORD"] == AWKWARD_PASSWORD
    url = urlsplit(env["WHOOPSYNC_DATABASE_URL"])
    assert url.password is None
    assert (url.hostname, url.port, url.path) == ("postgres", 5432, "/whoopsync")
    postgres = SERVICES["postgres"]["environment"]
    assert postgres["POSTGRES_USER"] == url.username
    assert f"/{postgres['POSTGRES_DB']}" == url.path


@pytest.fixture(scope="module")
async def password_postgres() -> AsyncIterator[PrivatePostgres]:
    """A private PostgreSQL where `whoopsync` must log in with AWKWARD_PASSWORD (scram)."""
    pg = PrivatePostgres()
    pg.init()
    hba = pg.directory / "data" / "pg_hba.conf"
    hba.write_text("host all whoopsync 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    await pg.start()
    try:
        admin = await asyncpg.connect(pg.dsn)
        try:
            quoted = AWKWARD_PASSWORD.replace("'", "''")
            await admin.execute(f"CREATE ROLE whoopsync LOGIN PASSWORD '{quoted}'")
            await admin.execute("CREATE DATABASE whoopsync OWNER whoopsync")
        finally:
            await admin.close()
        yield pg
    finally:
        pg.remove()


def _migrate(pg: PrivatePostgres, password: str) -> subprocess.CompletedProcess[str]:
    """`whoop-sync migrate` with compose's migrate environment, aimed at the private server."""
    env = container_env("migrate", {**read_env_file(SIM_ENV), "POSTGRES_PASSWORD": password})
    env["WHOOPSYNC_DATABASE_URL"] = env["WHOOPSYNC_DATABASE_URL"].replace(
        "@postgres:5432/", f"@127.0.0.1:{pg.port}/"
    )
    argv = [str(Path(sys.executable).parent / "whoop-sync"), "migrate"]
    return subprocess.run(
        argv, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, check=False
    )


@pytest.mark.slow
def test_a_password_that_needs_url_escaping_works(password_postgres: PrivatePostgres) -> None:
    refused = _migrate(password_postgres, "not-the-password")
    assert refused.returncode != 0
    assert "password authentication failed" in refused.stderr
    done = _migrate(password_postgres, AWKWARD_PASSWORD)
    assert done.returncode == 0, done.stderr


def test_the_sim_profile_points_every_app_at_the_simulator() -> None:
    values = read_env_file(SIM_ENV)
    assert values["COMPOSE_PROFILES"] == "sim"
    sim = SERVICES["simulator"]
    command = sim["command"]
    port = int(command[command.index("--port") + 1])
    assert f"{port}:{port}" in sim["ports"]
    for service in ("webhook", "api", "worker"):
        env = container_env(service, values)
        for name, path in (
            ("WHOOPSYNC_WHOOP_API_BASE_URL", "/developer"),
            ("WHOOPSYNC_WHOOP_OAUTH_BASE_URL", "/oauth/oauth2"),
        ):
            assert env[name] == f"http://simulator:{port}{path}", (service, name)
    sim_env = container_env("simulator", values)
    api_env = container_env("api", values)
    for name in ("WHOOPSYNC_WHOOP_CLIENT_ID", "WHOOPSYNC_WHOOP_CLIENT_SECRET"):
        assert sim_env[name] == api_env[name]  # the simulator signs webhooks with the same secret
    webhook_url = urlsplit(command[command.index("--webhook-url") + 1])
    hook = SERVICES["webhook"]["command"]
    assert webhook_url.hostname == "webhook"
    assert webhook_url.port == int(hook[hook.index("--port") + 1])
    assert webhook_url.path == "/webhooks/whoop"
    redirect = urlsplit(api_env["WHOOPSYNC_WHOOP_REDIRECT_URI"])
    api_port = SERVICES["api"]["command"][SERVICES["api"]["command"].index("--port") + 1]
    assert f"{redirect.port}:{api_port}" in SERVICES["api"]["ports"]
    assert redirect.path == "/api/v1/whoop/callback"


def test_the_sim_env_file_makes_settings_the_api_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(ROOT / "deploy")  # no .env of the checkout's own is read
    for name, value in container_env("api", read_env_file(SIM_ENV)).items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    check_settings(settings)
    assert settings.redis_url == "redis://redis:6379/0"


def test_long_running_services_have_health_checks_that_dependents_wait_on() -> None:
    for name, service in SERVICES.items():
        if name != "migrate":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name in ("webhook", "api", "worker"):
        deps = SERVICES[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"
        assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert SERVICES["simulator"]["profiles"] == ["sim"]


def test_health_checks_point_at_real_endpoints_and_settings() -> None:
    assert SERVICES["worker"]["healthcheck"]["test"] == ["CMD", "whoop-sync", "worker", "--check"]
    worker = build_parser("worker").parse_args(["worker", "--check"])
    assert worker.check is True
    for name, port in (("api", 8001), ("webhook", 8002), ("simulator", 8099)):
        assert f"127.0.0.1:{port}/readyz" in " ".join(SERVICES[name]["healthcheck"]["test"])
        assert f"--port {port}" in " ".join(SERVICES[name]["command"])
    # PostgreSQL is healthy once it answers a query over TCP with the password: the image's
    # first-start server listens on its socket only, where pg_isready would pass too early.
    postgres = " ".join(SERVICES["postgres"]["healthcheck"]["test"])
    assert "-h 127.0.0.1" in postgres
    assert "PGPASSWORD" in postgres
    assert "PONG" in " ".join(SERVICES["redis"]["healthcheck"]["test"])


def test_dockerfile_is_multi_stage_and_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.MULTILINE)) >= 2
    user = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user
    assert user[-1] not in ("root", "0")
    assert "--no-editable" in dockerfile
    runtime = dockerfile.split("AS runtime", 1)[1]
    # The runtime holds the installed package only: migrations must come from inside it.
    assert re.findall(r"^COPY (.*)$", runtime, re.MULTILINE) == [
        "--from=build --chown=whoopsync:whoopsync /app/.venv /app/.venv"
    ]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path` out of the context (last matching pattern wins)."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        bare = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        candidates = prefixes + ["/".join(parts[i:]) for i in range(len(parts))]
        if bare.startswith("**/"):
            hit = any(fnmatch.fnmatch(c, bare[3:]) for c in candidates)
        else:
            hit = any(fnmatch.fnmatch(p, bare) for p in prefixes)
        if hit:
            ignored = not negate
    return ignored


def test_dockerignore_keeps_the_build_context_to_what_the_image_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in (
        ".venv/bin/python",
        ".run/demo.db",
        ".git/HEAD",
        ".env",
        "deploy/sim.env",
        "common/__pycache__/config.cpython-311.pyc",
        ".mypy_cache/x",
        ".pytest_cache/x",
        ".ruff_cache/x",
        "bench/results/latest.json",
        "whoop-sync.db",
    ):
        assert _ignored(path, patterns), f"{path} would be sent to the Docker daemon"
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    sources = [s for line in copied for s in line.split()]
    assert "migrations" in sources
    for source in sources:
        assert not _ignored(source, patterns), f"the image copies {source}, which is ignored"
        assert (ROOT / source).exists(), source

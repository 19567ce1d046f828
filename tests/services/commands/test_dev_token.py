"""`whoop-sync dev-token` in a second terminal next to `make run`: it finds the running demo's
settings in `.run/`, so the token it prints is one the demo accepts."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from common.auth import AuthError, TokenVerifier
from common.config import Settings
from services import cli

ROOT = Path(__file__).resolve().parents[3]
USER = uuid.UUID("0b7f1c52-5c1e-4d0e-9a39-3f6f4f1f9a11")


def _demo(state: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """scripts/run_demo.py, keeping its state in `state`."""
    monkeypatch.setenv("DEMO_DIR", str(state))
    spec = importlib.util.spec_from_file_location("run_demo", ROOT / "scripts" / "run_demo.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def demo_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What `make run` starts `serve` with, written under tmp_path/.run as the demo does; the
    second terminal: at that directory, with none of the demo's variables set."""
    settings: dict[str, str] = _demo(tmp_path / ".run", monkeypatch).settings()
    for name in [*settings, "DEMO_DIR"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return settings


def _token(capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["dev-token", "--user-id", str(USER)]) == 0
    return capsys.readouterr().out.strip()


async def test_dev_token_in_a_second_terminal_is_accepted_by_the_demo(
    demo_settings: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    token = _token(capsys)

    demo = TokenVerifier(Settings(jwt_secret=demo_settings["WHOOPSYNC_JWT_SECRET"]))
    assert await demo.verify_token(token) == USER


async def test_an_explicit_secret_still_wins_over_the_demos(
    demo_settings: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mine = "a-secret-of-my-own-long-enough-for-hs256"
    monkeypatch.setenv("WHOOPSYNC_JWT_SECRET", mine)

    token = _token(capsys)

    assert await TokenVerifier(Settings(jwt_secret=mine)).verify_token(token) == USER
    demo = TokenVerifier(Settings(jwt_secret=demo_settings["WHOOPSYNC_JWT_SECRET"]))
    with pytest.raises(AuthError):
        await demo.verify_token(token)

"""The package as a deployer installs it: the wheel built from this checkout, installed with the
lock's versions into a fresh virtual environment outside the checkout, migrates a fresh PostgreSQL
database and serves from another directory (/readyz 200, /docs with its own assets)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.simulator.server import free_port
from tests.databases import own_database

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).parent / "uv"
TOKEN_KEY = "bXV0dWFsbHktYXNzdXJlZC1iZW5jaC1rZXktMzJieXQ="


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{argv[:3]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _clean_env(**settings: str) -> dict[str, str]:
    """The environment of a deployed process: nothing that points back into the checkout."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "UV_CACHE_DIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    return env | settings


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`bin/` of a fresh virtual environment holding the built wheel and the locked dependencies."""
    work = tmp_path_factory.mktemp("package")
    dist = work / "dist"
    _run([str(UV), "build", "--quiet", "--out-dir", str(dist), str(ROOT)], cwd=work)
    wheels = list(dist.glob("whoop_sync-*.whl"))
    assert len(wheels) == 1, wheels
    requirements = work / "requirements.txt"
    _run(
        [
            str(UV), "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes",
            "--quiet", "--output-file", str(requirements),
        ],
        cwd=ROOT,
    )  # fmt: skip
    venv = work / "venv"
    _run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=work)
    install = [str(UV), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
    install += ["-r", str(requirements), str(wheels[0])]
    try:  # uv's cache usually holds the lock's versions already: no index needed
        _run([*install, "--offline"], cwd=work)
    except AssertionError:
        _run(install, cwd=work)
    return venv / "bin"


@pytest.fixture
async def fresh_database() -> AsyncIterator[str]:
    """An empty PostgreSQL database (no schema): its SQLAlchemy URL."""
    async with own_database("whoopsync_pkg", migrated=False) as url:
        yield url


def _head_revision() -> str:
    """The newest migration of this checkout."""
    from alembic.script import ScriptDirectory

    from common.db.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def _revision(python: Path, database_url: str, cwd: Path) -> str:
    """The database's Alembic revision, read with the installed environment's asyncpg."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    script = (
        "import asyncio, asyncpg, sys\n"
        "async def main():\n"
        "    conn = await asyncpg.connect(sys.argv[1])\n"
        "    print(await conn.fetchval('SELECT version_num FROM alembic_version'))\n"
        "    await conn.close()\n"
        "asyncio.run(main())\n"
    )
    return _run([str(python), "-c", script, dsn], cwd=cwd, env=_clean_env()).strip()


def _wait_ready(proc: subprocess.Popen[str], url: str, limit: float = 60) -> httpx.Response:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            answer = httpx.get(url, timeout=2)
        except httpx.HTTPError:
            answer = None
        if answer is not None and answer.status_code == 200:
            return answer
        time.sleep(0.2)
    proc.terminate()
    pytest.fail(f"{url} never answered 200:\n{proc.communicate(timeout=10)[0]}")


def test_the_installed_package_is_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    where = _run(
        [str(installed / "python"), "-c", "import common.db.migrate as m; print(m.__file__); "
         "print(m.MIGRATIONS_DIR)"],
        cwd=tmp_path,
        env=_clean_env(),
    ).split()  # fmt: skip
    assert all(str(installed.parent) in path for path in where), where
    assert (Path(where[1]) / "versions").is_dir()


def test_the_installed_package_migrates_and_serves_from_elsewhere(
    installed: Path, fresh_database: str, tmp_path: Path
) -> None:
    migrate_dir, serve_dir = tmp_path / "migrate", tmp_path / "serve"
    migrate_dir.mkdir()
    serve_dir.mkdir()
    env = _clean_env(WHOOPSYNC_DATABASE_URL=fresh_database, WHOOPSYNC_LOG_FORMAT="json")
    _run([str(installed / "whoop-sync"), "migrate"], cwd=migrate_dir, env=env)
    assert _revision(installed / "python", fresh_database, tmp_path) == _head_revision()

    port = free_port()
    env |= {
        "WHOOPSYNC_WHOOP_CLIENT_ID": "pkg-client",
        "WHOOPSYNC_WHOOP_CLIENT_SECRET": "pkg-secret",
        "WHOOPSYNC_WHOOP_REDIRECT_URI": f"http://127.0.0.1:{port}/api/v1/whoop/callback",
        "WHOOPSYNC_JWT_SECRET": "pkg-jwt-secret-with-enough-bytes-for-hs256",
        "WHOOPSYNC_TOKEN_ENCRYPTION_KEY": TOKEN_KEY,
        # Nothing reaches out: WHOOP's URLs point at a closed port.
        "WHOOPSYNC_WHOOP_API_BASE_URL": "http://127.0.0.1:9/developer",
        "WHOOPSYNC_WHOOP_OAUTH_BASE_URL": "http://127.0.0.1:9/oauth/oauth2",
    }
    argv = [str(installed / "whoop-sync"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        argv, cwd=serve_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        ready = _wait_ready(proc, f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 200
        docs = httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5)
        assert docs.status_code == 200
        assets = _asset_urls(docs.text)
        assert assets, docs.text
        for asset in assets:
            assert asset.startswith("/"), f"/docs loads {asset} from elsewhere"
            fetched = httpx.get(f"http://127.0.0.1:{port}{asset}", timeout=5)
            assert fetched.status_code == 200, asset
            assert len(fetched.content) > 1000, asset
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert not list(serve_dir.iterdir()), "serve on PostgreSQL left files in its directory"


def _asset_urls(html: str) -> list[str]:
    """The scripts and stylesheets a page loads."""
    import re

    return re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)

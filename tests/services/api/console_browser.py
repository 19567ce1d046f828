"""The browser side of the console's test: the servers, Chromium, and the console as seen through
them (blocking Selenium steps run in threads, so the servers on the test's loop keep answering)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from common.auth import mint_token
from common.config import Settings
from tests import connect_flow
from tests.services.api.admin_helpers import ADMIN_AUTH, add_event
from tests.serving import JWT

WHOOP_USER = 10001
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
T = TypeVar("T")


def forger(target: str) -> Starlette:
    """Another site's page that posts a replay to the console as soon as it loads."""
    page = f"""<!doctype html><html><body>
<form id="f" method="post" action="{target}/console/replay">
<input type="hidden" name="what" value="events-failed">
<input type="hidden" name="csrf" value="guessed"></form>
<script>document.getElementById('f').submit();</script></body></html>"""

    async def home(_: Any) -> HTMLResponse:
        return HTMLResponse(page)

    return Starlette(routes=[Route("/", home)])


@dataclass
class Console:
    """The running product, an HTTP client, the browser and where screenshots go."""

    base: str
    sim_base: str
    forger: str
    http: httpx.AsyncClient
    driver: WebDriver
    shots: Path
    settings: Settings

    async def do(self, step: Callable[[], T]) -> T:
        """Run one blocking browser step in a thread."""
        return await asyncio.to_thread(step)

    async def open(self, path: str) -> None:
        """Load a console page."""
        await self.do(lambda: self.driver.get(self.base + path))

    async def text(self, element_id: str) -> str:
        """The text of an element of the page."""
        return await self.do(lambda: self.driver.find_element(By.ID, element_id).text)

    async def click(self, element_id: str) -> None:
        """Press a button and wait for the next page."""
        await self.do(lambda: self.driver.find_element(By.ID, element_id).click())

    async def shot(self, name: str) -> Path:
        """Save the whole page as a PNG."""
        path = self.shots / f"{name}.png"

        def take() -> None:
            height = self.driver.execute_script("return document.body.scrollHeight")
            width = self.driver.get_window_size()["width"]
            self.driver.set_window_size(width, max(700, int(height) + 140))
            self.driver.save_screenshot(str(path))

        await self.do(take)
        return path

    async def overview(self) -> dict[str, Any]:
        """GET /api/v1/admin/overview."""
        answer = await self.http.get(f"{self.base}/api/v1/admin/overview", headers=ADMIN_AUTH)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def user(self, ref: str) -> dict[str, Any]:
        """GET /api/v1/admin/users/{ref}."""
        answer = await self.http.get(f"{self.base}/api/v1/admin/users/{ref}", headers=ADMIN_AUTH)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def connect(self, whoop_user_id: int) -> None:
        """Connect an app user through the real flow, as an app would."""
        auth = {"Authorization": f"Bearer {mint_token(uuid.uuid4(), JWT)}"}
        await connect_flow.connect(self.http, auth, whoop_user_id, base=self.base)


def browser() -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--hide-scrollbars",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.implicitly_wait(10)  # a page loading after a click: wait for what is looked for
    return driver


async def sign_in(c: Console, token: str) -> None:
    def step() -> None:
        field = c.driver.find_element(By.ID, "token")
        field.clear()
        field.send_keys(token)
        c.driver.find_element(By.ID, "sign-in").click()

    await c.do(step)


@contextlib.asynccontextmanager
async def factory_of(settings: Settings) -> AsyncIterator[Any]:
    from common.db.engine import create_session_factory
    from common.sync.context import engine_for

    engine = engine_for(settings)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def a_sleep_id(c: Console) -> str:
    from sqlalchemy import select

    from common.db.models import Sleep

    async with factory_of(c.settings) as factory, factory() as session:
        found = await session.scalar(select(Sleep.id).where(Sleep.whoop_user_id == WHOOP_USER))
    assert found is not None
    return str(found)


async def add_failed(c: Console, record_id: str) -> int:
    async with factory_of(c.settings) as factory:
        return await add_event(factory, WHOOP_USER, record_id=record_id)


async def status_of(c: Console, event_id: int) -> str:
    page = await c.user(f"whoop:{WHOOP_USER}")
    return str(next(e["status"] for e in page["events"] if e["id"] == event_id))


async def event_status(c: Console, event_id: int, status: str) -> bool:
    return await status_of(c, event_id) == status


async def events_done(c: Console, count: int) -> bool:
    page = await c.user(f"whoop:{WHOOP_USER}")
    return bool(sum(e["status"] == "done" for e in page["events"]) >= count)


async def admin_syncs(c: Console, count: int) -> bool:
    page = await c.user(f"whoop:{WHOOP_USER}")
    admin = [a for a in page["attempts"] if a["trigger"] == "admin" and a["outcome"] == "success"]
    return len(admin) >= count


async def seed_history(c: Console) -> None:
    """A day of history before this test's own: WHOOP calls per hour by trigger, and processed
    webhook events of another WHOOP user with their lags, so the charts draw 24 hours."""
    import math
    from datetime import timedelta

    from common.db.models import WebhookEvent
    from common.db.repositories.ops import OpsRepository
    from common.db.types import utcnow

    hour = utcnow().replace(minute=0, second=0, microsecond=0)
    calls: dict[tuple[Any, str], int] = {}
    events = []
    for back in range(1, 24):
        at = hour - timedelta(hours=back)
        calls[(at, "webhook")] = 30 + round(20 * math.sin(back / 3))
        calls[(at, "read")] = 4 + back % 5
        if back % 4 == 0:
            calls[(at, "reconcile")] = 12
        for i in range(6):
            received = at + timedelta(minutes=9 * i + 1)
            lag = 0.25 + 0.15 * i + (2.5 if i == 5 and back % 3 == 0 else 0)
            events.append(
                WebhookEvent(
                    trace_id=uuid.uuid4().hex,
                    event_type="sleep.updated",
                    whoop_user_id=20001,
                    record_id=str(uuid.uuid4()),
                    payload="{}",
                    status="done",
                    attempts=1,
                    received_at=received,
                    processed_at=received + timedelta(seconds=lag),
                )
            )
    calls[(hour - timedelta(hours=20), "backfill")] = 96
    async with factory_of(c.settings) as factory, factory() as session:
        await OpsRepository(session).add_calls(calls)
        session.add_all(events)
        await session.commit()

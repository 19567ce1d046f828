"""The console in a real browser (SPEC §3.6): headless Chromium driven by Selenium against `serve`
on uvicorn, over a PostgreSQL database of its own and arq on Redis, the simulator as WHOOP.

It signs in, reads the overview's numbers against GET /api/v1/admin/overview, replays a failed
event and sees it processed, opens a user's page and presses "sync now" and sees the syncs
happen, and is refused without the cookie, from a cross-site page, and on a forged form. Every
page is saved as a screenshot (WHOOPSYNC_CONSOLE_SCREENSHOTS, or the test's temporary directory).

Selenium is blocking: each browser step runs in a thread, so the servers on this loop keep
answering.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By

from services.commands.serve import create_app
from services.simulator.server import free_port, serve_in_background
from tests.databases import own_database
from tests.services.api.admin_helpers import ADMIN, add_event
from tests.services.api.console_browser import (
    WHOOP_USER,
    Console,
    a_sleep_id,
    add_failed,
    admin_syncs,
    browser,
    event_status,
    events_done,
    factory_of,
    forger,
    seed_history,
    sign_in,
    status_of,
)
from tests.serving import settings_for, sim_config, uvicorn_on


@pytest.fixture
async def console_database() -> AsyncIterator[str]:
    """A PostgreSQL database for this test alone (the overview counts every row), migrated."""
    async with own_database("whoopsync_console") as url:
        yield url


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where the screenshots go."""
    where = Path(os.environ.get("WHOOPSYNC_CONSOLE_SCREENSHOTS") or tmp_path / "screenshots")
    where.mkdir(parents=True, exist_ok=True)
    return where


@pytest.fixture
async def console(
    console_database: str, redis_url: str, redis: Any, shots: Path
) -> AsyncIterator[Console]:
    """serve (arq on Redis, its own database), the simulator, a cross-site page, and Chromium."""
    port, forger_port = free_port(), free_port()
    config = sim_config(port, users=2, seed=11)
    base = f"http://127.0.0.1:{port}"
    async with serve_in_background(config) as sim:
        settings = settings_for(console_database, redis_url, sim, port, admin_token=ADMIN)
        async with (
            uvicorn_on(create_app(settings), "127.0.0.1", port),
            uvicorn_on(forger(base), "localhost", forger_port),
            httpx.AsyncClient(timeout=30) as http,
        ):
            driver = await asyncio.to_thread(browser)
            try:
                yield Console(
                    base,
                    sim.base_url,
                    f"http://localhost:{forger_port}",
                    http,
                    driver,
                    shots,
                    settings,
                )
            finally:
                await asyncio.to_thread(driver.quit)
    print(f"console screenshots: {shots}")


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    """Wait until `check()` holds."""
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - polling other processes over HTTP
            await asyncio.sleep(0.2)


OVERVIEW_FIELDS = {
    "inbox-pending": ("inbox", "pending"),
    "inbox-parked": ("inbox", "parked"),
    "inbox-failed": ("inbox", "failed"),
    "pushes-pending": ("pushes", "pending"),
    "pushes-failed": ("pushes", "failed"),
    "channel-refusals": ("webhook_channel", "refusals_last_hour"),
    "budget-day-used": ("whoop_budget", "day_used"),
    "budget-users-carried": ("whoop_budget", "users_carried"),
    "audit-misses": ("audit_misses_24h",),
    "reconcile-failures": ("reconcile_failures_24h",),
}


def _field(body: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        body = body[key]
    return body


async def _settled(c: Console) -> None:
    """The user's backfill has finished and no event is waiting."""

    async def quiet() -> bool:
        page = await c.user(f"whoop:{WHOOP_USER}")
        inbox = (await c.overview())["inbox"]
        return bool(page["connection"]["backfill"]["status"] == "done" and inbox["pending"] == 0)

    await eventually(quiet)


async def test_console_in_a_browser(console: Console) -> None:
    c = console
    await c.connect(WHOOP_USER)
    await _settled(c)
    for action in ("new_sleep", "workout"):  # webhooks: lag and calls for the charts
        await c.http.post(
            f"{c.sim_base}/_sim/scenario/step", json={"user_id": WHOOP_USER, "action": action}
        )
    page = await c.user(f"whoop:{WHOOP_USER}")
    await eventually(lambda: events_done(c, 2))
    sleep_id = await a_sleep_id(c)
    async with factory_of(c.settings) as factory:
        failed_id = await add_event(
            factory, WHOOP_USER, record_id=sleep_id, error="KeyError: 'score' (a bad answer)"
        )

    await seed_history(c)

    # Signed out: the sign-in form, and a wrong token is told so.
    await c.open("/console")
    await c.shot("1-sign-in")
    await sign_in(c, "not-the-token")
    assert await c.text("signin-error") == "Wrong token."
    await sign_in(c, ADMIN)

    # The overview's numbers are the admin API's.
    await c.shot("2-overview")
    api = await c.overview()
    for element_id, path in OVERVIEW_FIELDS.items():
        assert await c.text(element_id) == str(_field(api, path)), element_id
    assert api["inbox"]["failed"] == 1
    assert "KeyError" in await c.text("failed-events")

    # Replay the failed event and see it processed.
    await c.click("replay-events-failed")
    assert "reopened" in await c.text("notice")
    await eventually(lambda: event_status(c, failed_id, "done"))
    await c.open("/console")
    assert await c.text("inbox-failed") == "0"
    await c.shot("3-overview-after-replay")

    # A user's page: sync now, and the syncs happen.
    await c.do(lambda: c.driver.find_element(By.ID, "lookup-user").send_keys(f"whoop:{WHOOP_USER}"))
    await c.do(lambda: c.driver.find_element(By.CSS_SELECTOR, "form.lookup button").click())
    assert await c.text("user-id") == page["user_id"]
    assert await c.text("whoop-user-id") == str(WHOOP_USER)
    await c.shot("4-user")
    await c.click("sync-now")
    assert "Sync queued" in await c.text("notice")
    await eventually(lambda: admin_syncs(c, 4))
    await c.open(f"/console/users/whoop:{WHOOP_USER}")
    assert (await c.text("attempts")).count(" admin ") == 4
    await c.shot("5-user-after-sync")

    # Phone width.
    await c.do(lambda: c.driver.set_window_size(390, 844))
    await c.open("/console")
    await c.shot("6-overview-phone")
    scroll = await c.do(
        lambda: c.driver.execute_script("return document.documentElement.scrollWidth")
    )
    assert int(scroll) <= 390
    await c.do(lambda: c.driver.set_window_size(1280, 900))

    # Forged: a form of this page posting another token, and a page of another site.
    failed_again = await add_failed(c, sleep_id)
    await c.open("/console")
    await c.do(
        lambda: c.driver.execute_script(
            "const f = document.querySelector('form[action=\"/console/replay\"]');"
            "f.querySelector('input[name=csrf]').value = 'forged'; f.submit();"
        )
    )
    assert "Nothing was done" in await c.text("message")
    await c.shot("7-forged-form")
    await c.do(lambda: c.driver.get(c.forger))
    await c.do(lambda: c.driver.find_element(By.ID, "sign-in"))  # refused: the sign-in form
    await c.shot("8-cross-site")
    assert await status_of(c, failed_again) == "failed"

    # Signed out, or without the cookie: the sign-in form, nothing done.
    await c.open("/console")
    await c.click("sign-out")
    await c.do(lambda: c.driver.find_element(By.ID, "sign-in"))
    await c.open(f"/console/users/whoop:{WHOOP_USER}")
    await c.do(lambda: c.driver.find_element(By.ID, "sign-in"))
    plain = await c.http.post(f"{c.base}/console/replay", data={"what": "events-failed"})
    assert plain.status_code == 401
    assert await status_of(c, failed_again) == "failed"

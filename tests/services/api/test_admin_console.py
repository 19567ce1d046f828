"""The console (SPEC §3.6) over ASGI: sign-in, the session cookie's attributes, pages, and actions
refused without the session or with a forged form."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from fastapi import FastAPI

from tests.services.api.admin_helpers import ADMIN, add_event
from tests.services.api.conftest import connect_user, each_backend, make_settings, running, state_of

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


# The api with an admin token, on each backend.
settings = each_backend(admin_token=ADMIN)


@pytest.fixture
async def console(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client signed in to the console."""
    answer = await client.post("/console/sign-in", content=f"token={ADMIN}", headers=FORM)
    assert answer.status_code == 303
    return client


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


async def test_unsigned_visitor_gets_the_sign_in_form(client: httpx.AsyncClient) -> None:
    answer = await client.get("/console")

    assert answer.status_code == 200
    assert 'action="/console/sign-in"' in answer.text
    assert "Overview" not in answer.text


async def test_wrong_token_is_told_so_without_why(client: httpx.AsyncClient) -> None:
    answer = await client.post("/console/sign-in", content="token=nope", headers=FORM)

    assert answer.status_code == 401
    assert "Wrong token." in answer.text
    assert "set-cookie" not in answer.headers


async def test_sign_in_sets_a_strict_httponly_cookie_scoped_to_the_console(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post("/console/sign-in", content=f"token={ADMIN}", headers=FORM)

    assert answer.status_code == 303
    assert answer.headers["location"] == "/console"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/console" in cookie
    assert ADMIN.lower() not in cookie


async def test_overview_page_shows_the_numbers_and_charts(
    console: httpx.AsyncClient, app: FastAPI
) -> None:
    _, whoop_user_id = await connect_user(app)
    await add_event(state_of(app).session_factory, whoop_user_id, error="KeyError: 'score'")

    page = await console.get("/console")
    api = await console.get("/api/v1/admin/overview", headers={"Authorization": f"Bearer {ADMIN}"})

    assert page.status_code == 200
    failed = re.search(r'id="inbox-failed">(\d+)<', page.text)
    assert failed
    assert int(failed.group(1)) == api.json()["inbox"]["failed"]
    assert page.text.count('<svg class="chart"') == 2
    assert "KeyError: &#39;score&#39;" in page.text
    assert 'id="replay-events-failed"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert '<meta name="viewport"' in page.text
    assert 'src="/console/static/console.js" data-refresh="30"' in page.text  # refreshes itself


async def test_user_page_and_lookup(console: httpx.AsyncClient, app: FastAPI) -> None:
    user_id, whoop_user_id = await connect_user(app)

    found = await console.get("/console/lookup", params={"user": f"whoop:{whoop_user_id}"})
    page = await console.get(found.headers["location"])

    assert found.status_code == 303
    assert page.status_code == 200
    assert str(user_id) in page.text
    assert 'id="sync-now"' in page.text
    missing = await console.get(f"/console/users/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert "No such user" in missing.text


async def test_actions_are_refused_without_a_session(client: httpx.AsyncClient) -> None:
    replay = await client.post("/console/replay", content="what=events-failed&csrf=x", headers=FORM)
    user = await client.get(f"/console/users/{uuid.uuid4()}")

    assert replay.status_code == 401
    assert 'action="/console/sign-in"' in replay.text
    assert user.status_code == 401


@pytest.mark.parametrize("csrf", [None, "", "forged-token"], ids=["absent", "empty", "wrong"])
async def test_a_forged_post_is_refused(
    console: httpx.AsyncClient, app: FastAPI, csrf: str | None
) -> None:
    _, whoop_user_id = await connect_user(app)
    event_id = await add_event(state_of(app).session_factory, whoop_user_id)
    body = "what=events-failed" + ("" if csrf is None else f"&csrf={csrf}")

    answer = await console.post("/console/replay", content=body, headers=FORM)

    assert answer.status_code == 403
    assert "Nothing was done" in answer.text
    from common.db.models import WebhookEvent

    async with state_of(app).session_factory() as session:
        event = await session.get(WebhookEvent, event_id)
    assert event is not None
    assert event.status == "failed"


async def test_replay_with_the_session_token_reopens_events(
    console: httpx.AsyncClient, app: FastAPI
) -> None:
    _, whoop_user_id = await connect_user(app)
    event_id = await add_event(state_of(app).session_factory, whoop_user_id)
    csrf = _csrf((await console.get("/console")).text)

    answer = await console.post(
        "/console/replay", content=f"what=events-failed&csrf={csrf}", headers=FORM
    )

    assert answer.status_code == 303
    assert answer.headers["location"] == "/console?notice=events-failed"
    from common.db.models import WebhookEvent

    async with state_of(app).session_factory() as session:
        event = await session.get(WebhookEvent, event_id)
    assert event is not None
    assert event.status == "pending"


async def test_a_session_of_another_admin_token_is_refused(
    console: httpx.AsyncClient, pg_url: str, redis_url: str
) -> None:
    cookies = dict(console.cookies)
    other = make_settings(pg_url, redis_url, admin_token=ADMIN + "-rotated")
    async for app in running(other):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api.test", cookies=cookies
        ) as client:
            answer = await client.get("/console")
    assert 'action="/console/sign-in"' in answer.text


async def test_sign_out_clears_the_session(console: httpx.AsyncClient) -> None:
    csrf = _csrf((await console.get("/console")).text)

    answer = await console.post("/console/sign-out", content=f"csrf={csrf}", headers=FORM)

    assert answer.status_code == 303
    assert 'action="/console/sign-in"' in (await console.get("/console")).text


async def test_static_assets_are_served_and_nothing_else(client: httpx.AsyncClient) -> None:
    css = await client.get("/console/static/console.css")
    other = await client.get("/console/static/..%2Fsession.py")

    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert other.status_code == 404

"""Connecting a WHOOP member the way an app does, against the simulator: ask the api for WHOOP's
authorize URL, have the simulator approve it (at once, as `login_hint` when given), hand the code
and state that come back to the api's callback."""

from __future__ import annotations

import httpx

CONNECT = "/api/v1/whoop/connect"
CALLBACK = "/api/v1/whoop/callback"


async def start(api: httpx.AsyncClient, headers: dict[str, str], base: str = "") -> dict[str, str]:
    """GET the api's connect route as the signed-in user: `authorization_url` and `state`."""
    answer = await api.get(f"{base}{CONNECT}", headers=headers)
    assert answer.status_code == 200, answer.text
    started: dict[str, str] = answer.json()
    return started


async def approve(
    browser: httpx.AsyncClient, authorization_url: str, whoop_user_id: int | None = None
) -> httpx.URL:
    """Follow WHOOP's authorize URL at the simulator, which approves at once (as `whoop_user_id`,
    or its first free member); where it sends the browser back to (the redirect URI, with `code`
    and `state`)."""
    url = httpx.URL(authorization_url)
    if whoop_user_id is not None:
        url = url.copy_merge_params({"login_hint": str(whoop_user_id)})
    answer = await browser.get(url)
    assert answer.status_code == 302, answer.text
    return httpx.URL(answer.headers["location"])


def query_of(redirect: httpx.URL) -> dict[str, str]:
    """What WHOOP's redirect carries: `code` and `state`, or `error` and `state`."""
    return dict(redirect.params)


async def hand_on(
    api: httpx.AsyncClient, headers: dict[str, str], query: dict[str, str], base: str = ""
) -> httpx.Response:
    """What an app does with WHOOP's redirect to its own URI: POST the code and state to the
    api's callback, signed in."""
    body = {"code": query["code"], "state": query["state"]}
    return await api.post(f"{base}{CALLBACK}", json=body, headers=headers)


async def connect(
    api: httpx.AsyncClient,
    headers: dict[str, str],
    whoop_user_id: int | None = None,
    *,
    base: str = "",
    browser: httpx.AsyncClient | None = None,
) -> httpx.Response:
    """The whole flow for the user of `headers`, through the api at `base` (the browser's steps
    through `browser`, else `api`); the callback's answer, a 200."""
    started = await start(api, headers, base)
    redirect = await approve(browser or api, started["authorization_url"], whoop_user_id)
    done = await hand_on(api, headers, query_of(redirect), base)
    assert done.status_code == 200, done.text
    return done

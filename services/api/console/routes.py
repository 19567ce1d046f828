"""`/console`: the operators' pages (SPEC §3.6), rendered on the server with Jinja2.

Off (404) without WHOOPSYNC_ADMIN_TOKEN. Signing in with the token sets the session cookie
(`session.py`); every action is a POST carrying the session's CSRF token and answers with a
redirect, so a reload never repeats it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from common.db.repositories.admin import AdminRepository
from common.db.repositories.ops import OpsRepository
from common.db.types import utcnow
from common.queue import QueueUnavailable
from services.api.admin_schemas import ReplayRequest
from services.api.console import session
from services.api.console.charts import calls_chart, lag_by_hour, lag_chart
from services.api.deps import ApiState
from services.api.errors import ApiError
from services.api.operators import event_row, overview, sync_now, user_page
from services.api.routes.admin import admin_enabled, replay, token_matches

log = structlog.get_logger()
HERE = Path(__file__).parent
STATIC = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
REFRESH_SECONDS = 30
NOTICES = {
    "sync": "Sync queued for every type. Its attempts appear below as they finish.",
    "events-failed": "Failed events reopened and queued.",
    "events-parked": "Parked events reopened and queued.",
    "pushes-failed": "Failed pushes reopened; they go out again in order.",
    "queue-down": "The job queue is unavailable; nothing was queued.",
}
REPLAYS = {
    "events-failed": ReplayRequest(events="failed"),
    "events-parked": ReplayRequest(events="parked"),
    "pushes-failed": ReplayRequest(pushes="failed"),
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def _ts(moment: datetime | None) -> str:
    return "—" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}Z"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return _age((utcnow() - moment).total_seconds()) + " ago"


templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(ts=_ts, age=_age, ago=_ago)


def _enabled(request: Request) -> bytes:
    token = admin_enabled(_state(request).settings)
    if token is None:
        raise ApiError(404, "not_found", "No such endpoint")
    return token


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


router = APIRouter(prefix="/console", include_in_schema=False, dependencies=[Depends(_enabled)])


def _page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    base = {"refresh": REFRESH_SECONDS, "csrf": None, **context}
    return templates.TemplateResponse(request, name, base, status_code=status, headers=HEADERS)


def _signin(request: Request, status: int = 200, wrong: bool = False) -> Response:
    return _page(request, "signin.html", {"wrong": wrong, "refresh": None}, status)


def _message(request: Request, status: int, title: str, text: str, csrf: str | None) -> Response:
    context = {"title": title, "text": text, "csrf": csrf, "refresh": None}
    return _page(request, "message.html", context, status)


def _back(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers=HEADERS)


async def _checked_post(request: Request) -> tuple[str | None, Response | None, dict[str, str]]:
    """The session's CSRF token, or the refusal: 401 without a session, 403 on a forged form."""
    token = _enabled(request)
    fields = await session.form(request)
    csrf = session.csrf_of(request, token)
    if csrf is None:
        return None, _signin(request, 401), fields
    if not session.csrf_ok(csrf, fields.get("csrf")):
        log.warning("console.forged_post", path=request.url.path)
        text = "This form did not come from a console page of this session. Nothing was done."
        return csrf, _message(request, 403, "Refused", text, csrf), fields
    return csrf, None, fields


@router.get("")
async def home(request: Request) -> Response:
    """The overview, or the sign-in form."""
    csrf = session.csrf_of(request, _enabled(request))
    if csrf is None:
        return _signin(request)
    state, now = _state(request), utcnow()
    async with state.session_factory() as db:
        view = await overview(db, state.settings, state.whoop.limiter, now)
        calls = await OpsRepository(db).calls_since(now - timedelta(hours=23))
        lags = lag_by_hour(await AdminRepository(db).lag_samples(now - timedelta(hours=24)), now)
        failed = [event_row(e) for e in await AdminRepository(db).failed_events()]
        pushes = await AdminRepository(db).failed_pushes()
    calls_svg, calls_legend = calls_chart(calls, now)
    lag_svg, lag_legend = lag_chart(lags)
    context = {
        "csrf": csrf,
        "o": view,
        "calls_svg": calls_svg,
        "calls_legend": calls_legend,
        "calls_total": sum(c for _, _, c in calls),
        "lag_svg": lag_svg,
        "lag_legend": lag_legend,
        "events": failed,
        "pushes": pushes,
        "notice": NOTICES.get(request.query_params.get("notice", "")),
    }
    return _page(request, "overview.html", context)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """Check the token; a wrong one is told so, without saying why."""
    token = _enabled(request)
    fields = await session.form(request)
    if not token_matches(_state(request).settings, fields.get("token", "")):
        log.warning("console.sign_in_refused")
        return _signin(request, 401, wrong=True)
    response = _back("/console")
    session.start(response, token, secure=request.url.scheme == "https")
    log.info("console.signed_in")
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    """End the session (a forged sign-out is refused like any other action)."""
    _, refused, _ = await _checked_post(request)
    if refused is not None:
        return refused
    response = _back("/console")
    session.end(response)
    return response


@router.get("/lookup")
async def lookup(request: Request) -> Response:
    """The lookup form's answer: the user's page."""
    if session.csrf_of(request, _enabled(request)) is None:
        return _signin(request, 401)
    ref = request.query_params.get("user", "").strip()
    return _back(f"/console/users/{quote(ref, safe=':')}" if ref else "/console")


@router.get("/users/{ref}")
async def user(request: Request, ref: str) -> Response:
    """A user's page: connection, sync state per type, recent attempts and events."""
    csrf = session.csrf_of(request, _enabled(request))
    if csrf is None:
        return _signin(request, 401)
    async with _state(request).session_factory() as db:
        try:
            page = await user_page(db, ref)
        except ApiError as exc:
            return _message(request, exc.status, "No such user", exc.message, csrf)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    context = {"csrf": csrf, "u": page, "ref": ref, "notice": notice}
    return _page(request, "user.html", context)


@router.post("/users/{ref}/sync")
async def user_sync(request: Request, ref: str) -> Response:
    """Sync now: every type of the user, at background priority."""
    csrf, refused, _ = await _checked_post(request)
    if refused is not None:
        return refused
    state = _state(request)
    async with state.session_factory() as db:
        try:
            await sync_now(db, state.queue, ref)
        except ApiError as exc:
            return _message(request, exc.status, "No such user", exc.message, csrf)
        except (QueueUnavailable, ValueError):
            return _back(f"/console/users/{quote(ref, safe=':')}?notice=queue-down")
    log.info("console.sync_queued", user=ref)
    return _back(f"/console/users/{quote(ref, safe=':')}?notice=sync")


@router.post("/replay")
async def replay_failed(request: Request) -> Response:
    """Replay failed or parked events, or failed pushes."""
    csrf, refused, fields = await _checked_post(request)
    if refused is not None:
        return refused
    what = fields.get("what", "")
    if what not in REPLAYS:
        return _message(request, 422, "Nothing to replay", "Unknown replay.", csrf)
    state = _state(request)
    async with state.session_factory() as db:
        await replay(state, db, REPLAYS[what])
    return _back(f"/console?notice={what}")


@router.get("/static/{name}")
async def static(request: Request, name: str) -> Response:
    """The console's own stylesheet and script (no asset from elsewhere)."""
    if name not in STATIC:
        raise ApiError(404, "not_found", "No such file")
    body = (HERE / "static" / name).read_bytes()
    return Response(body, media_type=STATIC[name], headers={"Cache-Control": "max-age=300"})


def install_console(app: FastAPI) -> None:
    """Add the console's routes to an api app (standalone or `serve`)."""
    app.include_router(router)

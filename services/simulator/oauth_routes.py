"""WHOOP's OAuth endpoints under `/oauth/oauth2`: `auth` approves at once and redirects with a
code; `token` exchanges codes and rotates refresh tokens (credentials in the form, as WHOOP does)."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from services.simulator.gate import gated, json_response, sim_of
from services.simulator.oauth import OAuthError
from services.simulator.state import Simulator


def _redirect(uri: str, params: dict[str, str]) -> Response:
    parts = urlsplit(uri)
    query = urlencode([*parse_qsl(parts.query), *params.items()])
    return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=302)


def _oauth_error(exc: OAuthError) -> Response:
    body = {"error": exc.error}
    if exc.description:
        body["error_description"] = exc.description
    return json_response(body, exc.status)


def _choose_user(sim: Simulator, hint: str | None) -> int | None:
    if hint:
        try:
            user_id = int(hint)
        except ValueError:
            raise OAuthError(
                "invalid_request", description="login_hint must be a WHOOP user id"
            ) from None
        if user_id not in sim.world.profiles:
            raise OAuthError("invalid_request", description=f"no simulated user {user_id}")
        return user_id
    return sim.world.next_unconnected(sim.tokens.pending_users())


@gated("GET /oauth/oauth2/auth", limited=False)
async def authorize(request: Request) -> Response:
    """Approve at once: 302 to `redirect_uri` with `code` and `state`, or `error=access_denied`."""
    sim, q = sim_of(request), request.query_params
    redirect_uri, state = q.get("redirect_uri"), q.get("state")
    if not redirect_uri:
        return _oauth_error(OAuthError("invalid_request", description="redirect_uri is required"))
    if q.get("client_id") != sim.config.client_id:
        return _oauth_error(OAuthError("invalid_client", description="unknown client_id"))
    extra = {"state": state} if state is not None else {}
    if q.get("response_type") != "code":
        return _redirect(redirect_uri, {"error": "unsupported_response_type", **extra})
    if q.get("login_hint") == "deny" or sim.deny_next > 0:
        sim.deny_next = max(0, sim.deny_next - 1)
        return _redirect(redirect_uri, {"error": "access_denied", **extra})
    try:
        user_id = _choose_user(sim, q.get("login_hint"))
    except OAuthError as exc:
        return _oauth_error(exc)
    if user_id is None:
        desc = "every simulated user is connected"
        return _redirect(
            redirect_uri, {"error": "access_denied", "error_description": desc, **extra}
        )
    scope = q.get("scope", "")
    code = sim.tokens.issue_code(user_id, scope, redirect_uri, sim.clock.now_ms())
    return _redirect(redirect_uri, {"code": code, "scope": scope, **extra})


def _client_ok(request: Request, form: dict[str, str], sim: Simulator) -> bool:
    client_id, secret = form.get("client_id"), form.get("client_secret")
    kind, _, encoded = request.headers.get("authorization", "").partition(" ")
    if kind.lower() == "basic":
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
    return client_id == sim.config.client_id and secret == sim.config.client_secret


@gated("POST /oauth/oauth2/token", limited=False)
async def token(request: Request) -> Response:
    """Exchange a code or a refresh token for tokens; a spent refresh token is `invalid_grant`."""
    sim = sim_of(request)
    form = dict(parse_qsl((await request.body()).decode(errors="replace")))
    if not _client_ok(request, form, sim):
        return _oauth_error(OAuthError("invalid_client", 401, "bad client credentials"))
    grant_type, now = form.get("grant_type"), sim.clock.now_ms()
    try:
        if grant_type == "authorization_code":
            body = sim.tokens.exchange_code(form.get("code", ""), form.get("redirect_uri"), now)
            sim.world.connected.add(sim.tokens.user_of(str(body["access_token"])))
        elif grant_type == "refresh_token":
            body = sim.tokens.rotate(form.get("refresh_token", ""), now)
        else:
            raise OAuthError("unsupported_grant_type")
    except OAuthError as exc:
        return _oauth_error(exc)
    return json_response(body, headers={"Cache-Control": "no-store"})


def routes() -> list[Route]:
    """The two OAuth endpoints."""
    return [
        Route("/oauth/oauth2/auth", authorize, methods=["GET"]),
        Route("/oauth/oauth2/token", token, methods=["POST"]),
    ]

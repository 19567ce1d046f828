"""The console's session: a signed, HttpOnly, SameSite=Strict cookie scoped to /console, carrying
the CSRF token that every form posts back.

The signing key is derived from WHOOPSYNC_ADMIN_TOKEN, so changing the token signs everyone out.
A cross-site page can neither send the cookie (SameSite=Strict) nor read the token it would have
to post, so no action can be forged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import parse_qs

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "whoopsync_console"
PATH = "/console"
MAX_AGE = 12 * 3600
MAX_FORM = 4096


def _serializer(admin_token: bytes) -> URLSafeTimedSerializer:
    key = hashlib.sha256(b"whoop-sync console session\x00" + admin_token).hexdigest()
    return URLSafeTimedSerializer(key, salt="console-session")


def start(response: Response, admin_token: bytes, secure: bool) -> None:
    """Sign the browser in: a new session with its own CSRF token."""
    value = _serializer(admin_token).dumps({"csrf": secrets.token_urlsafe(24)})
    response.set_cookie(
        COOKIE,
        value,
        max_age=MAX_AGE,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def end(response: Response) -> None:
    """Sign the browser out."""
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")


def csrf_of(request: Request, admin_token: bytes) -> str | None:
    """The session's CSRF token, or None when the request carries no valid session."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(admin_token).loads(raw, max_age=MAX_AGE)
    except BadSignature:
        return None
    token = data.get("csrf") if isinstance(data, dict) else None
    return token if isinstance(token, str) else None


async def form(request: Request) -> dict[str, str]:
    """A small urlencoded form's fields (the first value of each); empty when it is too large."""
    body = await request.body()
    if len(body) > MAX_FORM:
        return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def csrf_ok(expected: str, given: str | None) -> bool:
    """Whether a posted CSRF token is the session's own (constant time)."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())

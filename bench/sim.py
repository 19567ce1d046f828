"""The WHOOP simulator in a measurement: started as `whoop-sync sim`, driven by its control API."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from bench.infra import CLIENT_ID, CLIENT_SECRET, Cluster, Proc, wait_http


async def start_sim(
    procs: Cluster,
    *,
    users: int,
    days: int,
    per_minute: int,
    per_day: int,
    clock_speed: float = 1.0,
    webhook_url: str | None = None,
    access_token_ttl: float = 10 * 86400.0,
    seed: int = 7,
) -> Proc:
    """Start the simulator (data calls rate-limited as configured) and wait for it."""
    argv = [
        "--users", str(users), "--days", str(days), "--seed", str(seed),
        "--rate-limit-per-minute", str(per_minute), "--rate-limit-per-day", str(per_day),
        "--clock-speed", str(clock_speed), "--access-token-ttl", str(access_token_ttl),
        "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET,
    ]  # fmt: skip
    if webhook_url:
        argv += ["--webhook-url", webhook_url]
    proc = procs.whoop_sync("simulator", "sim", {}, extra_argv=argv)
    await wait_http(proc, "/_sim/health", limit=120)
    return proc


def product_whoop_env(sim: Proc) -> dict[str, str]:
    """Settings that point the product at the simulator."""
    return {
        "WHOOPSYNC_WHOOP_API_BASE_URL": f"{sim.url}/developer",
        "WHOOPSYNC_WHOOP_OAUTH_BASE_URL": f"{sim.url}/oauth/oauth2",
    }


def data_calls(counters: Mapping[str, Any]) -> int:
    """Calls to WHOOP's data API (OAuth endpoints are not part of the rate-limited budget)."""
    by_endpoint: Mapping[str, int] = counters.get("by_endpoint", {})
    return sum(n for endpoint, n in by_endpoint.items() if "/oauth/" not in endpoint)


class SimControl:
    """A thin client of the simulator's `/_sim` control API."""

    def __init__(self, sim: Proc) -> None:
        self.http = httpx.AsyncClient(
            base_url=sim.url, timeout=60, limits=httpx.Limits(max_connections=32)
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    async def counters(self) -> dict[str, Any]:
        """The call counters."""
        result: dict[str, Any] = await self._json("GET", "/_sim/counters")
        return result

    async def reset(self) -> None:
        """Zero counters and rate windows."""
        await self._json("POST", "/_sim/reset")

    async def user_ids(self) -> list[int]:
        """The simulated members' WHOOP ids."""
        body = await self._json("GET", "/_sim/users")
        return [int(u["user_id"]) for u in body["users"]]

    async def step(self, user_id: int, action: str) -> list[dict[str, Any]]:
        """One scenario action for one member; the outcomes (what changed, webhooks due)."""
        body = await self._json(
            "POST", "/_sim/scenario/step", json={"user_id": user_id, "action": action}
        )
        outcomes: list[dict[str, Any]] = body["outcomes"]
        return outcomes

    async def create(self, user_id: int, kind: str, webhook: bool = False) -> dict[str, Any]:
        """A new record of a member (the simulator fills in the body); no webhook by default.

        The id is ours: the simulator seeds a record's randomness with the current millisecond,
        so records created in the same millisecond would otherwise share it.
        """
        params = {} if webhook else {"webhook": "false"}
        given = {"id": str(uuid.uuid4())}
        body = await self._json("POST", f"/_sim/users/{user_id}/{kind}", json=given, params=params)
        record: dict[str, Any] = body["record"]
        return record


async def direct_tokens(sim: Proc, whoop_ids: list[int], redirect_uri: str) -> dict[int, str]:
    """Access tokens for members through the simulator's OAuth flow, as the polling-on-read
    baseline (a client of WHOOP with no cache) would hold them."""
    tokens: dict[int, str] = {}
    async with httpx.AsyncClient(base_url=sim.url, timeout=30) as http:
        for whoop_id in whoop_ids:
            auth = await http.get(
                "/oauth/oauth2/auth",
                params={
                    "client_id": CLIENT_ID, "redirect_uri": redirect_uri, "response_type": "code",
                    "scope": "offline read:recovery read:cycles read:sleep read:workout",
                    "state": "benchpoll", "login_hint": str(whoop_id),
                },
            )  # fmt: skip
            code = httpx.URL(auth.headers["location"]).params["code"]
            token = await http.post(
                "/oauth/oauth2/token",
                data={
                    "grant_type": "authorization_code", "code": code,
                    "redirect_uri": redirect_uri, "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                },
            )  # fmt: skip
            token.raise_for_status()
            tokens[whoop_id] = str(token.json()["access_token"])
    return tokens

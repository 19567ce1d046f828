"""The WHOOP simulator (`whoop-sync sim`): a local stand-in for WHOOP's v2 API, OAuth server and
webhook sender, for development, demos, end-to-end tests and benchmarks. It is written from WHOOP's
documents alone and shares no code with the product's WHOOP client or sync service.

Pointing the product at it takes two settings::

    WHOOPSYNC_WHOOP_API_BASE_URL=http://127.0.0.1:8099/developer
    WHOOPSYNC_WHOOP_OAUTH_BASE_URL=http://127.0.0.1:8099/oauth/oauth2

Options (`whoop-sync sim --help`)::

    --host H / --port P            bind address (default 127.0.0.1:8099)
    --client-id / --client-secret  the app's credentials; default WHOOPSYNC_WHOOP_CLIENT_ID / _SECRET
                                   (else sim-client / sim-secret); the secret signs the webhooks
    --users N --days N --seed N    members, days of history each, seed (same seed, same data)
    --webhook-url URL              where webhooks go (none are sent without it)
    --rate-limit-per-minute N      app-wide budget, default 100 (and --rate-limit-per-day, 10000)
    --access-token-ttl SECONDS     default 3600
    --clock-speed X                simulated seconds per real second (rate windows, token expiry,
                                   webhook retry delays and data timestamps all follow it)
    --scenario-interval SECONDS    run a scenario step for every member every N seconds
    --webhook-retry-delays A,B,..  simulated seconds between the 5 retries (default WHOOP's hour)

WHOOP API: GET `/developer/v2/cycle[/{cycleId}[/sleep|/recovery]]`, `/developer/v2/recovery`,
`/developer/v2/activity/{sleep|workout}[/{id}]`, `/developer/v2/user/profile/basic`,
`/developer/v2/user/measurement/body`, DELETE `/developer/v2/user/access`. Paging as documented:
`limit` (default 10, max 25), `start` inclusive, `end` exclusive (default now), `nextToken` →
`next_token`, newest first (recoveries by their sleep's start). Every data response carries
`X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (real seconds until the
window resets); beyond the budget, 429. Unknown or expired bearer token, or a missing scope: 401.

OAuth: GET `/oauth/oauth2/auth` approves at once and redirects (302) with `code` and `state` for
the member named by `login_hint` (WHOOP user id), else the next member not yet connected;
`login_hint=deny` answers `error=access_denied`. POST `/oauth/oauth2/token` (form,
`grant_type=authorization_code|refresh_token`, client_id/client_secret in the form or Basic) answers
`{access_token, refresh_token, expires_in, scope, token_type: "bearer"}`; refresh tokens rotate and
a spent one is 400 `{"error": "invalid_grant"}`. A refresh token is issued only with `offline`.

Webhooks: POSTed JSON `{"user_id", "id", "type", "trace_id"}` (recovery events carry the sleep's
UUID) with `X-WHOOP-Signature` = base64(HMAC-SHA256(client_secret, timestamp + body)) and
`X-WHOOP-Signature-Timestamp` (epoch ms, real time); a non-2xx answer or transport error is
retried 5 times. Only connected members (code exchanged, not revoked) get webhooks.

Like every whoop-sync HTTP process it serves `/healthz`, `/readyz` and `/metrics` (its counters, in
Prometheus' text format).

Control API (JSON, no auth, never rate limited)::

    GET    /_sim/health                        {"status": "ok"}
    GET    /_sim/users                         {"users": [{"user_id", "email", "first_name",
                                                "last_name", "connected"}]}
    GET    /_sim/clock                         {"now": iso, "speed": x}
    POST   /_sim/clock {"seconds": N}          jump the simulated clock forward
    POST   /_sim/faults {"status"?, "latency_ms"?, "timeout"?, "hang_seconds"?, "count"?,
                         "fraction"?, "path"? (glob over the full path), "method"?}
                                               → 201 the rule; `timeout` hangs, then 504
    GET    /_sim/faults                        {"faults": [rule]};  DELETE clears them (204)
    GET    /_sim/counters                      {"total", "rate_limited", "by_endpoint":
                                                {"GET /v2/cycle": n}, "by_user": {"10001": n},
                                                "by_status": {"200": n}, "max_per_minute"}
    DELETE /_sim/counters                      zero them (204)
    POST   /_sim/reset                         clear faults, counters, rate windows, denials (204)
    POST   /_sim/scenario/step {"user_id"?, "action"?: new_sleep|workout|rescore|update|delete}
                                               → {"step", "outcomes": [{"user_id", "action",
                                                  "changed": [{"kind", "id"}],
                                                  "events": [{"type", "id"}]}]}
    POST   /_sim/oauth/deny {"count": N}       the next N authorizations are denied
    POST   /_sim/users/{id}/expire-access-token   {"expired": n}
    POST   /_sim/users/{id}/revoke-refresh-token  {"revoked": n}
    POST   /_sim/users/{id}/{kind}             create (partial body; the rest is generated)
    GET|PATCH|DELETE /_sim/users/{id}/{kind}/{key}   read, merge fields (updated_at bumped), delete
                                               → {"record", "webhook": {"type", "id", "trace_id"}
                                                  | null}; `?webhook=false` keeps quiet
                                               (kind: cycle|sleep|recovery|workout; a recovery's
                                               key is its cycle id)
    GET    /_sim/webhooks                      {"pending": n, "deliveries": [{"user_id", "id",
                                                "type", "trace_id", "status", "attempts",
                                                "last_status", "last_error"}]} newest first
    POST   /_sim/webhooks {"user_id", "id", "type"}   send one (202);  DELETE clears the log

In tests: `create_app(SimConfig(...))` runs in-process through `httpx.ASGITransport` (its state is
`app.state.sim`; `await app.state.sim.aclose()` afterwards), and
`server.serve_in_background(config)` runs it on a free port (`RunningSim.base_url`,
`.api_base_url`, `.oauth_base_url`, `.sim`); `sim.webhooks.wait_idle()` waits for deliveries.
"""

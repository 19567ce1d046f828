import json

from bench.webhooks import signed
from common.whoop.signature import verify


def test_bench_signature_is_accepted_by_the_product() -> None:
    hook = signed("secret", 42, "a0c2f5f4-3a61-4f56-9b7c-0d2d9b0f9c11", "sleep.updated")
    verify("secret", hook.timestamp, hook.body, hook.signature, tolerance_seconds=300)
    payload = json.loads(hook.body)
    assert payload["user_id"] == 42
    assert payload["type"] == "sleep.updated"
    assert hook.headers()["X-WHOOP-Signature"] == hook.signature


def test_every_webhook_gets_its_own_trace_id() -> None:
    first = json.loads(signed("s", 1, "x", "sleep.updated").body)
    second = json.loads(signed("s", 1, "x", "sleep.updated").body)
    assert first["trace_id"] != second["trace_id"]

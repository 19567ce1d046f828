"""Bearer tokens: HS256 with the shared secret, RS256/ES256 against a JWKS served over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from common.auth import AuthError, TokenVerifier, mint_token
from common.config import ConfigError, Settings
from services import cli

SECRET = "test-secret-that-is-long-enough-for-hs256"
JWKS_URL = "https://auth.example.test/.well-known/jwks.json"
USER = uuid.UUID("a57f70b4-d0a4-4aef-b721-a4b526f64869")


def _settings(**values: Any) -> Settings:
    return Settings(**values)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def test_accepts_token_it_minted() -> None:
    verifier = TokenVerifier(_settings(jwt_secret=SECRET))
    assert await verifier.verify_token(mint_token(USER, SECRET)) == USER


async def test_rejects_expired_token() -> None:
    verifier = TokenVerifier(_settings(jwt_secret=SECRET))
    with pytest.raises(AuthError, match="expired"):
        await verifier.verify_token(mint_token(USER, SECRET, timedelta(seconds=-5)))


async def test_rejects_token_that_expired_after_it_was_accepted() -> None:
    verifier = TokenVerifier(_settings(jwt_secret=SECRET))
    token = mint_token(USER, SECRET, timedelta(seconds=2))
    assert await verifier.verify_token(token) == USER
    assert await verifier.verify_token(token) == USER  # remembered
    expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
    await asyncio.sleep(max(0.0, expires_at - time.time()) + 0.05)
    with pytest.raises(AuthError, match="expired"):
        await verifier.verify_token(token)


async def test_remembered_token_does_not_vouch_for_a_tampered_one() -> None:
    verifier = TokenVerifier(_settings(jwt_secret=SECRET))
    token = mint_token(USER, SECRET)
    assert await verifier.verify_token(token) == USER
    header, _claims, signature = token.split(".")
    other = mint_token(uuid.uuid4(), SECRET).split(".")[1]
    with pytest.raises(AuthError, match="signature"):
        await verifier.verify_token(f"{header}.{other}.{signature}")


async def test_rejects_wrong_signature() -> None:
    verifier = TokenVerifier(_settings(jwt_secret=SECRET))
    with pytest.raises(AuthError, match="signature"):
        await verifier.verify_token(mint_token(USER, SECRET + "-other"))


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "Bearer x.y"])
async def test_rejects_malformed_token(token: str) -> None:
    verifier = TokenVerifier(_settings(jwt_secret=SECRET))
    with pytest.raises(AuthError):
        await verifier.verify_token(token)


async def test_rejects_wrong_audience_when_audience_set() -> None:
    verifier = TokenVerifier(_settings(jwt_secret=SECRET, jwt_audience="authenticated"))
    with pytest.raises(AuthError, match="audience"):
        await verifier.verify_token(mint_token(USER, SECRET, audience="someone-else"))
    with pytest.raises(AuthError):
        await verifier.verify_token(mint_token(USER, SECRET))
    assert await verifier.verify_token(mint_token(USER, SECRET, audience="authenticated")) == USER


async def test_ignores_audience_when_unset() -> None:
    verifier = TokenVerifier(_settings(jwt_secret=SECRET))
    assert await verifier.verify_token(mint_token(USER, SECRET, audience="authenticated")) == USER


async def test_rejects_wrong_issuer_when_issuer_set() -> None:
    verifier = TokenVerifier(_settings(jwt_secret=SECRET, jwt_issuer="https://issuer.test"))
    with pytest.raises(AuthError, match="issuer"):
        await verifier.verify_token(mint_token(USER, SECRET, issuer="https://other.test"))
    good = mint_token(USER, SECRET, issuer="https://issuer.test")
    assert await verifier.verify_token(good) == USER


async def test_rejects_subject_that_is_not_a_uuid() -> None:
    verifier = TokenVerifier(_settings(jwt_secret=SECRET))
    token = jwt.encode({"sub": "admin", "exp": 4102444800}, SECRET, algorithm="HS256")
    with pytest.raises(AuthError, match="subject"):
        await verifier.verify_token(token)


async def test_rejects_token_without_expiry() -> None:
    verifier = TokenVerifier(_settings(jwt_secret=SECRET))
    token = jwt.encode({"sub": str(USER)}, SECRET, algorithm="HS256")
    with pytest.raises(AuthError):
        await verifier.verify_token(token)


def test_refuses_to_start_without_secret_or_jwks() -> None:
    with pytest.raises(ConfigError, match="WHOOPSYNC_JWT_SECRET"):
        TokenVerifier(_settings(jwt_secret=None, jwt_jwks_url=None))


def _rsa_jwk(kid: str) -> tuple[Any, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return key, {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


def _asym_token(key: Any, kid: str, alg: str = "RS256", **claims: Any) -> str:
    payload = {"sub": str(USER), "exp": 4102444800, **claims}
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


@respx.mock
async def test_accepts_rs256_token_from_jwks(http: httpx.AsyncClient) -> None:
    key, jwk = _rsa_jwk("k1")
    route = respx.get(JWKS_URL).respond(json={"keys": [jwk]})
    verifier = TokenVerifier(_settings(jwt_jwks_url=JWKS_URL, jwt_audience="authenticated"), http)
    token = _asym_token(key, "k1", aud="authenticated")
    assert await verifier.verify_token(token) == USER
    assert await verifier.verify_token(token) == USER
    assert route.call_count == 1  # the key set is cached


@respx.mock
async def test_accepts_es256_token_from_jwks(http: httpx.AsyncClient) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": "e1", "alg": "ES256"}
    respx.get(JWKS_URL).respond(json={"keys": [jwk]})
    verifier = TokenVerifier(_settings(jwt_jwks_url=JWKS_URL), http)
    assert await verifier.verify_token(_asym_token(key, "e1", alg="ES256")) == USER


@respx.mock
async def test_rejects_rs256_token_signed_by_another_key(http: httpx.AsyncClient) -> None:
    _key, jwk = _rsa_jwk("k1")
    other, _ = _rsa_jwk("k1")
    respx.get(JWKS_URL).respond(json={"keys": [jwk]})
    verifier = TokenVerifier(_settings(jwt_jwks_url=JWKS_URL), http)
    with pytest.raises(AuthError, match="signature"):
        await verifier.verify_token(_asym_token(other, "k1"))


@respx.mock
async def test_rejects_hs256_token_when_jwks_configured(http: httpx.AsyncClient) -> None:
    _key, jwk = _rsa_jwk("k1")
    respx.get(JWKS_URL).respond(json={"keys": [jwk]})
    verifier = TokenVerifier(_settings(jwt_jwks_url=JWKS_URL, jwt_secret=SECRET), http)
    with pytest.raises(AuthError):
        await verifier.verify_token(mint_token(USER, SECRET))


@respx.mock
async def test_fetches_jwks_again_for_unknown_kid(http: httpx.AsyncClient) -> None:
    old_key, old_jwk = _rsa_jwk("old")
    new_key, new_jwk = _rsa_jwk("new")
    route = respx.get(JWKS_URL)
    route.side_effect = [
        httpx.Response(200, json={"keys": [old_jwk]}),
        httpx.Response(200, json={"keys": [old_jwk, new_jwk]}),
    ]
    verifier = TokenVerifier(_settings(jwt_jwks_url=JWKS_URL), http)
    assert await verifier.verify_token(_asym_token(old_key, "old")) == USER
    assert verifier.jwks is not None
    verifier.jwks.clock = lambda: time.monotonic() + 60  # past the minimum re-fetch interval
    assert await verifier.verify_token(_asym_token(new_key, "new")) == USER
    assert route.call_count == 2


@respx.mock
async def test_refuses_when_jwks_unreachable(http: httpx.AsyncClient) -> None:
    key, _jwk = _rsa_jwk("k1")
    respx.get(JWKS_URL).respond(503)
    verifier = TokenVerifier(_settings(jwt_jwks_url=JWKS_URL), http)
    with pytest.raises(AuthError, match="unavailable"):
        await verifier.verify_token(_asym_token(key, "k1"))


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _jwks_verifier(http: httpx.AsyncClient) -> tuple[TokenVerifier, Clock]:
    verifier = TokenVerifier(_settings(jwt_jwks_url=JWKS_URL), http)
    assert verifier.jwks is not None
    clock = Clock()
    verifier.jwks.clock = clock
    return verifier, clock


async def _background_fetch_done(verifier: TokenVerifier) -> None:
    assert verifier.jwks is not None
    if verifier.jwks._inflight is not None:
        await verifier.jwks._inflight


@respx.mock
async def test_keeps_serving_the_last_good_keys_when_a_refresh_fails(
    http: httpx.AsyncClient,
) -> None:
    key, jwk = _rsa_jwk("k1")
    route = respx.get(JWKS_URL)
    route.side_effect = [httpx.Response(200, json={"keys": [jwk]}), httpx.Response(503)]
    verifier, clock = _jwks_verifier(http)
    assert await verifier.verify_token(_asym_token(key, "k1")) == USER
    clock.now += 301  # past the keys' TTL; the identity provider is down

    assert await verifier.verify_token(_asym_token(key, "k1", iat=1)) == USER
    await _background_fetch_done(verifier)
    assert await verifier.verify_token(_asym_token(key, "k1", iat=2)) == USER
    assert route.call_count == 2  # one failed refresh, then back-off


@respx.mock
async def test_failed_fetches_back_off(http: httpx.AsyncClient) -> None:
    key, jwk = _rsa_jwk("k1")
    route = respx.get(JWKS_URL)
    route.side_effect = [
        httpx.Response(503),
        httpx.Response(503),
        httpx.Response(200, json={"keys": [jwk]}),
    ]
    verifier, clock = _jwks_verifier(http)
    for i in range(5):  # requests in a row do not each ask the endpoint again
        with pytest.raises(AuthError, match="unavailable"):
            await verifier.verify_token(_asym_token(key, "k1", iat=i))
    assert route.call_count == 1
    clock.now += 1.5  # past the first back-off
    with pytest.raises(AuthError, match="unavailable"):
        await verifier.verify_token(_asym_token(key, "k1"))
    clock.now += 1.5  # the second one is twice as long
    with pytest.raises(AuthError, match="unavailable"):
        await verifier.verify_token(_asym_token(key, "k1"))
    assert route.call_count == 2
    clock.now += 1.0
    assert await verifier.verify_token(_asym_token(key, "k1")) == USER
    assert route.call_count == 3


@respx.mock
async def test_an_unknown_kid_fetches_at_most_once_a_minute(http: httpx.AsyncClient) -> None:
    key, jwk = _rsa_jwk("k1")
    stranger, _ = _rsa_jwk("zz")
    route = respx.get(JWKS_URL).respond(json={"keys": [jwk]})
    verifier, clock = _jwks_verifier(http)
    assert await verifier.verify_token(_asym_token(key, "k1")) == USER
    clock.now += 15
    for i in range(3):
        with pytest.raises(AuthError, match="unknown key"):
            await verifier.verify_token(_asym_token(stranger, "zz", iat=i))
    assert route.call_count == 2  # one fetch for the new kid
    clock.now += 30
    with pytest.raises(AuthError, match="unknown key"):
        await verifier.verify_token(_asym_token(stranger, "zz"))
    assert route.call_count == 2  # not again within the minute
    clock.now += 31
    with pytest.raises(AuthError, match="unknown key"):
        await verifier.verify_token(_asym_token(stranger, "zz"))
    assert route.call_count == 3


@respx.mock
async def test_requests_with_a_rotated_kid_share_one_fetch(http: httpx.AsyncClient) -> None:
    old_key, old_jwk = _rsa_jwk("old")
    new_key, new_jwk = _rsa_jwk("new")
    route = respx.get(JWKS_URL)
    route.side_effect = [
        httpx.Response(200, json={"keys": [old_jwk]}),
        httpx.Response(200, json={"keys": [old_jwk, new_jwk]}),
    ]
    verifier, clock = _jwks_verifier(http)
    assert await verifier.verify_token(_asym_token(old_key, "old")) == USER
    clock.now += 15

    tokens = [_asym_token(new_key, "new", iat=i) for i in range(5)]
    assert await asyncio.gather(*(verifier.verify_token(t) for t in tokens)) == [USER] * 5
    assert route.call_count == 2


@respx.mock
async def test_a_hanging_jwks_endpoint_delays_no_request_with_a_known_key(
    http: httpx.AsyncClient,
) -> None:
    key, jwk = _rsa_jwk("k1")
    hanging, released = asyncio.Event(), asyncio.Event()
    entered = []

    async def serve(request: httpx.Request) -> httpx.Response:
        entered.append(request)
        if len(entered) > 1:  # every fetch after the first hangs until released
            hanging.set()
            await released.wait()
        return httpx.Response(200, json={"keys": [jwk]})

    route = respx.get(JWKS_URL).mock(side_effect=serve)
    verifier, clock = _jwks_verifier(http)
    assert await verifier.verify_token(_asym_token(key, "k1")) == USER
    clock.now += 301  # past the TTL: the refresh hangs until released, which no request awaits
    assert await asyncio.wait_for(verifier.verify_token(_asym_token(key, "k1", iat=0)), 5) == USER
    await asyncio.wait_for(hanging.wait(), 5)

    for i in range(1, 5):
        token = _asym_token(key, "k1", iat=i)
        assert await asyncio.wait_for(verifier.verify_token(token), 5) == USER
    assert len(entered) == 2  # the one hanging refresh, not one per request
    released.set()
    await _background_fetch_done(verifier)
    assert route.call_count == 2


@respx.mock
async def test_a_token_whose_algorithm_is_not_its_keys_is_refused(
    http: httpx.AsyncClient,
) -> None:
    _key, jwk = _rsa_jwk("k1")
    respx.get(JWKS_URL).respond(json={"keys": [jwk]})
    verifier, _clock = _jwks_verifier(http)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(AuthError, match="algorithm"):  # ES256 header, an RSA kid
        await verifier.verify_token(_asym_token(ec_key, "k1", alg="ES256"))


async def test_dev_token_prints_a_token_the_api_accepts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WHOOPSYNC_JWT_SECRET", SECRET)
    monkeypatch.setenv("WHOOPSYNC_JWT_AUDIENCE", "authenticated")
    assert cli.main(["dev-token", "--user-id", str(USER)]) == 0
    token = capsys.readouterr().out.strip()
    verifier = TokenVerifier(_settings(jwt_secret=SECRET, jwt_audience="authenticated"))
    assert await verifier.verify_token(token) == USER


def test_dev_token_refuses_without_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WHOOPSYNC_JWT_SECRET", raising=False)
    monkeypatch.chdir("/")  # no .env file to read a secret from
    assert cli.main(["dev-token", "--user-id", str(USER)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "whoop-sync: WHOOPSYNC_JWT_SECRET is required but not set"

"""Linking a WHOOP account (SPEC §3.2) on both backends: the POST callback proves whose state it
is, the GET callback never moves an account another user holds, a move takes the cache along, and
the open states of a user are capped."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import respx
from fastapi import FastAPI

from common.db.repositories import (
    ConnectionRepository,
    OAuthStateRepository,
    RecordRepository,
    SyncLogRepository,
)
from common.types import ConnectionStatus, DataType
from services.api.routes.whoop import OPEN_STATES_PER_USER
from tests.services.api.conftest import (
    CALLBACK,
    auth,
    connect_user,
    each_backend,
    mark_synced,
    mock_whoop_account,
    objects,
    seed,
    state_for,
    state_of,
)

settings = each_backend()


async def seed_every_type(app: FastAPI, user: uuid.UUID, whoop_user: int, count: int) -> None:
    """`count` records of each type in `user`'s cache, each type synced a minute ago."""
    for data_type in DataType:
        await seed(app, user, data_type, objects(data_type, whoop_user, count))
        await mark_synced(app, user, data_type, timedelta(minutes=1))


async def counts(app: FastAPI, user: uuid.UUID) -> dict[DataType, int]:
    """How many records of each type the cache holds for `user`."""
    async with state_of(app).session_factory() as session:
        return {t: await RecordRepository(session, t).count(user) for t in DataType}


async def test_post_callback_refuses_a_state_of_another_user(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    starter, victim = uuid.uuid4(), uuid.uuid4()
    exchange = mock_whoop_account(whoop, 880001)
    state = await state_for(client, starter)  # the starter sends its authorization link on

    response = await client.post(
        CALLBACK, json={"code": "c0de", "state": state}, headers=auth(victim)
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "state_mismatch"
    assert exchange.call_count == 0  # the code is never spent
    async with state_of(app).session_factory() as session:
        assert await ConnectionRepository(session).by_whoop_user(880001) is None
        assert await ConnectionRepository(session).get(starter) is None
        assert await ConnectionRepository(session).get(victim) is None
    again = await client.post(
        CALLBACK, json={"code": "c0de", "state": state}, headers=auth(starter)
    )
    assert again.status_code == 400  # and the state is spent
    assert again.json()["error"]["code"] == "invalid_state"


async def test_post_callback_links_the_bearers_own_state(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    user = uuid.uuid4()
    mock_whoop_account(whoop, 880002)
    state = await state_for(client, user)

    response = await client.post(
        CALLBACK, json={"code": "c0de", "state": state}, headers=auth(user)
    )

    assert response.status_code == 200
    assert response.json() == {"status": "connected", "whoop_user_id": 880002}
    connection = await client.get("/api/v1/whoop/connection", headers=auth(user))
    assert connection.json()["status"] == "active"


async def test_get_callback_never_moves_an_account_another_user_holds(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    holder, whoop_user = await connect_user(app)
    await seed_every_type(app, holder, whoop_user, 2)
    other = uuid.uuid4()
    mock_whoop_account(whoop, whoop_user)
    state = await state_for(client, other)

    response = await client.get(CALLBACK, params={"code": "c0de", "state": state})

    assert response.status_code == 409
    assert response.json()["status"] == "error"
    assert response.json()["error"]["code"] == "whoop_account_linked"
    async with state_of(app).session_factory() as session:
        kept = await ConnectionRepository(session).get(holder)
        assert await ConnectionRepository(session).get(other) is None
    assert kept is not None
    assert kept.status == ConnectionStatus.ACTIVE
    assert kept.access_token_enc is not None
    assert state_of(app).cipher.decrypt(kept.access_token_enc) == f"access-{holder}"
    assert await counts(app, holder) == dict.fromkeys(DataType, 2)
    assert await counts(app, other) == dict.fromkeys(DataType, 0)


async def test_post_callback_moves_the_account_with_its_cache(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    old, whoop_user = await connect_user(app)
    await seed_every_type(app, old, whoop_user, 2)
    new = uuid.uuid4()
    mock_whoop_account(whoop, whoop_user)
    state = await state_for(client, new)

    response = await client.post(CALLBACK, json={"code": "c0de", "state": state}, headers=auth(new))

    assert response.status_code == 200
    assert response.json() == {"status": "connected", "whoop_user_id": whoop_user}
    gone = await client.get("/api/v1/whoop/connection", headers=auth(old))
    assert gone.status_code == 404  # the old user's connection ended
    assert (await client.get("/api/v1/smart/sleep", headers=auth(old))).status_code == 404
    assert await counts(app, old) == dict.fromkeys(DataType, 0)
    assert await counts(app, new) == dict.fromkeys(DataType, 2)
    for data_type in DataType:  # served from the moved cache, as fresh as it was
        read = await client.get(f"/api/v1/smart/{data_type}", headers=auth(new))
        assert read.status_code == 200
        assert read.json()["metadata"]["source"] == "cache"
        assert len(read.json()["data"]) == 2
    async with state_of(app).session_factory() as session:
        assert set(await SyncLogRepository(session).for_user(new)) == set(DataType)
        assert await SyncLogRepository(session).for_user(old) == {}
        assert await SyncLogRepository(session).history(old) == []


async def test_relinking_an_account_whose_holder_disconnected_brings_its_cache(
    app: FastAPI, client: httpx.AsyncClient, whoop: respx.MockRouter
) -> None:
    old, whoop_user = await connect_user(app)
    await seed_every_type(app, old, whoop_user, 3)
    async with state_of(app).session_factory() as session:
        await ConnectionRepository(session).forget_tokens(old)
        await session.commit()
    new = uuid.uuid4()
    mock_whoop_account(whoop, whoop_user)
    state = await state_for(client, new)

    response = await client.get(CALLBACK, params={"code": "c0de", "state": state})

    assert response.status_code == 200
    assert await counts(app, new) == dict.fromkeys(DataType, 3)
    assert await counts(app, old) == dict.fromkeys(DataType, 0)
    read = await client.get("/api/v1/smart/cycle", headers=auth(new))
    assert len(read.json()["data"]) == 3


async def test_open_states_of_a_user_are_capped(app: FastAPI, client: httpx.AsyncClient) -> None:
    user = uuid.uuid4()
    states = [await state_for(client, user) for _ in range(OPEN_STATES_PER_USER + 3)]

    async with state_of(app).session_factory() as session:
        assert await OAuthStateRepository(session).open_count(user) == OPEN_STATES_PER_USER
        oldest = await OAuthStateRepository(session).consume(states[0])
        newest = await OAuthStateRepository(session).consume(states[-1])
        await session.rollback()
    assert oldest is None  # dropped to make room
    assert newest == user


async def test_post_callback_needs_a_well_formed_body(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user = uuid.uuid4()
    state = await state_for(client, user)

    for body in ({"state": state}, {"code": "", "state": state}, {"code": 1, "state": [state]}):
        response = await client.post(CALLBACK, json=body, headers=auth(user))
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "validation_error"
    for raw in (b"\xff", b'{"code": "c", "state": "\xff"}', b"{not json"):
        headers = auth(user) | {"content-type": "application/json"}
        response = await client.post(CALLBACK, content=raw, headers=headers)
        assert response.status_code == 422, raw
        assert response.json()["error"]["code"] == "validation_error"
    async with state_of(app).session_factory() as session:
        assert await OAuthStateRepository(session).open_count(user) == 1  # nothing spent


async def test_openapi_documents_both_callbacks(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert {"200", "400", "409", "422", "502"} <= set(paths[CALLBACK]["get"]["responses"])
    post = paths[CALLBACK]["post"]
    assert {"200", "400", "401", "403", "409", "422", "502"} <= set(post["responses"])
    assert post["requestBody"]["required"] is True
    assert "security" not in paths[CALLBACK]["get"]
    assert post["security"] == [{"HTTPBearer": []}]

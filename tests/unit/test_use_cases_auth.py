from __future__ import annotations

from datetime import timedelta

import pytest

from chat4all.domain.errors import Conflict, InvalidInput, NotAuthenticated, NotFound

PASSWORD = "correct horse battery"


async def test_registered_user_can_log_in_and_is_known_by_the_token(hub):
    alice = await hub.user("alice")
    issued = await hub.authenticate.execute("alice", PASSWORD)
    assert issued.user_id == alice.id
    assert issued.expires_in == hub.token_lifetime.total_seconds()
    assert await hub.resolve_token.execute(issued.access_token) == alice


async def test_the_password_is_not_stored_as_given(hub):
    alice = await hub.user("alice")
    assert hub.store.users[alice.id].password_hash != PASSWORD


async def test_username_is_unique(hub):
    await hub.user("alice")
    with pytest.raises(Conflict) as raised:
        await hub.register.execute("alice", "another password")
    assert raised.value.code == "username_taken"
    assert len(hub.store.users) == 1


@pytest.mark.parametrize("username, password", [("al", PASSWORD), ("alice", "short"), ("a/b", PASSWORD)])
async def test_invalid_registration_stores_nothing(hub, username, password):
    with pytest.raises(InvalidInput):
        await hub.register.execute(username, password)
    assert hub.store.users == {}


async def test_wrong_password_and_unknown_user_get_the_same_answer(hub):
    await hub.user("alice")
    with pytest.raises(NotAuthenticated) as wrong_password:
        await hub.authenticate.execute("alice", "not the password")
    with pytest.raises(NotAuthenticated) as unknown_user:
        await hub.authenticate.execute("mallory", PASSWORD)
    assert wrong_password.value.code == unknown_user.value.code == "invalid_credentials"
    assert wrong_password.value.detail == unknown_user.value.detail
    assert hub.store.tokens == {}


async def test_token_is_valid_until_just_before_it_expires(hub):
    alice = await hub.user("alice")
    issued = await hub.authenticate.execute("alice", PASSWORD)
    hub.clock.advance(hub.token_lifetime - timedelta(microseconds=1))
    assert await hub.resolve_token.execute(issued.access_token) == alice
    hub.clock.advance(timedelta(microseconds=1))
    with pytest.raises(NotAuthenticated) as raised:
        await hub.resolve_token.execute(issued.access_token)
    assert raised.value.code == "invalid_token"
    hub.clock.advance(timedelta(days=1))
    with pytest.raises(NotAuthenticated):
        await hub.resolve_token.execute(issued.access_token)


async def test_unknown_token_is_rejected(hub):
    with pytest.raises(NotAuthenticated) as raised:
        await hub.resolve_token.execute("made-up")
    assert raised.value.code == "invalid_token"


async def test_logout_revokes_only_that_token(hub):
    alice = await hub.user("alice")
    phone = await hub.authenticate.execute("alice", PASSWORD)
    laptop = await hub.authenticate.execute("alice", PASSWORD)
    assert phone.access_token != laptop.access_token
    await hub.logout.execute(phone.access_token)
    with pytest.raises(NotAuthenticated):
        await hub.resolve_token.execute(phone.access_token)
    assert await hub.resolve_token.execute(laptop.access_token) == alice


async def test_logging_out_twice_or_with_an_unknown_token_is_harmless(hub):
    await hub.user("alice")
    issued = await hub.authenticate.execute("alice", PASSWORD)
    await hub.logout.execute(issued.access_token)
    revoked_at = hub.store.tokens[hub.tokens.digest(issued.access_token)].revoked_at
    hub.clock.advance()
    await hub.logout.execute(issued.access_token)
    await hub.logout.execute("made-up")
    assert hub.store.tokens[hub.tokens.digest(issued.access_token)].revoked_at == revoked_at
    assert len(hub.store.tokens) == 1


async def test_tokens_are_stored_only_as_digests(hub):
    await hub.user("alice")
    issued = await hub.authenticate.execute("alice", PASSWORD)
    assert issued.access_token not in hub.store.tokens
    assert hub.tokens.digest(issued.access_token) in hub.store.tokens


async def test_find_users_by_username_and_by_id(hub):
    carol, alice, bob = await hub.users("carol", "alice", "bob")
    assert [user.username for user in await hub.find_users.execute()] == ["alice", "bob", "carol"]
    assert await hub.find_users.execute(username="bob") == [bob]
    assert [user.username for user in await hub.find_users.execute(limit=1, offset=1)] == ["bob"]
    assert await hub.find_users.get(alice.id) == alice
    with pytest.raises(NotFound):
        await hub.find_users.get(hub.ids.new_id())


async def test_find_users_caps_the_page_at_100(hub):
    for number in range(105):
        await hub.user(f"user{number:03}")
    assert len(await hub.find_users.execute(limit=1000)) == 100

"""`chat4all conversations` and `chat4all send`."""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from chat4all.client.api import Hub
from chat4all.client.credentials import Credentials, load_credentials
from chat4all.client.errors import ClientError
from chat4all.client.output import Output
from chat4all.client.paths import Directories

DEFAULT_CHANNELS = ["all"]
SHOWN_MEMBERS = 5  # of a group's, in the conversation list


def conversation_id_for(hub: Hub, me: Credentials, target: str) -> str:
    """`target` is a conversation id, or a username: then the private conversation with that user,
    started if need be (the server gives back the same one for the same pair)."""
    try:
        return str(uuid.UUID(target))
    except ValueError:
        pass
    users = hub.call("GET", "/v1/users", params={"username": target})["users"]
    if not users:
        raise ClientError(f"no user named {target!r} (and not a conversation id)")
    members = [me.user_id, users[0]["user_id"]]
    return hub.call("POST", "/v1/conversations", json={"type": "private", "members": members})["conversation_id"]


def send_message(
    hub: Hub, me: Credentials, conversation_id: str, payload: dict[str, Any], channels: list[str], message_id: str
) -> dict[str, Any]:
    """Sends once per `message_id`: sending again with the same id is safe (the server keeps one)."""
    body = {
        "message_id": message_id,
        "conversation_id": conversation_id,
        "from": me.user_id,
        "channels": channels,
        "payload": payload,
    }
    accepted = hub.call("POST", "/v1/messages", json=body)
    return {"message_id": accepted["message_id"], "conversation_id": conversation_id, "status": accepted["status"]}


def send(args: argparse.Namespace, output: Output, directories: Directories) -> None:
    me = load_credentials(directories)
    with Hub(me.url, me.access_token) as hub:
        conversation_id = conversation_id_for(hub, me, args.conversation)
        payload = {"type": "text", "text": args.text}
        sent = send_message(hub, me, conversation_id, payload, args.channels or DEFAULT_CHANNELS, str(uuid.uuid4()))
    output.result(sent, f"message {sent['message_id']} {sent['status']} in conversation {conversation_id}")


def conversations(args: argparse.Namespace, output: Output, directories: Directories) -> None:
    me = load_credentials(directories)
    with Hub(me.url, me.access_token) as hub:
        page = hub.call("GET", "/v1/conversations", params={"limit": args.limit, "offset": args.offset})
        names = usernames(hub)
    for conversation in page["conversations"]:
        title = title_of(conversation, me, names)
        when = conversation["last_activity_at"][:19].replace("T", " ")
        text = f"{conversation['conversation_id']}  {conversation['type']:<7}  {when}  {title}"
        output.result({**conversation, "title": title}, text)
    if not page["conversations"]:
        output.step("no conversations" + (" here; there are fewer" if args.offset else " yet"))
    elif page["total"] > args.offset + len(page["conversations"]):
        output.step(f"{page['total']} conversations in all; see more with --offset")


def usernames(hub: Hub) -> dict[str, str]:
    """Names for member ids, from the first page of the user directory (ids stand in for the rest)."""
    return {user["user_id"]: user["username"] for user in hub.call("GET", "/v1/users", params={"limit": 100})["users"]}


def title_of(conversation: dict[str, Any], me: Credentials, names: dict[str, str]) -> str:
    name = (conversation.get("metadata") or {}).get("name")
    others = [names.get(member, member) for member in conversation["members"] if member != me.user_id]
    if conversation["type"] == "private":
        return f"with {', '.join(others) or me.username}"
    shown = [me.username, *others[:SHOWN_MEMBERS]]
    more = f" and {len(others) - SHOWN_MEMBERS} more" if len(others) > SHOWN_MEMBERS else ""
    return f"{name or 'group'} ({', '.join(shown)}{more})"

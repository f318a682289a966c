"""Wire formats of the HTTP API (separate from domain classes on purpose)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import Meta, Struct, field

Username = Annotated[str, Meta(min_length=1, max_length=64, examples=["alice"])]
Password = Annotated[str, Meta(min_length=1, max_length=256, examples=["correct horse battery staple"])]
UserId = Annotated[UUID, Meta(examples=["5f0c3a8e-2b7e-4d8f-9a55-0a1e6c1f8b11"])]
Channel = Annotated[str, Meta(max_length=32, examples=["whatsapp"])]


class ErrorBody(Struct, omit_defaults=True):
    detail: str
    error_code: str
    field_errors: dict[str, list[str]] | None = None
    # cursor_expired: the seq to resume from once the client has reloaded its state over REST.
    resume_from: int | None = None


class Readiness(Struct):
    status: Annotated[str, Meta(examples=["ready"])]
    checks: Annotated[dict[str, str], Meta(examples=[{"database": "ok", "storage": "ok"}])]


class TokenRequest(Struct, forbid_unknown_fields=True):
    username: Username
    password: Password


class TokenResponse(Struct):
    access_token: str
    expires_in: int
    token_type: str = "bearer"


class UserOut(Struct):
    user_id: UUID
    username: str
    created_at: datetime


class UserList(Struct):
    users: list[UserOut]


class ConversationMetadataIn(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(max_length=128, examples=["Project Falcon"])] | None = None
    description: Annotated[str, Meta(max_length=1024)] | None = None


class ConversationCreate(Struct, forbid_unknown_fields=True):
    type: Literal["private", "group"]
    members: Annotated[list[UserId], Meta(min_length=1, max_length=100)]
    metadata: ConversationMetadataIn | None = None


class ConversationMetadataOut(Struct):
    name: str | None
    description: str | None


class ConversationOut(Struct):
    conversation_id: UUID
    type: str
    members: list[UUID]
    metadata: ConversationMetadataOut
    created_at: datetime
    last_activity_at: datetime


class TextPayloadIn(Struct, tag_field="type", tag="text", forbid_unknown_fields=True):
    text: Annotated[str, Meta(max_length=4096, examples=["Olá! The report is attached."])]


class FilePayloadIn(Struct, tag_field="type", tag="file", forbid_unknown_fields=True):
    file_id: UUID


class MessageCreate(Struct, forbid_unknown_fields=True):
    message_id: Annotated[UUID, Meta(description="Client-chosen id; re-sending the same message with it is safe.")]
    conversation_id: UUID
    from_: UserId = field(name="from")
    channels: Annotated[list[Channel], Meta(min_length=1, max_length=8, examples=[["whatsapp", "instagram"], ["all"]])]
    payload: TextPayloadIn | FilePayloadIn
    to: UUID | None = None
    priority: Literal["low", "normal", "high"] = "normal"
    failover: Annotated[
        list[Channel],
        Meta(
            max_length=8,
            description="Channels tried in order for the recipients `channels` (one channel) failed to reach",
            examples=[["instagram"]],
        ),
    ] = msgspec.field(default_factory=list)


class MessageAccepted(Struct):
    message_id: UUID
    status: str = "accepted"


class PayloadOut(Struct, omit_defaults=True):
    type: str
    text: str | None = None
    file_id: UUID | None = None
    filename: str | None = None
    file_size: int | None = None
    content_type: str | None = None
    checksum: str | None = None


class StatusEntry(Struct):
    status: str
    channel: str | None
    at: datetime
    detail: str | None


class MessageOut(Struct, rename={"from_": "from"}):
    message_id: UUID
    conversation_id: UUID
    from_: UUID
    to: UUID | None
    channels: list[str]
    payload: PayloadOut
    priority: str
    status: str
    created_at: datetime
    deliveries: dict[str, str]
    origin: Annotated[
        str | None, Meta(description="The channel a reply came in from (see /v1/channels/{channel}/inbound); null: the API")
    ] = None


class ReceiptOut(Struct):
    recipient_id: UUID
    delivered_at: datetime | None
    read_at: datetime | None
    provider_message_ids: Annotated[
        dict[str, str], Meta(description="By channel: the id its provider gave the copy (what replies point at)")
    ] = msgspec.field(default_factory=dict)


class AttemptOut(Struct):
    recipient_id: UUID
    channel: str
    outcome: Literal["delivered", "failed"]
    at: datetime
    error: str | None


class MessageDetail(MessageOut, rename={"from_": "from"}):
    history: list[StatusEntry] = msgspec.field(default_factory=list)
    failover: list[str] = msgspec.field(default_factory=list)
    attempts: Annotated[
        list[AttemptOut], Meta(description="Messages sent with failover: each channel's outcome for each recipient, in order")
    ] = msgspec.field(default_factory=list)
    receipts: Annotated[
        list[ReceiptOut], Meta(description="One per recipient: when a channel delivered it to them, when they read it")
    ] = msgspec.field(default_factory=list)
    read_by_all_at: datetime | None = None


class MessagePage(Struct):
    conversation_id: UUID
    messages: list[MessageOut]
    total: Annotated[int, Meta(description="Messages in the conversation (its counter: no rows are counted)")]
    limit: int
    offset: Annotated[int, Meta(description="How many messages come before this page")]
    before: Annotated[str | None, Meta(description="Pass as `before` for the page of older messages (null: none)")] = None
    after: Annotated[str | None, Meta(description="Pass as `after` for the page of newer messages (null: none yet)")] = None


class ConversationSummaryOut(ConversationOut):
    unread_count: Annotated[int, Meta(description="The caller's messages here they have not read")]
    last_message: MessageOut | None


class ConversationPage(Struct):
    conversations: list[ConversationSummaryOut]
    total: int
    limit: int
    offset: int


class ReadRequest(Struct, forbid_unknown_fields=True):
    up_to: Annotated[UUID, Meta(description="A message of this conversation: it and everything before it is read")]


class ReadOut(Struct):
    conversation_id: UUID
    up_to: UUID | None
    position: int
    read_at: datetime | None
    unread_count: int
    advanced: Annotated[bool, Meta(description="false: the horizon was already there or past it; nothing changed")]


class EventOut(Struct):
    seq: int
    type: Annotated[str, Meta(examples=["message.created"])]
    at: datetime
    data: dict[str, Any]


class EventPage(Struct):
    events: list[EventOut]
    next: Annotated[int, Meta(description="The `since` of the next request")]


class FileInitiate(Struct, forbid_unknown_fields=True):
    filename: Annotated[str, Meta(max_length=1024, examples=["report.pdf"])]
    file_size: Annotated[int, Meta(examples=[104857600])]
    content_type: Annotated[str, Meta(max_length=200, examples=["application/pdf"])] | None = None


class FileInitiated(Struct):
    file_id: UUID
    chunk_size: int
    total_chunks: int
    upload_url: str
    expires_at: datetime


class ChunkReceived(Struct):
    file_id: UUID
    chunk_id: int
    received_chunks: int
    total_chunks: int
    next_upload_url: str | None
    status: str = "uploaded"


class FileComplete(Struct, forbid_unknown_fields=True):
    file_id: UUID
    checksum: Annotated[str, Meta(max_length=128, description="Hex SHA-256 of the whole file")]


class FileCompleted(Struct):
    file_id: UUID
    status: str
    filename: str
    file_size: int
    checksum: str


class FileOut(Struct):
    file_id: UUID
    filename: str
    file_size: int
    content_type: str
    status: str
    chunk_size: int
    total_chunks: int
    received_chunks: int
    missing_chunks: list[int]
    checksum: str | None
    created_at: datetime
    expires_at: datetime
    completed_at: datetime | None
    download_url: str | None
    next_upload_url: str | None


ChannelHandlesIn = Annotated[
    dict[Annotated[str, Meta(max_length=32)], Annotated[str, Meta(max_length=64)]],
    Meta(examples=[{"whatsapp": "+5511999990000", "instagram": "@bob"}]),
]


class ChannelHandlesOut(Struct):
    handles: Annotated[dict[str, str], Meta(examples=[{"whatsapp": "+5511999990000", "instagram": "@bob"}])]


class InboundReceived(Struct, omit_defaults=True):
    status: Annotated[str, Meta(description="`accepted` (200, also for a reply sent before) or `unmatched` (202)")]
    message_id: UUID | None = None
    duplicate: bool = False
    reason: Annotated[str | None, Meta(description="unknown_handle, unknown_context or not_a_member")] = None

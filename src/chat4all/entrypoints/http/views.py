"""Domain objects to wire formats."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from uuid import UUID

import msgspec

from chat4all.application.conversations import ConversationSummary
from chat4all.application.history import HistoryPage
from chat4all.application.reading import ReadOutcome
from chat4all.application.uploads import UploadView
from chat4all.domain.conversations import Conversation
from chat4all.domain.failover import DeliveryAttempt
from chat4all.domain.messages import FilePayload, Message
from chat4all.domain.receipts import Receipt
from chat4all.domain.users import User
from chat4all.entrypoints.http import schemas


def user_out(user: User) -> schemas.UserOut:
    return schemas.UserOut(user_id=user.id, username=user.username, created_at=user.created_at)


def conversation_out(conversation: Conversation) -> schemas.ConversationOut:
    return schemas.ConversationOut(
        conversation_id=conversation.id,
        type=conversation.type.value,
        members=list(conversation.members),
        metadata=schemas.ConversationMetadataOut(conversation.metadata.name, conversation.metadata.description),
        created_at=conversation.created_at,
        last_activity_at=conversation.last_activity_at,
    )


def _payload_out(message: Message) -> schemas.PayloadOut:
    payload = message.payload
    if isinstance(payload, FilePayload):
        return schemas.PayloadOut(
            type="file",
            file_id=payload.file_id,
            filename=payload.filename,
            file_size=payload.file_size,
            content_type=payload.content_type,
            checksum=payload.checksum,
        )
    return schemas.PayloadOut(type="text", text=payload.text)


def _fields(message: Message) -> dict:
    return dict(
        message_id=message.id,
        conversation_id=message.conversation_id,
        from_=message.sender_id,
        to=message.recipient_id,
        channels=list(message.channels),
        payload=_payload_out(message),
        priority=message.priority.value,
        status=message.status.value,
        created_at=message.created_at,
        deliveries={channel: status.value for channel, status in message.deliveries.items()},
        origin=message.origin,
    )


def message_out(message: Message) -> schemas.MessageOut:
    return schemas.MessageOut(**_fields(message))


def message_detail(
    message: Message,
    receipts: Sequence[Receipt] = (),
    provider_ids: Mapping[tuple[str, UUID], str] | None = None,
    attempts: Sequence[DeliveryAttempt] = (),
) -> schemas.MessageDetail:
    history = [schemas.StatusEntry(e.status, e.channel, e.at, e.detail) for e in message.history]
    ids = provider_ids or {}

    def copies(recipient_id: UUID) -> dict[str, str]:
        return {channel: ids[channel, recipient_id] for channel in message.chain if (channel, recipient_id) in ids}

    return schemas.MessageDetail(
        **_fields(message),
        history=history,
        receipts=[schemas.ReceiptOut(r.recipient_id, r.delivered_at, r.read_at, copies(r.recipient_id)) for r in receipts],
        read_by_all_at=message.read_by_all_at,
        failover=list(message.failover),
        attempts=[
            schemas.AttemptOut(a.recipient_id, a.channel, "delivered" if a.delivered else "failed", a.at, a.error)
            for a in attempts
        ],
    )


def conversation_summary_out(summary: ConversationSummary) -> schemas.ConversationSummaryOut:
    last = summary.last_message
    return schemas.ConversationSummaryOut(
        **msgspec.structs.asdict(conversation_out(summary.conversation)),
        unread_count=summary.unread_count,
        last_message=None if last is None else message_out(last),
    )


def history_page(conversation_id: UUID, page: HistoryPage, limit: int) -> schemas.MessagePage:
    return schemas.MessagePage(
        conversation_id,
        [message_out(message) for message in page.messages],
        page.total,
        limit,
        page.offset,
        before=None if page.links.before is None else page.links.before.encode(),
        after=None if page.links.after is None else page.links.after.encode(),
    )


def read_out(outcome: ReadOutcome) -> schemas.ReadOut:
    horizon = outcome.horizon
    return schemas.ReadOut(
        horizon.conversation_id, horizon.message_id, horizon.position, horizon.read_at, horizon.unread_count, outcome.advanced
    )


def file_out(view: UploadView, download_url: str | None, next_upload_url: str | None) -> schemas.FileOut:
    upload = view.upload
    return schemas.FileOut(
        file_id=upload.id,
        filename=upload.filename,
        file_size=upload.file_size,
        content_type=upload.content_type,
        status=upload.status.value,
        chunk_size=upload.chunk_size,
        total_chunks=upload.total_chunks,
        received_chunks=len(upload.received_chunks),
        missing_chunks=view.missing_chunks,
        checksum=upload.checksum,
        created_at=upload.created_at,
        expires_at=upload.expires_at,
        completed_at=upload.completed_at,
        download_url=download_url,
        next_upload_url=next_upload_url,
    )

"""The ids the mock providers give the copies they send, as WhatsApp (`wamid.…`) and Instagram
(`mid.…`) do. A reply on the channel points at the copy it answers by this id.

Derived from (channel, message, recipient), so a copy sent again after a redelivery has the id
it had; the send ledger stores it, for the hub to find which message an id belongs to.
"""

from __future__ import annotations

import base64
import hashlib
from uuid import UUID

PREFIXES = {"whatsapp": "wamid.", "instagram": "mid."}


def provider_message_id(channel: str, message_id: UUID, recipient_id: UUID) -> str:
    digest = hashlib.sha256(f"{channel}:{message_id}:{recipient_id}".encode()).digest()
    return PREFIXES.get(channel, f"{channel}.") + base64.urlsafe_b64encode(digest[:24]).decode()

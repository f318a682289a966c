"""Names of the event streams between the API, the router and the channel connectors."""

MESSAGE_PROCESSING = "message_processing"
# Deliveries that failed for good (retry budget spent, or a permanent error), for inspection and replay.
DEAD_LETTERS = "delivery_dead_letters"


def channel_topic(channel: str) -> str:
    return f"{channel}_outgoing"

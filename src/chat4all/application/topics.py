"""Names of the event streams between the API, the router and the channel connectors."""

MESSAGE_PROCESSING = "message_processing"


def channel_topic(channel: str) -> str:
    return f"{channel}_outgoing"

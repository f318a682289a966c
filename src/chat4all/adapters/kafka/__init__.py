"""Kafka adapters for the distributed profile: the event publisher, topic administration, and the
workers' consumer (`consumer`: the Faust app; `lanes`: batches by conversation, acks and retries)."""

from chat4all.adapters.kafka.admin import check_broker, commit_end_offsets, ensure_topics
from chat4all.adapters.kafka.publisher import KafkaEventPublisher, decode_event, encode_event

__all__ = ["KafkaEventPublisher", "check_broker", "commit_end_offsets", "decode_event", "encode_event", "ensure_topics"]

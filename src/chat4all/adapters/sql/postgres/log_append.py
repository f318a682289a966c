"""The part of a write statement that appends events to users' logs and wakes their live feeds.

Both statements that write events in one round trip (accepting messages, recording channel
outcomes) end with the same steps: count each user's new events on their counter, number the
events after the counter's old value, insert them, and notify the users' ids in chunks.
"""

from __future__ import annotations


def append_to_logs(source: str, after: str, type_sql: str, at_sql: str, data_sql: str) -> str:
    """CTEs `counter`, `last_seq`, `logged` and `woken` over `source` (rows with `user_id` and
    `position`); `after` is a CTE the counters wait for, so they are taken in one order."""
    return f"""), counter AS (
    INSERT INTO user_event_counters AS counter (user_id, last_seq)
    SELECT user_id, count(*) FROM {source}
    WHERE (SELECT count(*) FROM {after}) >= 0
    GROUP BY user_id ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE SET last_seq = counter.last_seq + excluded.last_seq
    RETURNING user_id, last_seq
), last_seq AS MATERIALIZED (
    SELECT jsonb_object_agg(user_id, last_seq) AS of_user FROM counter
), logged AS (
    INSERT INTO user_events (user_id, seq, type, at, data)
    SELECT {source}.user_id,
           (last_seq.of_user ->> {source}.user_id::text)::bigint - count(*) OVER mine
           + row_number() OVER (mine ORDER BY {source}.position),
           {type_sql}, {at_sql}, {data_sql}
    FROM {source} CROSS JOIN last_seq
    WINDOW mine AS (PARTITION BY {source}.user_id)
), woken AS (
    SELECT pg_notify(%(channel)s, string_agg(user_id::text, ',')) FROM (
        SELECT user_id, (row_number() OVER (ORDER BY user_id) - 1) / %(ids_per_notification)s AS chunk FROM counter
    ) AS users GROUP BY chunk
)
"""

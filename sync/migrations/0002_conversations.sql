-- Per conversation: the messages sent in it (one per applied send event)
-- and the last one.
CREATE TABLE IF NOT EXISTS {schema}.conversations (
    conversation_id    text PRIMARY KEY,
    message_count      bigint NOT NULL DEFAULT 0,
    last_send_time     timestamptz,
    last_server_msg_id text
);

-- The chat archive openim-sync keeps. {schema} is postgres.schema.

-- Every event, raw: the inbox that makes a redelivery harmless.
CREATE TABLE IF NOT EXISTS {schema}.events (
    source      text        NOT NULL,
    id          text        NOT NULL,
    type        text        NOT NULL,
    subject     text,
    time        timestamptz,
    data        jsonb       NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (source, id)
);
CREATE INDEX IF NOT EXISTS events_type_time ON {schema}.events (type, time);

-- Group, 1:1 and notification messages. seq comes from the saved-message
-- callback (the send callbacks carry 0): null until it is known.
CREATE TABLE IF NOT EXISTS {schema}.messages (
    server_msg_id   text PRIMARY KEY,
    conversation_id text NOT NULL,
    sender_id       text NOT NULL,
    group_id        text,
    recv_id         text,
    session_type    integer,
    content_type    integer,
    content         text,
    send_time       timestamptz,
    seq             bigint,
    revoked_at      timestamptz,
    revoked_by      text
);
CREATE INDEX IF NOT EXISTS messages_conversation_seq ON {schema}.messages (conversation_id, seq);
CREATE INDEX IF NOT EXISTS messages_conversation_time ON {schema}.messages (conversation_id, send_time);

-- Revokes, by the (conversation, seq) OpenIM names them with. applied_at:
-- when the message was marked revoked; null while it (or its seq) is not
-- known yet. On OpenIM versions without the saved-message callback (v3.8)
-- they stay unapplied: there a revoke cannot be joined to its message.
CREATE TABLE IF NOT EXISTS {schema}.revokes (
    conversation_id text        NOT NULL,
    seq             bigint      NOT NULL,
    revoked_by      text,
    revoked_at      timestamptz,
    event_id        text        NOT NULL,
    applied_at      timestamptz,
    PRIMARY KEY (conversation_id, seq)
);
CREATE INDEX IF NOT EXISTS revokes_held ON {schema}.revokes (conversation_id, seq) WHERE applied_at IS NULL;

-- Read receipts as OpenIM sends them: 1:1 (conversation, reader, seqs) and
-- group (the reader as send_id and receive_id, the read seq as
-- unread_msg_num; OpenIM names no group).
CREATE TABLE IF NOT EXISTS {schema}.read_receipts (
    event_id        text PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('single', 'group')),
    conversation_id text,
    user_id         text,
    seqs            bigint[],
    send_id         text,
    receive_id      text,
    unread_msg_num  bigint,
    content_type    bigint,
    received_at     timestamptz
);
CREATE INDEX IF NOT EXISTS read_receipts_conversation ON {schema}.read_receipts (conversation_id);

//! What a publisher confirm resolves to, and what the tracker decides for
//! each publish.

use lapin::Confirmation;

/// What the broker answered for one publish.
#[derive(Debug)]
pub enum Outcome {
    Ack,
    Nack,
    /// The channel is not in confirm mode.
    NotRequested,
    /// The channel or connection failed before the broker answered.
    Failed(lapin::Error),
}

/// A message the broker returned (no queue bound for its routing key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Returned {
    /// The returned message's `message_id` (our event id).
    pub message_id: Option<String>,
    pub reply_code: u16,
    pub reply_text: String,
    pub routing_key: String,
}

/// A resolved confirm: the broker's answer, and the returned message lapin
/// attached to it, which may be another publish's.
#[derive(Debug)]
pub struct Resolution {
    pub outcome: Outcome,
    pub returned: Option<Returned>,
}

impl From<lapin::Result<Confirmation>> for Resolution {
    fn from(result: lapin::Result<Confirmation>) -> Self {
        let (outcome, returned) = match result {
            Ok(Confirmation::Ack(returned)) => (Outcome::Ack, returned),
            Ok(Confirmation::Nack(returned)) => (Outcome::Nack, returned),
            Ok(Confirmation::NotRequested) => (Outcome::NotRequested, None),
            Err(err) => (Outcome::Failed(err), None),
        };
        Self {
            outcome,
            returned: returned.map(|message| Returned {
                message_id: message
                    .delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.as_str().to_owned()),
                reply_code: message.reply_code,
                reply_text: message.reply_text.as_str().to_owned(),
                routing_key: message.delivery.routing_key.as_str().to_owned(),
            }),
        }
    }
}

/// What became of one publish.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Delivered,
    Unroutable(Returned),
    Nacked,
    NotRequested,
    /// The confirm failed, or the tracker is broken; the text says why.
    Failed(String),
}

//! The bodies OpenIM parses: the "continue" ack and OpenIM-shaped errors.
//!
//! OpenIM decodes `{actionCode, errCode, errMsg, errDlt, nextCode}` as Go
//! int32/string fields and ignores the HTTP status. It treats only
//! `actionCode 0 && nextCode 1` as "stop"; error replies therefore carry
//! `actionCode 1, nextCode 0`, which can never block a user's action.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;

/// The "continue" ack, byte for byte.
pub const ACK: &[u8] = br#"{"actionCode":0,"errCode":0,"errMsg":"","errDlt":"","nextCode":0}"#;

/// An HTTP response with a small in-memory body.
pub type Reply = Response<Full<Bytes>>;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    action_code: i32,
    err_code: i32,
    err_msg: &'a str,
    err_dlt: &'a str,
    next_code: i32,
}

/// 200 with [`ACK`].
pub fn ack() -> Reply {
    json(StatusCode::OK, Bytes::from_static(ACK))
}

/// "Continue" for a callback whose request OpenIM rebuilds from our reply:
/// [`ACK`] plus each key of `echo` with its value in `body`, as received
/// (keys matched as Go's decoder does). With nothing to echo, or a body
/// that is not a JSON object (then nothing can be echoed), plain [`ACK`].
pub fn continue_unchanged(echo: &[&str], body: &[u8]) -> Reply {
    if echo.is_empty() {
        return ack();
    }
    let Ok(request) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
    else {
        return ack();
    };
    let mut reply = ACK[..ACK.len() - 1].to_vec();
    for key in echo {
        let value = request.get(*key).or_else(|| {
            request
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        });
        if let Some(value) = value {
            // Keys are our own ASCII names; a Value always serializes.
            reply.extend_from_slice(format!(",\"{key}\":").as_bytes());
            reply.extend(serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec()));
        }
    }
    reply.push(b'}');
    json(StatusCode::OK, reply.into())
}

/// An error reply: `errCode` is the HTTP status code, `errMsg` says what is
/// wrong, `errDlt` names the bridge so an operator knows who answered.
pub fn error(status: StatusCode, message: &str) -> Reply {
    let body = ErrorBody {
        action_code: 1,
        err_code: i32::from(status.as_u16()),
        err_msg: message,
        err_dlt: "openim-bridge",
        next_code: 0,
    };
    // Serializing two strings and three integers cannot fail.
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut reply = json(status, bytes.into());
    if status == StatusCode::METHOD_NOT_ALLOWED {
        reply
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
    }
    reply
}

/// Prometheus metrics in the OpenMetrics text format.
pub fn metrics(text: String) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(text)));
    reply.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    reply
}

/// Any JSON value as the body (health endpoints).
pub fn json_value(status: StatusCode, value: &serde_json::Value) -> Reply {
    json(status, serde_json::to_vec(value).unwrap_or_default().into())
}

fn json(status: StatusCode, body: Bytes) -> Reply {
    let mut reply = Response::new(Full::new(body));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn error_body_has_openim_types() {
        let reply = error(StatusCode::BAD_REQUEST, "bad \"x\"");
        let body = reply.into_body().collect().await.unwrap().to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"actionCode": 1, "errCode": 400, "errMsg": "bad \"x\"", "errDlt": "openim-bridge", "nextCode": 0})
        );
    }
}

//! What a callback's URL says: the command OpenIM appended to
//! `webhooks.url`, and a `?token=` secret. OpenIM builds the URL by string
//! concatenation, so both may hide in the query (see `PROTOCOL.md`).

use hyper::Uri;

/// The query's parameters, decoded as Go's `url.ParseQuery` does
/// (percent-escapes and `+` for a space).
fn query_pairs(uri: &Uri) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
}

/// The secret of a `?token=` in OpenIM's `webhooks.url`. OpenIM appends
/// `/<command>` to that URL by string concatenation, so the parameter
/// arrives as `token=S/callback...Command` (and, once newer OpenIM
/// re-encodes the query for message callbacks, as `token=S%2Fcallback...`):
/// the secret is the decoded value up to its first `/`. Only the `token`
/// parameter is read; no other parameter (`key`, ...) can pass for it.
pub fn query_token(uri: &Uri) -> impl Iterator<Item = String> + '_ {
    query_pairs(uri)
        .filter(|(key, _)| key == "token")
        .map(|(_, value)| match value.split_once('/') {
            Some((token, _command)) => token.to_owned(),
            None => value,
        })
}

/// The callback command the URL names, if any: the last path segment when it
/// looks like one (`/prefix/callbackAfterSendGroupMsgCommand`); else the
/// `command` query parameter (OpenIM 3.0-3.4 posted to `{url}?command=...`);
/// else what follows the last `/` of a query parameter (a `webhooks.url`
/// with a query, e.g. `?token=S`, gets `/<command>` appended to it).
pub fn url_command(uri: &Uri) -> Option<String> {
    let is_command = |s: &str| {
        s.starts_with("callback") && s.ends_with("Command") && s.len() > "callbackCommand".len()
    };
    let last = uri.path().rsplit('/').find(|s| !s.is_empty());
    if let Some(segment) = last.filter(|s| is_command(s)) {
        return Some(segment.to_owned());
    }
    let mut appended = None;
    for (key, value) in query_pairs(uri) {
        if key == "command" && is_command(&value) {
            return Some(value);
        }
        if let Some((_, tail)) = value.rsplit_once('/') {
            if is_command(tail) {
                appended = Some(tail.to_owned());
            }
        }
    }
    appended
}

#[cfg(test)]
mod tests {
    use super::{query_token, url_command};

    fn command(uri: &str) -> Option<String> {
        url_command(&uri.parse().unwrap())
    }

    #[test]
    fn command_from_path_or_query() {
        assert_eq!(
            command("/callbackExample/callbackAfterSendGroupMsgCommand?contenttype=json")
                .as_deref(),
            Some("callbackAfterSendGroupMsgCommand")
        );
        assert_eq!(
            command("/openim/callbackAfterSendSingleMsgCommand/").as_deref(),
            Some("callbackAfterSendSingleMsgCommand")
        );
        assert_eq!(
            command("/hook?command=callbackAfterSendGroupMsgCommand").as_deref(),
            Some("callbackAfterSendGroupMsgCommand")
        );
        assert_eq!(command("/callbackExample?key=abc%3D"), None);
        assert_eq!(command("/"), None);
    }

    #[test]
    fn command_appended_to_a_query() {
        // OpenIM v3.8: `webhooks.url + "/" + command`, the URL having a query.
        assert_eq!(
            command("/openim?token=S/callbackAfterQuitGroupCommand").as_deref(),
            Some("callbackAfterQuitGroupCommand")
        );
        // OpenIM main, message callbacks: the query re-encoded, keys sorted.
        assert_eq!(
            command(
                "/openim?key=eyJzZW5kSUQiOiIxIn0%3D&token=S%2FcallbackAfterSendGroupMsgCommand"
            )
            .as_deref(),
            Some("callbackAfterSendGroupMsgCommand")
        );
    }

    #[test]
    fn the_query_token_is_the_value_up_to_its_first_slash() {
        let tokens = |uri: &str| {
            let uri: hyper::Uri = uri.parse().unwrap();
            query_token(&uri).collect::<Vec<_>>()
        };
        assert_eq!(
            tokens("/openim?token=S3/callbackAfterQuitGroupCommand"),
            ["S3"]
        );
        assert_eq!(
            tokens("/openim?key=dG9rZW4%3D&token=S3%2FcallbackAfterSendGroupMsgCommand"),
            ["S3"]
        );
        assert_eq!(tokens("/openim?token=S3"), ["S3"]);
        // Only `token` counts: a `key` holding the secret is not a token.
        assert!(tokens("/openim?key=S3&tok=S3").is_empty());
    }
}

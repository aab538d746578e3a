//! Error taxonomy for everything that talks to Sage.
//!
//! The variants are chosen by what the *caller* has to do next, not by where the failure came
//! from: a consumer of NATS messages needs to know whether to dead-letter the message
//! ([`FailureClass::Permanent`]), retry it later ([`FailureClass::Transient`]) or stop working on
//! that merchant until a human reconnects Sage ([`FailureClass::Paused`]). [`SageError::class`]
//! answers that question so the decision lives in one place.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a caller should do with the unit of work that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureClass {
    /// Retrying the same request will never succeed (validation error, missing record, caller
    /// bug): record the failure and move on (dead-letter).
    Permanent,
    /// The request may succeed later (Sage overloaded or down, throttled, network trouble):
    /// retry with backoff, honouring [`SageError::retry_after`] when present.
    Transient,
    /// Nothing for this merchant can succeed until the merchant reconnects Sage: pause the
    /// merchant's work instead of dead-lettering it, so nothing is lost.
    Paused,
}

/// One entry of Sage's error envelope (`[{"$severity","$dataCode","$message","$source"}]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SageErrorItem {
    /// `$severity`, normally `"error"`.
    pub severity: String,
    /// `$dataCode`, Sage's machine-readable code such as `RecordInvalid` or `RecordNotFound`.
    pub data_code: String,
    /// `$message`, English text meant for humans.
    pub message: String,
    /// `$source`, the path of the offending field (e.g. `invoice_lines.0.tax_amount`); Sage
    /// leaves it empty for errors that are not about one field.
    pub source: String,
}

impl fmt::Display for SageErrorItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = if self.source.is_empty() {
            "(none)"
        } else {
            &self.source
        };
        let code = if self.data_code.is_empty() {
            "(none)"
        } else {
            &self.data_code
        };
        write!(f, "$source {source}: $dataCode {code}: {}", self.message)
    }
}

impl SageErrorItem {
    /// Parses Sage's error envelope out of a response body.
    ///
    /// Sage documents a JSON array of items, but proxies, the OAuth server and older endpoints
    /// answer with a single object, an `{"errors": [...]}` wrapper, an OAuth-style
    /// `{"error": ..., "error_description": ...}` or plain text. None of those may be lost,
    /// because the text is what an operator needs to fix the data, so anything unrecognised
    /// becomes one item whose message is the (truncated) body.
    pub fn parse_envelope(body: &str) -> Vec<SageErrorItem> {
        let trimmed = body.trim();
        if trimmed.is_empty() {
            return Vec::new();
        }
        match serde_json::from_str::<Value>(trimmed) {
            Ok(value) => Self::from_value(&value),
            Err(_) => vec![SageErrorItem {
                severity: "error".into(),
                message: truncate(trimmed, 500),
                ..Default::default()
            }],
        }
    }

    /// Like [`SageErrorItem::parse_envelope`], for a body that is already JSON.
    pub fn from_value(value: &Value) -> Vec<SageErrorItem> {
        match value {
            Value::Array(items) => items.iter().flat_map(Self::from_value).collect(),
            Value::Object(map) => {
                if map.contains_key("$message")
                    || map.contains_key("$dataCode")
                    || map.contains_key("$source")
                {
                    return vec![SageErrorItem {
                        severity: text(map.get("$severity")).unwrap_or_else(|| "error".into()),
                        data_code: text(map.get("$dataCode")).unwrap_or_default(),
                        message: text(map.get("$message")).unwrap_or_default(),
                        source: text(map.get("$source")).unwrap_or_default(),
                    }];
                }
                if let Some(inner) = map.get("errors").or_else(|| map.get("$errors")) {
                    let items = Self::from_value(inner);
                    if !items.is_empty() {
                        return items;
                    }
                }
                if let Some(code) = text(map.get("error")) {
                    return vec![SageErrorItem {
                        severity: "error".into(),
                        data_code: code,
                        message: text(map.get("error_description"))
                            .or_else(|| text(map.get("message")))
                            .unwrap_or_default(),
                        source: String::new(),
                    }];
                }
                vec![SageErrorItem {
                    severity: "error".into(),
                    message: truncate(&value.to_string(), 500),
                    ..Default::default()
                }]
            }
            Value::Null => Vec::new(),
            other => vec![SageErrorItem {
                severity: "error".into(),
                message: truncate(&other.to_string(), 500),
                ..Default::default()
            }],
        }
    }
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

pub(crate) fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max_chars).collect();
        out.push('…');
        out
    }
}

/// Formats a list of error items for `Display`, so logs name `$source` and `$dataCode`.
struct Items<'a>(&'a [SageErrorItem]);

impl fmt::Display for Items<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no error details in the response");
        }
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

struct RequestId<'a>(&'a Option<String>);

impl fmt::Display for RequestId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " (x_request_id {id})"),
            None => Ok(()),
        }
    }
}

/// Every way a call to Sage (or to the token store behind it) can fail.
///
/// The type is `Clone` so that one failed token refresh can be handed to every caller that was
/// waiting for it (see `TokenManager`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SageError {
    /// Sage refused the request in a way that will not change on retry (422 validation, 404,
    /// 400, 403, 409, ...). The items carry Sage's `$source`/`$dataCode` so that an operator can
    /// see which field to fix.
    #[error(
        "Sage rejected the request with HTTP {status}: {}{}",
        Items(errors),
        RequestId(request_id)
    )]
    Rejected {
        /// HTTP status code.
        status: u16,
        /// Parsed error envelope.
        errors: Vec<SageErrorItem>,
        /// Sage's `x_request_id` header, which Sage support asks for.
        request_id: Option<String>,
    },
    /// A failure that may go away: 5xx, 429, 408, timeouts, connection errors, a token store
    /// that is briefly unreachable.
    #[error("transient Sage failure ({}): {message}{}", status.map(|s| format!("HTTP {s}")).unwrap_or_else(|| "no response".into()), RequestId(request_id))]
    Transient {
        /// HTTP status code, or `None` when no response arrived (timeout, connection error).
        status: Option<u16>,
        /// What went wrong, for logs.
        message: String,
        /// How long Sage asked us to wait (`Retry-After`), if it said.
        retry_after: Option<Duration>,
        /// Sage's `x_request_id` header, if a response arrived.
        request_id: Option<String>,
    },
    /// Sage no longer accepts this merchant's refresh token (`invalid_grant`): the merchant must
    /// authorise the app again. The connection has been marked revoked in the token store.
    #[error(
        "the Sage connection of merchant {merchant} was revoked; the merchant must reconnect Sage"
    )]
    ConnectionRevoked {
        /// The merchant whose connection is unusable.
        merchant: String,
    },
    /// The merchant never connected Sage, or disconnected it.
    #[error("merchant {merchant} has no Sage connection")]
    NotConnected {
        /// The merchant without a connection.
        merchant: String,
    },
    /// Sage answered 401 even with a freshly obtained access token.
    #[error(
        "Sage answered 401 Unauthorized after a token refresh: {}{}",
        Items(errors),
        RequestId(request_id)
    )]
    Unauthorized {
        /// Parsed error envelope (e.g. `AuthorizationFailure` "No active subscription").
        errors: Vec<SageErrorItem>,
        /// Sage's `x_request_id` header.
        request_id: Option<String>,
    },
    /// The OAuth server refused a grant or client credentials (HTTP 4xx from the token or
    /// revoke endpoint), e.g. an expired authorisation code or a wrong client secret.
    #[error("Sage OAuth error {error} (HTTP {status}){}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    OAuth {
        /// HTTP status code.
        status: u16,
        /// The OAuth `error` code (`invalid_grant`, `invalid_client`, ...).
        error: String,
        /// The OAuth `error_description`, if any.
        description: Option<String>,
    },
    /// Sage answered something this client cannot interpret (a 2xx body that is not JSON, a
    /// list without `$items`, a `$next` link pointing elsewhere).
    #[error("unexpected answer from Sage: {message}{}", RequestId(request_id))]
    Protocol {
        /// What was wrong with the answer.
        message: String,
        /// Sage's `x_request_id` header, if a response arrived.
        request_id: Option<String>,
    },
    /// The caller passed something this client will not send (e.g. a non-object body or a
    /// malformed idempotency id): a bug in the caller, so retrying cannot help.
    #[error("invalid request to the Sage client: {0}")]
    InvalidInput(String),
    /// The token store failed (database unreachable, lock wait timed out, undecryptable row).
    #[error("Sage token store error: {message}")]
    Storage {
        /// What went wrong.
        message: String,
    },
}

impl SageError {
    /// Tells the caller whether to dead-letter, retry or pause (see [`FailureClass`]).
    pub fn class(&self) -> FailureClass {
        match self {
            SageError::Rejected { .. } | SageError::InvalidInput(_) => FailureClass::Permanent,
            // An unreadable answer is most often a proxy or load balancer page in front of Sage,
            // and a write that got one may have been applied: retrying with the same
            // idempotency id is both safe and the only way to learn the Sage id.
            SageError::Transient { .. }
            | SageError::Storage { .. }
            | SageError::Protocol { .. } => FailureClass::Transient,
            SageError::ConnectionRevoked { .. }
            | SageError::NotConnected { .. }
            | SageError::Unauthorized { .. } => FailureClass::Paused,
            // A refused grant means the merchant has to act; wrong client credentials mean an
            // operator has to act. Either way retrying the same message cannot help, and
            // dead-letter would lose work that succeeds once the cause is fixed.
            SageError::OAuth { error, .. } if error == "invalid_grant" => FailureClass::Paused,
            SageError::OAuth { error, .. }
                if error == "temporarily_unavailable" || error == "server_error" =>
            {
                FailureClass::Transient
            }
            SageError::OAuth { .. } => FailureClass::Paused,
        }
    }

    /// How long Sage asked the caller to wait before retrying, when it said so (429 with a
    /// `Retry-After` header).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SageError::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Sage's `x_request_id` for the failed call, when a response arrived.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            SageError::Rejected { request_id, .. }
            | SageError::Transient { request_id, .. }
            | SageError::Unauthorized { request_id, .. }
            | SageError::Protocol { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// Whether the failure proves that Sage changed nothing: the request was refused before it
    /// was handled (429, whether Sage's own or Ledger's budget answering for it). A timeout or
    /// a 5xx proves nothing: the write may have landed.
    pub fn applied_nothing(&self) -> bool {
        self.status() == Some(429)
    }

    /// HTTP status of the failed call, when a response arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            SageError::Rejected { status, .. } | SageError::OAuth { status, .. } => Some(*status),
            SageError::Transient { status, .. } => *status,
            SageError::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }

    /// The parsed error envelope, if the failure carried one.
    pub fn errors(&self) -> &[SageErrorItem] {
        match self {
            SageError::Rejected { errors, .. } | SageError::Unauthorized { errors, .. } => errors,
            _ => &[],
        }
    }

    /// True for a 404 answer, which lookups usually treat as "absent" rather than as failure.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SageError::Rejected { status: 404, .. })
    }

    /// True when the OAuth server said `invalid_grant` (used or expired refresh token or code).
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, SageError::OAuth { error, .. } if error == "invalid_grant")
    }

    pub(crate) fn storage(context: &str, err: impl fmt::Display) -> SageError {
        SageError::Storage {
            message: format!("{context}: {err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_array_envelope() {
        let body = r#"[{"$severity":"error","$dataCode":"RecordInvalid","$message":"can't be blank","$source":"contact_type_ids"},
                      {"$severity":"error","$dataCode":"RecordNotFound","$message":"Couldn't find Supplier.","$source":""}]"#;
        let items = SageErrorItem::parse_envelope(body);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].data_code, "RecordInvalid");
        assert_eq!(items[0].source, "contact_type_ids");
        assert_eq!(items[1].source, "");
        assert_eq!(items[1].message, "Couldn't find Supplier.");
    }

    #[test]
    fn tolerates_single_objects_wrappers_oauth_errors_and_text() {
        let one = SageErrorItem::parse_envelope(
            r#"{"$severity":"error","$dataCode":"UnexpectedError","$message":"boom","$source":""}"#,
        );
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].data_code, "UnexpectedError");

        let wrapped = SageErrorItem::parse_envelope(
            r#"{"errors":[{"$dataCode":"RecordInvalid","$message":"bad","$source":"name"}]}"#,
        );
        assert_eq!(wrapped[0].source, "name");
        assert_eq!(wrapped[0].severity, "error");

        let oauth = SageErrorItem::parse_envelope(
            r#"{"error":"invalid_grant","error_description":"used"}"#,
        );
        assert_eq!(oauth[0].data_code, "invalid_grant");
        assert_eq!(oauth[0].message, "used");

        let html = SageErrorItem::parse_envelope("<html>502 Bad Gateway</html>");
        assert_eq!(html.len(), 1);
        assert!(html[0].message.contains("502"));

        assert!(SageErrorItem::parse_envelope("   ").is_empty());
        assert!(SageErrorItem::parse_envelope("null").is_empty());
        let odd = SageErrorItem::parse_envelope(r#"{"unexpected":true}"#);
        assert!(odd[0].message.contains("unexpected"));
    }

    #[test]
    fn display_names_source_and_data_code() {
        let err = SageError::Rejected {
            status: 422,
            errors: vec![SageErrorItem {
                severity: "error".into(),
                data_code: "RecordInvalid".into(),
                message: "is required".into(),
                source: "invoice_lines.0.tax_amount".into(),
            }],
            request_id: Some("req-1".into()),
        };
        let text = err.to_string();
        assert!(
            text.contains("$source invoice_lines.0.tax_amount"),
            "{text}"
        );
        assert!(text.contains("$dataCode RecordInvalid"), "{text}");
        assert!(text.contains("422"), "{text}");
        assert!(text.contains("req-1"), "{text}");
    }

    #[test]
    fn classes_match_what_callers_must_do() {
        let rejected = SageError::Rejected {
            status: 422,
            errors: vec![],
            request_id: None,
        };
        assert_eq!(rejected.class(), FailureClass::Permanent);
        let throttled = SageError::Transient {
            status: Some(429),
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(7)),
            request_id: None,
        };
        assert_eq!(throttled.class(), FailureClass::Transient);
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(rejected.retry_after(), None);
        assert_eq!(
            SageError::ConnectionRevoked {
                merchant: "m".into()
            }
            .class(),
            FailureClass::Paused
        );
        assert_eq!(
            SageError::NotConnected {
                merchant: "m".into()
            }
            .class(),
            FailureClass::Paused
        );
        assert_eq!(
            SageError::Storage {
                message: "db".into()
            }
            .class(),
            FailureClass::Transient
        );
        let grant = SageError::OAuth {
            status: 400,
            error: "invalid_grant".into(),
            description: None,
        };
        assert!(grant.is_invalid_grant());
        assert_eq!(grant.class(), FailureClass::Paused);
    }
}

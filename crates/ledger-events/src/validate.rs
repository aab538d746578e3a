//! JSON Schema validation against the embedded contract, and the error types of the crate.

use std::fmt;
use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, Registry, Resource, ValidationError, Validator};
use serde_json::Value;

/// Base URI of the schema `$id`s; the schemas refer to each other relative to it.
pub const SCHEMA_BASE_URI: &str = "https://ledger.example/schemas/events/";

/// The JSON Schema files of the contract, `(file name, text)`, embedded at build time so a
/// consumer binary always validates against the schemas it was compiled with.
pub const SCHEMA_FILES: [(&str, &str); 11] = [
    (
        "envelope.schema.json",
        include_str!("../../../schemas/events/envelope.schema.json"),
    ),
    (
        "common.schema.json",
        include_str!("../../../schemas/events/common.schema.json"),
    ),
    (
        "backfill-started.schema.json",
        include_str!("../../../schemas/events/backfill-started.schema.json"),
    ),
    (
        "invoice-created.schema.json",
        include_str!("../../../schemas/events/invoice-created.schema.json"),
    ),
    (
        "invoice-paid.schema.json",
        include_str!("../../../schemas/events/invoice-paid.schema.json"),
    ),
    (
        "invoice-canceled.schema.json",
        include_str!("../../../schemas/events/invoice-canceled.schema.json"),
    ),
    (
        "creditmemo-refunded.schema.json",
        include_str!("../../../schemas/events/creditmemo-refunded.schema.json"),
    ),
    (
        "creditmemo-canceled.schema.json",
        include_str!("../../../schemas/events/creditmemo-canceled.schema.json"),
    ),
    (
        "creditmemo-created.schema.json",
        include_str!("../../../schemas/events/creditmemo-created.schema.json"),
    ),
    (
        "customer-saved.schema.json",
        include_str!("../../../schemas/events/customer-saved.schema.json"),
    ),
    (
        "product-saved.schema.json",
        include_str!("../../../schemas/events/product-saved.schema.json"),
    ),
];

/// One contract violation: where (a JSON pointer into the event, e.g.
/// `/payload/invoice/items/0/qty`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldIssue {
    /// JSON pointer (RFC 6901) of the offending field; `""` is the whole event. For a missing or
    /// unexpected property the pointer names that property, not its parent object.
    pub path: String,
    /// Human-readable reason.
    pub reason: String,
}

impl FieldIssue {
    /// Builds an issue.
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldIssue {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "(event root): {}", self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

/// Everything that can go wrong between raw bytes and a typed [`crate::Envelope`].
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The bytes are not JSON at all.
    #[error("malformed JSON: {0}")]
    MalformedJson(FieldIssue),
    /// The JSON breaks the schema; every violation is listed.
    #[error("event violates the contract: {}", join_issues(.0))]
    Violations(Vec<FieldIssue>),
    /// The JSON passed the schema but could not be turned into Rust types (a gap between schema
    /// and types, which the crate's tests are there to prevent).
    #[error("cannot decode event: {0}")]
    Decode(FieldIssue),
    /// A merchant id that is not a safe NATS subject token.
    #[error("invalid merchant id {merchant_id:?}: {reason}")]
    InvalidMerchantId {
        /// The rejected value.
        merchant_id: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A string that is none of the event types.
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    /// The embedded schemas did not compile (a build defect, covered by tests).
    #[error("embedded JSON Schemas are unusable: {0}")]
    SchemaUnavailable(String),
}

impl ContractError {
    /// The field-level issues carried by this error (empty for errors not about a field).
    pub fn issues(&self) -> &[FieldIssue] {
        match self {
            ContractError::Violations(v) => v,
            ContractError::MalformedJson(i) | ContractError::Decode(i) => std::slice::from_ref(i),
            _ => &[],
        }
    }

    /// A one-line summary bounded to `max_len` bytes, for a quarantine header or a log field
    /// (NATS headers must stay small; the full list is in `Display`).
    pub fn summary(&self, max_len: usize) -> String {
        let mut s = self.to_string().replace(['\r', '\n'], " ");
        if s.len() > max_len {
            let mut cut = max_len.saturating_sub(3);
            while cut > 0 && !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push_str("...");
        }
        s
    }
}

fn join_issues(issues: &[FieldIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Compiles the envelope schema with the other files registered under their `$id`s. Kept
/// separate from [`validator`] so tests can check compilation errors directly.
pub(crate) fn compile() -> Result<Validator, String> {
    let mut registry = Registry::new();
    let mut envelope = None;
    for (file, text) in SCHEMA_FILES {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("{file} is not JSON: {e}"))?;
        let id = format!("{SCHEMA_BASE_URI}{file}");
        if value.get("$id").and_then(Value::as_str) != Some(id.as_str()) {
            return Err(format!("{file} must have $id {id}"));
        }
        if file == "envelope.schema.json" {
            envelope = Some(value.clone());
        }
        registry = registry
            .add(&id, Resource::from_contents(value))
            .map_err(|e| format!("{file}: {e}"))?;
    }
    let envelope = envelope.ok_or("envelope.schema.json missing")?;
    let registry = registry.prepare().map_err(|e| e.to_string())?;
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        // Formats are annotations only in 2020-12 unless asked for; the contract relies on
        // `uuid` and `date-time` being checked.
        .should_validate_formats(true)
        .with_registry(&registry)
        .build(&envelope)
        .map_err(|e| e.to_string())
}

/// The compiled contract, built on first use and shared by all threads.
fn validator() -> Result<&'static Validator, ContractError> {
    static VALIDATOR: OnceLock<Result<Validator, String>> = OnceLock::new();
    VALIDATOR
        .get_or_init(compile)
        .as_ref()
        .map_err(|e| ContractError::SchemaUnavailable(e.clone()))
}

/// Escapes one JSON pointer token (RFC 6901).
pub(crate) fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Validates a parsed event against the contract and reports every violation, each with the
/// JSON pointer of the field it concerns.
pub fn validate(raw: &Value) -> Result<(), ContractError> {
    let validator = validator()?;
    let mut issues: Vec<FieldIssue> = Vec::new();
    for error in validator.iter_errors(raw) {
        for issue in to_issues(&error) {
            if !issues.contains(&issue) {
                issues.push(issue);
            }
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ContractError::Violations(issues))
    }
}

/// Turns a validator error into field issues, pointing at the property itself for "required"
/// and "additional property" errors (the validator reports those at the parent object).
fn to_issues(error: &ValidationError<'_>) -> Vec<FieldIssue> {
    let base = error.instance_path().as_str();
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_owned);
            vec![FieldIssue::new(
                format!("{base}/{}", escape_token(&name)),
                "is required but missing",
            )]
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| {
                FieldIssue::new(
                    format!("{base}/{}", escape_token(name)),
                    "is not part of the contract (unexpected property)",
                )
            })
            .collect(),
        _ => {
            // Show the offending value for scalars (it is what one needs to see), but not whole
            // objects or arrays, which would flood logs with the document.
            let reason = if error.instance().is_object() || error.instance().is_array() {
                error.masked_with("the value").to_string()
            } else {
                error.to_string()
            };
            vec![FieldIssue::new(base, reason)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_compile() {
        compile().expect("embedded schemas compile");
    }

    #[test]
    fn summary_is_bounded() {
        let e = ContractError::Violations(vec![FieldIssue::new("/a", "x".repeat(500))]);
        let s = e.summary(100);
        assert!(s.len() <= 100, "{s}");
        assert!(s.ends_with("..."));
    }

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(escape_token("a/b~c"), "a~1b~0c");
    }
}

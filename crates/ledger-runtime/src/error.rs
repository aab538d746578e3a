//! The error taxonomy every message handler speaks.
//!
//! The consumer loop decides what to do with a message from the *type* of the error alone:
//! a [`ProcessError::Permanent`] is terminated and dead-lettered, a
//! [`ProcessError::Transient`] is redelivered later, a [`ProcessError::Paused`] waits for the
//! merchant to be reconnected without ever burning into a dead letter.

use std::time::Duration;

/// Result of handling one message.
pub type ProcessResult<T = ()> = Result<T, ProcessError>;

/// Why a message could not be processed now.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The message can never succeed as it is (bad input, a validation rejection by Sage).
    /// `code` is a stable machine-readable reason; `field` names the offending field if known.
    #[error("permanent failure [{code}]{}: {message}", field.as_deref().map(|f| format!(" at {f}")).unwrap_or_default())]
    Permanent {
        /// Stable reason code, e.g. `contract.invalid`, `sage.RecordInvalid`.
        code: String,
        /// Field path the failure is about, when known.
        field: Option<String>,
        /// Human-readable reason.
        message: String,
        /// Extra structured context kept with the dead letter (e.g. Sage's parsed error list).
        detail: serde_json::Value,
    },
    /// A fault that may clear by itself (Sage 5xx or 429, timeouts, a peer service down).
    #[error("transient failure: {message}")]
    Transient {
        /// Human-readable reason.
        message: String,
        /// How long the remote side asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The merchant's Sage call budget is spent (or Sage answered 429): try again after
    /// `retry_after`. Like a pause, it does not count towards dead-lettering.
    #[error("throttled; retry after {retry_after:?}")]
    Throttled {
        /// Time until the budget's next slot for the merchant, or until Sage's pause ends.
        retry_after: Duration,
    },
    /// The merchant cannot be served until an operator or the merchant acts (Sage connection
    /// revoked or never made). The message waits; it is not counted towards dead-lettering.
    #[error("merchant paused: {reason}")]
    Paused {
        /// Why the merchant is paused.
        reason: String,
    },
}

impl ProcessError {
    /// A permanent failure with a code and message.
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        ProcessError::Permanent {
            code: code.into(),
            field: None,
            message: message.into(),
            detail: serde_json::Value::Null,
        }
    }

    /// A permanent failure about one field.
    pub fn invalid_field(
        code: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ProcessError::Permanent {
            code: code.into(),
            field: Some(field.into()),
            message: message.into(),
            detail: serde_json::Value::Null,
        }
    }

    /// A transient failure without a server-given delay.
    pub fn transient(message: impl Into<String>) -> Self {
        ProcessError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    /// Whether this error should be retried later.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ProcessError::Permanent { .. })
    }

    /// Stable code for metrics and audit.
    pub fn code(&self) -> &str {
        match self {
            ProcessError::Permanent { code, .. } => code,
            ProcessError::Transient { .. } => "transient",
            ProcessError::Paused { .. } => "paused",
            ProcessError::Throttled { .. } => "throttled",
        }
    }
}

impl From<sqlx::Error> for ProcessError {
    fn from(e: sqlx::Error) -> Self {
        // The database being unreachable or a serialisation conflict clears with time; a
        // constraint violation would not, but our handlers turn those into explicit outcomes.
        ProcessError::transient(format!("database: {e}"))
    }
}

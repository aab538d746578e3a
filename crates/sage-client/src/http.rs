//! Small HTTP helpers shared by the OAuth and API clients.

use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::error::SageError;

/// Name of the header Sage puts its request id in (Sage support asks for it).
pub(crate) const REQUEST_ID_HEADER: &str = "x_request_id";

/// Reads Sage's request id. Sage spells the header with an underscore; some proxies rewrite
/// underscores to dashes (or drop such headers), so both spellings are accepted.
pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(REQUEST_ID_HEADER)
        .or_else(|| headers.get("x-request-id"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The longest wait a `Retry-After` is taken at: one hour. A larger value (or a date further
/// ahead) is read as this, so a hostile or broken answer can neither overflow a duration nor park
/// a merchant's work for years; the consumer's backoff retries after it, and Sage asks again if
/// it is still throttling.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Parses `Retry-After`, which HTTP allows as delay-seconds or as an HTTP date, clamped to
/// [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    parse_retry_after(raw, chrono::Utc::now())
}

/// Parses a `Retry-After` value as of `now`; `None` when it is neither form. Never panics: a
/// value beyond [`MAX_RETRY_AFTER`] is clamped to it, a date in the past is no wait.
pub(crate) fn parse_retry_after(raw: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let max = MAX_RETRY_AFTER;
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(max));
    }
    if let Ok(secs) = raw.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::try_from_secs_f64(secs).map_or(max, |d| d.min(max)));
        }
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let delta = at.with_timezone(&chrono::Utc).signed_duration_since(now);
    Some(delta.to_std().map_or(Duration::ZERO, |d| d.min(max)))
}

/// Maps a transport failure (no HTTP answer) to a transient error: the request may or may not
/// have reached Sage, and only a retry (with the same idempotency id for writes) can tell.
pub(crate) fn transport_error(what: &str, err: reqwest::Error) -> SageError {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    // reqwest's Display includes the URL, which never carries a secret in this crate (tokens
    // travel in headers and form bodies), so it is kept for diagnosis.
    SageError::Transient {
        status: None,
        message: format!("{what} {kind}: {err}"),
        retry_after: None,
        request_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = chrono::Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 01 Jan 2025 00:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Tue, 31 Dec 2024 23:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn huge_retry_after_is_clamped_not_a_panic() {
        let now = chrono::Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let max = Some(MAX_RETRY_AFTER);
        assert_eq!(parse_retry_after("1000000000000", now), max);
        assert_eq!(parse_retry_after(&u64::MAX.to_string(), now), max);
        assert_eq!(parse_retry_after("99999999999999999999999999999", now), max);
        assert_eq!(parse_retry_after("1e300", now), max);
        assert_eq!(parse_retry_after("1000000000000.5", now), max);
        assert_eq!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now), max);
        assert_eq!(parse_retry_after("3600", now), max);
        assert_eq!(
            parse_retry_after("3599", now),
            Some(Duration::from_secs(3599))
        );
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("NaN", now), None);
        assert_eq!(parse_retry_after("inf", now), None);
    }
}

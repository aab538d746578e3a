//! What a paired store is handed and may use on NATS: the URLs it connects to, its reply
//! inbox and the subjects its key grants. Pairing hands these out ([`crate::pairing`]); the auth
//! callout grants them at each login ([`crate::nats_auth`]).

use sha2::{Digest, Sha256};

/// Subjects a merchant's key may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantPermissions {
    /// Publish allow list.
    pub publish: Vec<String>,
    /// Subscribe allow list.
    pub subscribe: Vec<String>,
}

/// Subjects no store may publish on even if an allow list were widened by mistake.
pub const STORE_PUBLISH_DENY: &[&str] = &["$SYS.>", "$JS.>", "$KV.>", "_INBOX.>", "ledger.>"];

/// Inbox prefix a merchant's client must use for its PubAck replies: the merchant's inbox
/// namespace and a tag derived from the key's secret, so that no other store can name it as
/// a reply subject (replies are delivered to whatever subject a publisher names).
pub fn inbox_prefix(merchant: &str, secret: &str) -> String {
    let digest = Sha256::digest(format!("ledger-store-inbox\u{1f}{secret}").as_bytes());
    format!(
        "_INBOX.{merchant}.{}",
        data_encoding::HEXLOWER.encode(&digest[..16])
    )
}

/// A merchant's client publishes its own events, on the event subjects of the contract only, and reads
/// replies on its own inbox; it cannot touch another merchant's subjects, put anything else
/// into the event log, or reach the status stream or the JetStream API.
pub fn merchant_permissions(merchant: &str, inbox_prefix: &str) -> MerchantPermissions {
    MerchantPermissions {
        // Live events, the same events as history (a backfill), and a backfill's header.
        publish: ledger_events::EventType::ALL
            .iter()
            .map(|t| ledger_events::subject(merchant, *t))
            .chain(
                ledger_events::EventType::ALL
                    .iter()
                    .map(|t| ledger_events::history_subject(merchant, *t)),
            )
            .chain([ledger_runtime::backfill::header_subject(merchant, "*")])
            .collect(),
        subscribe: vec![format!("{inbox_prefix}.>")],
    }
}

/// NATS URLs handed to stores: configured ones, or the gateway's own (every node of its
/// comma-separated list) without credentials.
pub fn public_nats_urls_of(config: &crate::Config) -> Vec<String> {
    if !config.nats_public_urls.is_empty() {
        return config.nats_public_urls.clone();
    }
    match ledger_runtime::bus::parse_servers(&config.nats_url) {
        Ok(servers) => servers.addresses,
        // An unusable list stops the gateway at connect, with the entry named.
        Err(_) => vec![ledger_runtime::bus::split_credentials(&config.nats_url).0],
    }
}

/// Refuses to start a gateway that would hand stores a NATS URL other than `tls://` (their
/// key's secret travels in CONNECT), unless `LEDGER_NATS_ALLOW_PLAIN` is set (development
/// and tests), in which case it warns.
pub fn check_public_nats_urls(config: &crate::Config) -> anyhow::Result<()> {
    if config.nats_callout_issuer_seed.is_none() {
        return Ok(());
    }
    for url in public_nats_urls_of(config) {
        if url.trim().to_ascii_lowercase().starts_with("tls://") {
            continue;
        }
        if config.nats_allow_plain {
            tracing::warn!(%url, "LEDGER_NATS_PUBLIC_URLS: stores are handed a URL without TLS (LEDGER_NATS_ALLOW_PLAIN is set; development only)");
        } else {
            anyhow::bail!(
                "LEDGER_NATS_PUBLIC_URLS: {url:?} is not a tls:// URL; stores send their key's secret when they connect, so they must be handed tls:// URLs (set LEDGER_NATS_ALLOW_PLAIN=true only for development)"
            );
        }
    }
    Ok(())
}

//! `schemas/asyncapi.yaml` lists every NATS subject Ledger uses, and only those.
//!
//! The subjects come from two places: the constants and subject functions of ledger-events,
//! ledger-rpc, ledger-runtime and the gateway, and every subject-like string literal in the
//! libraries' and services' sources (so a subject written out anywhere is seen too).

mod common;

use std::collections::BTreeSet;

use ledger_events::EventType;
use regex::Regex;
use serde_json::Value;

use common::{rust_files, workspace_root};

/// Stand-ins passed to subject functions; they become `*` when subjects are compared.
const MERCHANT: &str = "merchantx";
const SERVICE: &str = "servicex";
const BACKFILL: &str = "backfillx";

/// The NATS micro services protocol's discovery subjects, which the `async-nats` service
/// support answers for every service (there is no constant of ours for them).
const NATS_SERVICE_SUBJECTS: [&str; 3] = ["$SRV.PING", "$SRV.INFO", "$SRV.STATS"];

/// A subject with every parameter (`{name}`, a format `{}`, a `*` wildcard or a stand-in)
/// replaced by `*`, so that a document address and a subject the code builds compare.
fn shape(subject: &str) -> String {
    let braces = Regex::new(r"\{[^}]*\}").unwrap();
    braces
        .replace_all(subject, "*")
        .split('.')
        .map(|t| {
            if t == MERCHANT || t == SERVICE || t == BACKFILL {
                "*"
            } else {
                t
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether a subject (or subject prefix) the code uses is `address` or starts it.
fn covers(code: &str, address: &str) -> bool {
    code == address
        || (code.ends_with('.') && address.starts_with(code))
        || address.starts_with(&format!("{code}."))
}

fn documented() -> BTreeSet<String> {
    let text = std::fs::read_to_string(workspace_root().join("schemas/asyncapi.yaml"))
        .expect("schemas/asyncapi.yaml is readable");
    let doc: Value = serde_norway::from_str(&text).expect("schemas/asyncapi.yaml is YAML");
    let channels = doc["channels"]
        .as_object()
        .expect("asyncapi.yaml has channels");
    channels
        .iter()
        .map(|(id, c)| {
            shape(
                c["address"]
                    .as_str()
                    .unwrap_or_else(|| panic!("channel {id} has no address")),
            )
        })
        .collect()
}

/// The subjects the code's constants and subject functions name.
fn from_constants() -> BTreeSet<String> {
    let mut subjects: Vec<String> = EventType::ALL
        .iter()
        .map(|t| ledger_events::subject(MERCHANT, *t))
        .collect();
    subjects.extend(
        EventType::ALL
            .iter()
            .map(|t| ledger_events::history_subject(MERCHANT, *t)),
    );
    subjects.extend([
        ledger_runtime::backfill::header_subject(MERCHANT, BACKFILL),
        ledger_events::quarantine_subject(MERCHANT),
        ledger_runtime::status::subject(MERCHANT),
        ledger_runtime::dead_letters::subject(SERVICE),
        ledger_runtime::audit::subject(SERVICE),
        ledger_runtime::replay::subject(SERVICE),
        gateway::nats_auth::CALLOUT_SUBJECT.to_string(),
    ]);
    subjects.extend(
        [
            ledger_rpc::TOKEN_SUBJECT,
            ledger_rpc::SETTINGS_SUBJECT,
            ledger_rpc::ENSURE_CONTACT_SUBJECT,
            ledger_rpc::DOCUMENT_LOOKUP_SUBJECT,
            ledger_rpc::HELD_DOCUMENTS_SUBJECT,
            ledger_rpc::REISSUE_SUBJECT,
            ledger_rpc::INVOICE_LANDED_SUBJECT,
            ledger_rpc::REMOVE_RECEIPTS_SUBJECT,
            ledger_rpc::CLEARING_ACCOUNT_SUBJECT,
        ]
        .map(String::from),
    );
    // A store's inbox: `_INBOX.<merchant>.<tag of its key>`; the tag is a parameter too.
    let inbox = gateway::store_access::inbox_prefix(MERCHANT, "a-store-secret");
    let mut tokens: Vec<&str> = inbox.split('.').collect();
    assert_eq!(tokens.len(), 3, "store inbox prefix {inbox}");
    tokens[2] = "*";
    subjects.push(tokens.join("."));
    subjects.iter().map(|s| shape(s)).collect()
}

/// Every subject-like string literal in the non-test code of crates/ and services/, shaped.
/// Filters (ending in `>`) and permissions are not subjects and are left out, and so is the
/// test kit (a test tool, whose inboxes are instances of `_INBOX_<user>`).
fn from_sources() -> BTreeSet<String> {
    let literal =
        Regex::new(r#"(^|[^b])"((?:ledger\.|magento\.|\$SYS\.|\$SRV\.|_INBOX)[^"]*)""#).unwrap();
    let subject_like = Regex::new(r"^[A-Za-z0-9_\-.$*{}]+$").unwrap();
    let mut out = BTreeSet::new();
    let mut files = 0;
    for top in ["crates", "services"] {
        for file in rust_files(&workspace_root().join(top)) {
            let is_src = file.components().any(|c| c.as_os_str() == "src");
            let is_testkit = file.components().any(|c| c.as_os_str() == "ledger-testkit");
            if !is_src || is_testkit {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&file).unwrap();
            // Unit tests (at the end of a file) use made-up subjects on purpose.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for caps in literal.captures_iter(code) {
                let s = &caps[2];
                if s.ends_with('>') || !subject_like.is_match(s) {
                    continue;
                }
                out.insert(shape(s));
            }
        }
    }
    assert!(files > 20, "the sources were not found");
    out
}

#[test]
fn every_subject_of_the_code_is_documented() {
    let documented = documented();
    let mut missing = Vec::new();
    for (origin, subjects) in [("constant", from_constants()), ("source", from_sources())] {
        for s in subjects {
            if !documented.iter().any(|d| covers(&s, d)) {
                missing.push(format!("{s} ({origin})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "subjects used by the code but not in schemas/asyncapi.yaml: {missing:?}"
    );
}

#[test]
fn every_documented_subject_is_used_by_the_code() {
    let code: BTreeSet<String> = from_constants().into_iter().chain(from_sources()).collect();
    let unused: Vec<_> = documented()
        .into_iter()
        .filter(|d| !NATS_SERVICE_SUBJECTS.contains(&d.as_str()))
        .filter(|d| !code.iter().any(|s| covers(s, d)))
        .collect();
    assert!(
        unused.is_empty(),
        "schemas/asyncapi.yaml lists subjects no code uses: {unused:?}"
    );
    for s in NATS_SERVICE_SUBJECTS {
        assert!(
            documented().contains(s),
            "the NATS services subject {s} is not listed"
        );
    }
}

#[test]
fn subjects_compare_by_shape() {
    assert_eq!(shape("ledger.rpc.{service}.audit"), "ledger.rpc.*.audit");
    assert_eq!(
        shape(&format!("ledger.status.{MERCHANT}")),
        "ledger.status.*"
    );
    assert_eq!(shape("_INBOX_{user}"), "_INBOX_*");
    assert!(covers("_INBOX_*", "_INBOX_*.*"));
    assert!(covers("ledger.status.", "ledger.status.*"));
    assert!(!covers("ledger.status", "ledger.statuses.*"));
    assert!(!covers(
        "ledger.rpc.gateway.token",
        "ledger.rpc.gateway.tokens"
    ));
}

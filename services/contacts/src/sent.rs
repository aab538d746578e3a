//! No write that changes nothing: what the service last sent to each Sage contact and item.
//!
//! A store saves a registered customer again with every order (the address is saved once
//! more), and a product on every stock change; most of those saves carry nothing new for
//! Sage. Before an update (PUT) the service compares the fingerprint of the body it would
//! send ([`ledger_runtime::audit::fingerprint`]) with the one Sage last accepted for that
//! resource and id (table `sent_bodies`); when they are equal nothing is sent.
//!
//! - Every accepted write (a create too) records its body's fingerprint, so the first save
//!   after a contact was created from a document is already recognised as unchanged.
//! - A changed body is sent, and its fingerprint replaces the old one.
//! - A Sage-side deletion is never hidden: an update Sage answers with 404 forgets the
//!   fingerprint, and an item re-created under a new id has none, so the next save writes.
//! - Nothing is recorded for a dry run (its writes are refused before they are sent).

use serde_json::Value;
use sqlx::PgExecutor;

/// Sage resource name of contacts in `sent_bodies`.
pub const CONTACTS: &str = "contacts";

/// The fingerprint compared for a contact body: the body without `currency_id`, which a
/// create carries and an update never sends (a contact's currency cannot change), so a
/// create and the update of the same party compare equal.
pub fn contact_fingerprint(body: &Value) -> String {
    let mut body = body.clone();
    if let Some(obj) = body.as_object_mut() {
        obj.remove("currency_id");
    }
    ledger_runtime::audit::fingerprint(&body)
}

/// Whether Sage last accepted a body with `fingerprint` for `resource/sage_id`.
pub async fn unchanged(
    db: impl PgExecutor<'_>,
    merchant: &str,
    resource: &str,
    sage_id: &str,
    fingerprint: &str,
) -> Result<bool, sqlx::Error> {
    let last: Option<String> = sqlx::query_scalar(
        "SELECT fingerprint FROM sent_bodies WHERE merchant_id = $1 AND resource = $2 AND sage_id = $3",
    )
    .bind(merchant)
    .bind(resource)
    .bind(sage_id)
    .fetch_optional(db)
    .await?;
    Ok(last.as_deref() == Some(fingerprint))
}

/// Records that Sage accepted a body with `fingerprint` for `resource/sage_id`.
pub async fn remember(
    db: impl PgExecutor<'_>,
    merchant: &str,
    resource: &str,
    sage_id: &str,
    fingerprint: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sent_bodies (merchant_id, resource, sage_id, fingerprint) VALUES ($1, $2, $3, $4)
         ON CONFLICT (merchant_id, resource, sage_id) DO UPDATE SET fingerprint = $4, sent_at = now()",
    )
    .bind(merchant)
    .bind(resource)
    .bind(sage_id)
    .bind(fingerprint)
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets what was sent to `resource/sage_id` (Sage no longer has it), so the next save
/// writes whatever it carries.
pub async fn forget(
    db: impl PgExecutor<'_>,
    merchant: &str,
    resource: &str,
    sage_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM sent_bodies WHERE merchant_id = $1 AND resource = $2 AND sage_id = $3",
    )
    .bind(merchant)
    .bind(resource)
    .bind(sage_id)
    .execute(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_create_and_the_update_of_the_same_party_compare_equal() {
        let create = json!({"name": "Ann", "reference": "ANN-GBP", "currency_id": "GBP"});
        let update = json!({"reference": "ANN-GBP", "name": "Ann"});
        assert_eq!(contact_fingerprint(&create), contact_fingerprint(&update));
    }

    #[test]
    fn any_changed_field_changes_the_fingerprint() {
        let before = json!({"name": "Ann", "main_address": {"address_line_1": "1 High St"}});
        let after = json!({"name": "Ann", "main_address": {"address_line_1": "2 High St"}});
        assert_ne!(contact_fingerprint(&before), contact_fingerprint(&after));
    }
}

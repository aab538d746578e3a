//! The dry-run scope: inside it, every Sage write is refused before it is sent and reported as
//! what would be posted (`ledger_rpc::GatedSage`), and audited handlings write no record.
//!
//! A replay's dry run ([`crate::replay`]) runs its handlings in this scope; the audit trail
//! ([`crate::audit`]) and the Sage gate only ask whether they are in it.

/// Marker at the start of the error a refused dry-run write carries.
pub const DRY_RUN_MARKER: &str = "dry run:";

tokio::task_local! {
    static DRY_RUN: ();
}

/// Whether the current task runs a dry run (Sage writes must not be sent).
pub fn dry_run() -> bool {
    DRY_RUN.try_with(|_| ()).is_ok()
}

/// Runs `fut` as a dry run.
pub async fn dry_running<F: std::future::Future>(fut: F) -> F::Output {
    DRY_RUN.scope((), fut).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dry_run_is_scoped() {
        assert!(!dry_run());
        assert!(dry_running(async { dry_run() }).await);
        assert!(!dry_run());
    }
}

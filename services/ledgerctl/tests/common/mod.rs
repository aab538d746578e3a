//! Running the `ledgerctl` binary from the tests.

/// Runs `ledgerctl` with `args` (and extra environment); returns whether it succeeded and its
/// stdout followed by its stderr.
pub async fn ledgerctl(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ledgerctl"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

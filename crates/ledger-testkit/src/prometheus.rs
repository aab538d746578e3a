//! A private Prometheus server (Debian's `prometheus` package, installed by `./dev`) with its
//! own configuration and data directory, killed when dropped; and its HTTP query API.
//!
//! `LEDGER_PROMETHEUS_BIN` names the binary; the default is `prometheus` on `PATH`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Ports a test Prometheus may listen on (Prometheus's own range).
pub const PORTS: std::ops::RangeInclusive<u16> = 9090..=9099;

/// Finds the prometheus binary.
pub fn prometheus_bin() -> PathBuf {
    std::env::var("LEDGER_PROMETHEUS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("prometheus"))
}

/// A running Prometheus.
pub struct TestPrometheus {
    child: Child,
    port: u16,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestPrometheus {
    /// Writes `config` (prometheus.yml; it may name the rule files below by file name) and each
    /// `(file name, text)` of `files` into a fresh directory, starts Prometheus on the first free
    /// port of [`PORTS`] with its data there, and waits until it is ready.
    pub async fn start(config: &str, files: &[(&str, String)]) -> Result<Self> {
        let dir = tempfile::tempdir().context("create Prometheus dir")?;
        std::fs::write(dir.path().join("prometheus.yml"), config)?;
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text)?;
        }
        let port = PORTS
            .clone()
            .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
            .context("no free port in 9090-9099 for Prometheus")?;
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new(prometheus_bin())
            .current_dir(dir.path())
            .arg("--config.file=prometheus.yml")
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "start {} (Debian package prometheus; ./dev installs it)",
                    prometheus_bin().display()
                )
            })?;
        let prometheus = TestPrometheus {
            child,
            port,
            http: reqwest::Client::new(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = prometheus.http.get(prometheus.url("/-/ready")).send().await {
                if r.status().is_success() {
                    return Ok(prometheus);
                }
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(prometheus._dir.path().join("prometheus.log"))
                    .unwrap_or_default();
                bail!("Prometheus not ready on port {port}: {log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn api(&self, path: &str, params: &[(&str, String)]) -> Result<Value> {
        let answer: Value = self
            .http
            .get(self.url(path))
            .query(params)
            .send()
            .await?
            .json()
            .await?;
        if answer["status"] != "success" {
            bail!("Prometheus {path} {params:?}: {answer}");
        }
        Ok(answer["data"].clone())
    }

    /// Evaluates `expr` now; returns the result's series (`data.result`).
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>> {
        let data = self
            .api("/api/v1/query", &[("query", expr.to_string())])
            .await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// Evaluates `expr` at every `step` from `start` to `end` (Unix seconds), as a dashboard
    /// panel does; returns the series (`data.result`, each with its `values`).
    pub async fn query_range(
        &self,
        expr: &str,
        start: f64,
        end: f64,
        step: Duration,
    ) -> Result<Vec<Value>> {
        let data = self
            .api(
                "/api/v1/query_range",
                &[
                    ("query", expr.to_string()),
                    ("start", format!("{start:.3}")),
                    ("end", format!("{end:.3}")),
                    ("step", format!("{}ms", step.as_millis())),
                ],
            )
            .await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The rule groups as Prometheus loaded them (`/api/v1/rules`).
    pub async fn rules(&self) -> Result<Value> {
        self.api("/api/v1/rules", &[]).await
    }
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! A headless Chromium driven over WebDriver (chromedriver), for tests of the web pages.
//!
//! Only the few W3C WebDriver commands the tests use: open a URL, find elements by CSS
//! selector, type, click, read text and cookies. `chromedriver` and `chromium` come from
//! Debian's `chromium-driver` and `chromium` packages (`./dev test` installs them); set
//! `LEDGER_CHROMEDRIVER_BIN` / `LEDGER_CHROMIUM_BIN` to use others.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session, closed (and chromedriver killed) when dropped.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

/// An element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session.
    pub async fn start() -> Result<Browser> {
        let driver_bin = std::env::var("LEDGER_CHROMEDRIVER_BIN")
            .unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium_bin =
            std::env::var("LEDGER_CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
        // A port another test's chromedriver took first makes ours exit at once: try another.
        let mut attempt = 0;
        let (driver, port) = loop {
            attempt += 1;
            let port = crate::free_port();
            let mut driver = Command::new(&driver_bin)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| {
                    format!(
                        "start {driver_bin} (install chromium and chromium-driver; ./dev test does)"
                    )
                })?;
            tokio::time::sleep(Duration::from_millis(150)).await;
            match driver.try_wait() {
                Ok(Some(_)) if attempt < 5 => continue,
                Ok(Some(status)) => bail!("{driver_bin} exited at start: {status}"),
                _ => break (driver, port),
            }
        };
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            http,
        };
        let mut ready = false;
        for _ in 0..100 {
            if browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await
                .is_ok()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !ready {
            bail!("chromedriver did not answer on port {port}");
        }
        let created = browser
            .call(
                reqwest::Method::POST,
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium_bin,
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                 "--disable-dev-shm-usage", "--window-size=1200,900"],
                    },
                }}}),
            )
            .await?;
        browser.session = created["sessionId"]
            .as_str()
            .context("WebDriver session id")?
            .to_string();
        Ok(browser)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("WebDriver {method} {path}: {status} {answer}");
        }
        Ok(answer["value"].clone())
    }

    fn path(&self, tail: &str) -> String {
        format!("/session/{}{tail}", self.session)
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.call(
            reqwest::Method::POST,
            &self.path("/url"),
            json!({ "url": url }),
        )
        .await
        .map(|_| ())
    }

    /// The URL of the current page.
    pub async fn current_url(&self) -> Result<String> {
        let v = self
            .call(reqwest::Method::GET, &self.path("/url"), Value::Null)
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Elements matching a CSS selector (empty when none).
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let v = self
            .call(
                reqwest::Method::POST,
                &self.path("/elements"),
                json!({"using": "css selector", "value": css}),
            )
            .await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT_KEY].as_str().map(|id| Element(id.to_string())))
            .collect())
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, css: &str) -> Result<Element> {
        self.find_all(css)
            .await?
            .into_iter()
            .next()
            .with_context(|| format!("no element matches {css:?}"))
    }

    /// The first element matching a CSS selector, waiting up to 10 s for it to appear (a
    /// click on a submit button returns before the next page has loaded).
    pub async fn wait_for(&self, css: &str) -> Result<Element> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(found) = self.find_all(css).await?.into_iter().next() {
                return Ok(found);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no element matches {css:?} after 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `text` into an input.
    pub async fn type_into(&self, element: &Element, text: &str) -> Result<()> {
        self.call(
            reqwest::Method::POST,
            &self.path(&format!("/element/{}/value", element.0)),
            json!({ "text": text }),
        )
        .await
        .map(|_| ())
    }

    /// Empties a text field.
    pub async fn clear(&self, element: &Element) -> Result<()> {
        self.call(
            reqwest::Method::POST,
            &self.path(&format!("/element/{}/clear", element.0)),
            json!({}),
        )
        .await
        .map(|_| ())
    }

    /// Clicks an element (a submit button submits its form and the page loads).
    pub async fn click(&self, element: &Element) -> Result<()> {
        self.call(
            reqwest::Method::POST,
            &self.path(&format!("/element/{}/click", element.0)),
            json!({}),
        )
        .await
        .map(|_| ())
    }

    /// The rendered text of an element.
    pub async fn text(&self, element: &Element) -> Result<String> {
        let v = self
            .call(
                reqwest::Method::GET,
                &self.path(&format!("/element/{}/text", element.0)),
                Value::Null,
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The rendered text of the whole page.
    pub async fn page_text(&self) -> Result<String> {
        let body = self.find("body").await?;
        self.text(&body).await
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page; its return value.
    pub async fn execute(&self, script: &str, args: Value) -> Result<Value> {
        self.call(
            reqwest::Method::POST,
            &self.path("/execute/sync"),
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Saves a PNG screenshot of the current page to `path`.
    pub async fn screenshot(&self, path: &std::path::Path) -> Result<()> {
        let v = self
            .call(reqwest::Method::GET, &self.path("/screenshot"), Value::Null)
            .await?;
        let png = data_encoding::BASE64
            .decode(v.as_str().context("screenshot data")?.as_bytes())
            .context("screenshot is not base64")?;
        std::fs::write(path, png).with_context(|| format!("write {}", path.display()))
    }

    /// The value of a cookie of the current page, if set (HttpOnly ones included).
    pub async fn cookie(&self, name: &str) -> Result<Option<String>> {
        let v = self
            .call(reqwest::Method::GET, &self.path("/cookie"), Value::Null)
            .await?;
        Ok(v.as_array().into_iter().flatten().find_map(|c| {
            (c["name"] == name).then(|| c["value"].as_str().unwrap_or_default().to_string())
        }))
    }
}

impl Browser {
    /// Ends the session (Chromium exits) and stops chromedriver.
    pub async fn close(self) {
        let _ = self
            .call(reqwest::Method::DELETE, &self.path(""), Value::Null)
            .await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

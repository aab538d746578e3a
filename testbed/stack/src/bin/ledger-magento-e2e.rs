//! `ledger-magento-e2e`: a real Magento 2.4 with the module installed (`./dev magento` first)
//! against the real engine: gateway, a nats-server run with the shipped configuration (stores
//! admitted by the gateway's auth callout), the consumer services and the Sage sandbox.
//!
//! The store pairs through the merchant portal (code from `bin/magento ledger:pairing:start`,
//! entered over HTTP the way a merchant's browser does, key collected by Magento's cron), makes
//! its documents through Magento's service contracts (`magento/dev/real-e2e.php`), Magento's cron
//! publishes them, and Sage's books are compared with Magento's own rows. Then the status cron
//! fills the Sage Status column, NATS is stopped while invoices are saved, and the outbox drains
//! once it is back; commit→Sage latency is measured with the cron at its one-minute cadence and
//! with the publish straight after commit.
//!
//! Every check prints one `e2e: ...` line; the run ends with `magento-e2e: N checks ok` or exits
//! non-zero at the first failed check. Needs `LEDGER_MAGENTO_ROOT` (a Magento tree with the module
//! installed), `LEDGER_TEST_PG_URL` and a nats-server (`./dev magento-e2e` provides both).
//! `LEDGER_MAGENTO_E2E_INVOICES` sets the number of invoices per latency run (default 50).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use ledger_stack::{Merchant, Stack, StackOptions, ADMIN_TOKEN};
use ledger_testkit::browser::Browser;
use ledger_testkit::{workspace_root, TestDb, TestNats};
use rust_decimal::Decimal;
use serde_json::{json, Value};

const MERCHANT: &str = "magento-e2e";

/// The Magento tree and how its PHP is run.
struct Magento {
    root: PathBuf,
    php: String,
}

impl Magento {
    /// `php` with `allow_url_fopen` off (the module must not need it) and the development
    /// override that lets the module use the test server's plain `nats://` address.
    fn php(&self) -> Command {
        let mut command = Command::new("nice");
        command
            .args([
                "-n",
                "10",
                &self.php,
                "-d",
                "allow_url_fopen=0",
                "-d",
                "memory_limit=2G",
            ])
            .current_dir(&self.root)
            .env("LEDGER_NATS_ALLOW_PLAIN", "1");
        command
    }

    /// One command of `magento/dev/real-e2e.php`; its JSON answer.
    fn driver(&self, args: &[&str]) -> Result<Value> {
        let script = workspace_root().join("magento/dev/real-e2e.php");
        let output = self
            .php()
            .arg(&script)
            .arg(&self.root)
            .args(args)
            .output()
            .context("run php")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "real-e2e.php {args:?} exited {}: {} {}",
                output.status,
                tail(&stdout),
                tail(&String::from_utf8_lossy(&output.stderr))
            );
        }
        serde_json::from_str(stdout.trim())
            .with_context(|| format!("real-e2e.php {args:?}: not JSON: {}", tail(&stdout)))
    }

    /// One `bin/magento` command; its output (fails on a non-zero exit).
    fn bin(&self, args: &[&str]) -> Result<String> {
        let output = self
            .php()
            .arg("bin/magento")
            .args(args)
            .output()
            .context("run bin/magento")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        ensure!(
            output.status.success(),
            "bin/magento {args:?} exited {}: {}",
            output.status,
            tail(&text)
        );
        Ok(text)
    }

    /// Magento's cron for the module's group, in the group's own process as Magento starts it
    /// (`use_separate_process`), run to the end.
    fn cron(&self) -> Result<String> {
        self.bin(&[
            "cron:run",
            "--group=ledger_sage_sync",
            "--bootstrap=standaloneProcessStarted=1",
        ])
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}

fn dec(v: &Value) -> Decimal {
    ledger_stack::events::amount(v).round_dp(2)
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Counts and prints the checks.
struct Checks(usize);

impl Checks {
    fn ok(&mut self, line: String) {
        self.0 += 1;
        println!("e2e: {line}");
    }
}

/// The documents of `resource` whose reference is `reference`.
fn with_reference<'a>(docs: &'a [Value], reference: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|d| d["reference"].as_str() == Some(reference))
        .collect()
}

/// What the merchant's Sage business holds, for failure messages.
fn sage_summary(stack: &Stack, merchant: &Merchant) -> String {
    let refs = |resource: &str| -> Vec<String> {
        stack
            .documents(merchant, resource)
            .iter()
            .map(|d| {
                format!(
                    "{} {}",
                    d["reference"].as_str().unwrap_or("-"),
                    d["total_amount"]
                        .as_str()
                        .map_or_else(|| d["total_amount"].to_string(), String::from)
                )
            })
            .collect()
    };
    format!(
        "invoices {:?}, credit notes {:?}, payments {:?}, contacts {}",
        refs("sales_invoices"),
        refs("sales_credit_notes"),
        refs("contact_payments"),
        stack.documents(merchant, "contacts").len()
    )
}

/// Waits for the next wall-clock minute boundary (Magento's cron runs jobs due this minute).
async fn next_minute() {
    let into = now_secs() % 60.0;
    tokio::time::sleep(Duration::from_secs_f64(60.0 - into + 0.2)).await;
}

/// The value of `<input type="hidden" name="NAME" value="...">` in a portal page.
fn hidden(page: &str, name: &str) -> Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .with_context(|| format!("no {name} field in the portal page"))?
        + marker.len();
    let end = page[start..].find('"').context("unterminated value")? + start;
    Ok(page[start..end].to_string())
}

/// The merchant signs in to the portal with the operator's link and enters the store's code,
/// over HTTP as the browser sends it; returns the store URL the confirmation page showed.
async fn pair_in_portal(stack: &Stack, code: &str) -> Result<String> {
    let gw = &stack.gateway_url;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let link: Value = http
        .post(format!("{gw}/v1/admin/merchants/{MERCHANT}/portal-links"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let link = link["url"].as_str().context("portal link url")?;
    let page = http.get(link).send().await?.text().await?;
    let token = hidden(&page, "token")?;
    let login = http
        .post(format!("{gw}/portal/login"))
        .header("origin", gw.as_str())
        .form(&[("token", token.as_str())])
        .send()
        .await?;
    let cookie = ledger_stack::set_cookie(&login).context("no portal session cookie")?;
    let home = http
        .get(format!("{gw}/portal"))
        .header("cookie", &cookie)
        .send()
        .await?
        .text()
        .await?;
    let csrf = hidden(&home, "csrf")?;
    // A form of the signed-in portal, posted as the browser posts it.
    let post = |path: &str| {
        http.post(format!("{gw}{path}"))
            .header("cookie", &cookie)
            .header("origin", gw.as_str())
            .form(&[("csrf", csrf.as_str()), ("code", code)])
            .send()
    };
    let preview = post("/portal/pair").await?.text().await?;
    let marker = "<td id=\"store-url\">";
    let at = preview
        .find(marker)
        .with_context(|| format!("the portal did not show the store: {}", tail(&preview)))?
        + marker.len();
    let store_url = preview[at..preview[at..].find('<').unwrap_or(0) + at].replace("&#x2F;", "/");
    let confirmed = post("/portal/pair/confirm").await?;
    let location = confirmed
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    ensure!(
        location.ends_with("notice=paired"),
        "the portal did not pair: {location}"
    );
    Ok(store_url)
}

/// Records when each invoice reference is first seen in the merchant's Sage business.
fn watch_invoices(
    stack: &Arc<Stack>,
    merchant: &Merchant,
) -> (
    Arc<Mutex<HashMap<String, f64>>>,
    tokio::task::JoinHandle<()>,
) {
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let (stack, merchant, out) = (stack.clone(), merchant.clone(), seen.clone());
    let task = tokio::spawn(async move {
        loop {
            let now = now_secs();
            for doc in stack.documents(&merchant, "sales_invoices") {
                if let Some(reference) = doc["reference"].as_str() {
                    out.lock()
                        .expect("watch lock")
                        .entry(reference.to_string())
                        .or_insert(now);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (seen, task)
}

/// p50 and p99 (nearest rank) of `values`.
fn percentiles(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = |p: f64| {
        let i = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
        values[i - 1]
    };
    (rank(0.50), rank(0.99))
}

/// Commit→Sage latency of invoices made by the driver's `invoices` command, from the watch.
fn latencies(made: &Value, seen: &HashMap<String, f64>) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for invoice in made["invoices"].as_array().context("invoices")? {
        let reference = invoice["increment_id"].as_str().context("increment_id")?;
        let committed = invoice["committed_at"].as_f64().context("committed_at")?;
        let landed = seen
            .get(reference)
            .with_context(|| format!("invoice {reference} never reached Sage"))?;
        out.push((landed - committed).max(0.0));
    }
    Ok(out)
}

/// Polls a script in the page until it returns true, up to `secs` seconds.
async fn until(browser: &Browser, script: &str, secs: u64, what: &str) -> Result<()> {
    let started = Instant::now();
    loop {
        if browser.execute(script, json!([])).await.ok() == Some(Value::Bool(true)) {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(secs) {
            bail!("{what}: not seen within {secs} s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The invoice grid's rows as (increment id, chip text, chip tooltip), in display order.
const GRID_ROWS: &str = "return Array.from(document.querySelectorAll('tr.data-row')).map(function (r) {
    var chip = r.querySelector('.ledger-sage-chip') || {};
    var cells = Array.from(r.querySelectorAll('td')).map(function (c) { return c.textContent.trim(); });
    return {cells: cells, chip: (chip.textContent || '').trim(), title: chip.title || ''};
});";

/// Clicks the Sage Status header and waits until the header shows a new sort direction (Magento's
/// `_ascend` / `_descend`) and the grid's rows are ordered by status that way; returns whether
/// ascending, and the statuses in display order (each once).
async fn sort_by_status(browser: &Browser) -> Result<(bool, Vec<String>)> {
    const HEADER: &str =
        "var th = Array.from(document.querySelectorAll('th.data-grid-th')).find(function (t) {
        return t.textContent.trim() === 'Sage Status'; });";
    let rank = |chip: &str| {
        ["Not sent", "Failed", "Pending", "Skipped", "Synced"]
            .iter()
            .position(|l| *l == chip)
    };
    let direction = format!(
        "{HEADER} return th.classList.contains('_ascend') ? 'asc' : (th.classList.contains('_descend') ? 'desc' : '');"
    );
    let before = browser.execute(&direction, json!([])).await?;
    browser
        .execute(&format!("{HEADER} th.click(); return true;"), json!([]))
        .await?;
    let mut order = Vec::new();
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = browser.execute(&direction, json!([])).await?;
        if now == before || now == "" {
            continue;
        }
        let ascending = now == "asc";
        let rows = browser.execute(GRID_ROWS, json!([])).await?;
        order = rows
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|r| r["chip"].as_str().unwrap_or("").to_string())
            .collect();
        let ranks: Vec<Option<usize>> = order.iter().map(|c| rank(c)).collect();
        let ordered = ranks.iter().all(Option::is_some)
            && ranks.windows(2).all(|w| {
                if ascending {
                    w[0] <= w[1]
                } else {
                    w[0] >= w[1]
                }
            });
        if ordered && !order.is_empty() {
            let mut distinct = order.clone();
            distinct.dedup();
            return Ok((ascending, distinct));
        }
    }
    bail!("sorting by Sage Status did not order the rows: {order:?}")
}

/// What one sales grid must show.
struct GridExpectations<'a> {
    /// What the grid lists, for messages ("invoice", "credit memo").
    what: &'static str,
    /// Admin path of the grid, after `index.php/admin/`.
    path: &'static str,
    /// File name stem of its screenshots.
    shot: &'static str,
    /// (increment id, chip label, tooltip text it must contain) of documents on the first page.
    rows: Vec<(&'a str, &'a str, String)>,
}

/// What the admin pages must show.
struct AdminExpectations<'a> {
    /// The invoice grid and the credit-memo grid.
    grids: [GridExpectations<'a>; 2],
    /// Entity id of a synced invoice and the Sage number its view must show.
    synced_invoice: (i64, String),
    /// (document label as the banner writes it, increment id, reason prefix) of every document
    /// Sage refused, which the configuration banner must name.
    refused: Vec<(&'static str, &'a str, String)>,
}

/// Waits until a grid shows only *Failed* chips (at least one) and a row with `reference`.
async fn until_only_failed(browser: &Browser, reference: &str, what: &str) -> Result<()> {
    until(
        browser,
        &format!(
            "var c = Array.from(document.querySelectorAll('tr.data-row .ledger-sage-chip'));
             var cells = Array.from(document.querySelectorAll('tr.data-row td'));
             return c.length > 0 && c.every(function (x) {{ return x.textContent.trim() === 'Failed'; }})
                 && ('{reference}' === '' || cells.some(function (x) {{ return x.textContent.trim() === '{reference}'; }}));"
        ),
        60,
        what,
    )
    .await
}

/// One sales grid in the browser: its Sage Status chips and tooltips, sorting both ways by the
/// column, the select filter's labelled options and filtering by Failed. Returns the check lines.
async fn grid_checks(
    browser: &Browser,
    base: &str,
    shots: &std::path::Path,
    grid: &GridExpectations<'_>,
) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    let what = grid.what;
    // Knockout; Magento builds its static files on first use.
    browser
        .goto(&format!("{base}index.php/admin/{}", grid.path))
        .await?;
    until(
        browser,
        "return document.querySelectorAll('tr.data-row .ledger-sage-chip').length > 0",
        600,
        &format!("Sage Status chips on the {what} grid"),
    )
    .await?;
    // 200 rows a page (the throwaway store keeps earlier runs' documents), through the grid's
    // own paging component.
    let first = grid.rows.first().map_or("", |i| i.0);
    until(
        browser,
        "var r = require('uiRegistry'); var p = r && r.get('index = listing_paging');
         if (!p) { return false; } if (p.pageSize !== 200) { p.pageSize = 200; } return true;",
        60,
        "the grid's paging",
    )
    .await?;
    until(
        browser,
        &format!(
            "return Array.from(document.querySelectorAll('tr.data-row td')).some(function (c) {{
                return c.textContent.trim() === '{first}'; }});"
        ),
        120,
        &format!("this run's documents on the {what} grid"),
    )
    .await?;
    browser
        .screenshot(&shots.join(format!("{}.png", grid.shot)))
        .await?;
    let rows = browser.execute(GRID_ROWS, json!([])).await?;
    let rows = rows.as_array().cloned().unwrap_or_default();
    let find_row = |reference: &str| {
        rows.iter().find(|r| {
            r["cells"]
                .as_array()
                .is_some_and(|cells| cells.iter().any(|c| c.as_str() == Some(reference)))
        })
    };
    for (reference, label, tooltip) in &grid.rows {
        let row = find_row(reference)
            .with_context(|| format!("{what} {reference} is not on the grid's first page"))?;
        ensure!(
            row["chip"] == *label
                && row["title"]
                    .as_str()
                    .is_some_and(|t| t.contains(tooltip.as_str())),
            "{what} {reference}: chip {} tooltip {} (expected {label} / {tooltip})",
            row["chip"],
            row["title"]
        );
        lines.push(format!(
            "{what} grid: {reference} chip \"{label}\" tooltip \"{}\"",
            row["title"].as_str().unwrap_or("")
        ));
    }

    // Sorting by Sage Status: a click on the header orders the rows by status, the next click
    // the other way (Magento remembers the admin's last sort, so the first may be either).
    let first = sort_by_status(browser).await?;
    browser
        .screenshot(&shots.join(format!("{}-sorted.png", grid.shot)))
        .await?;
    let second = sort_by_status(browser).await?;
    ensure!(
        first.0 != second.0 && (first.1.len() > 1 || second.1.len() > 1),
        "two clicks on Sage Status did not sort the {what} grid both ways: {:?} then {:?}",
        first.1,
        second.1
    );
    for (ascending, order) in [first, second] {
        lines.push(format!(
            "{what} grid sorted by Sage Status: {}",
            order.join(if ascending { " < " } else { " > " })
        ));
    }

    // Filtering: the select filter's options carry labels; Failed keeps only failed rows.
    let options = browser
        .execute(
            "var b = document.querySelector('[data-action=\"grid-filter-expand\"]'); if (b) { b.click(); }
             var s = document.querySelector('select[name=\"sage_status\"]');
             if (!s) { return null; }
             return Array.from(s.options).filter(function (o) { return o.value !== ''; })
                 .map(function (o) { return o.value + '=' + o.textContent.trim(); });",
            json!([]),
        )
        .await?;
    let options: Vec<String> = options
        .as_array()
        .with_context(|| format!("no Sage Status select in the {what} grid's filters"))?
        .iter()
        .filter_map(|o| o.as_str().map(String::from))
        .collect();
    ensure!(
        options
            == [
                "pending=Pending",
                "synced=Synced",
                "skipped=Skipped",
                "failed=Failed"
            ],
        "{what} grid filter options: {options:?}"
    );
    browser
        .execute(
            "var s = document.querySelector('select[name=\"sage_status\"]'); s.value = 'failed';
             s.dispatchEvent(new Event('change', {bubbles: true}));
             document.querySelector('[data-action=\"grid-filter-apply\"]').click(); return true;",
            json!([]),
        )
        .await?;
    until_only_failed(browser, "", &format!("only Failed rows on the {what} grid")).await?;
    browser
        .screenshot(&shots.join(format!("{}-failed.png", grid.shot)))
        .await?;
    let failed_rows = browser
        .execute(GRID_ROWS, json!([]))
        .await?
        .as_array()
        .map_or(0, Vec::len);
    lines.push(format!(
        "{what} grid filter options {}; filter Failed shows {failed_rows} row(s), all Failed",
        options.join(", ")
    ));
    clear_filters(browser).await?;
    Ok(lines)
}

/// Takes the grid's filters off, so the next visit shows every row.
async fn clear_filters(browser: &Browser) -> Result<()> {
    browser
        .execute(
            "var c = document.querySelector('.admin__current-filters-actions-wrap .action-clear'); if (c) { c.click(); } return true;",
            json!([]),
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

/// The admin pages in headless Chromium, logged in as the test admin: the invoice and
/// credit-memo grids ([`grid_checks`]), the invoice view's Sage block, and the configuration
/// page's banner naming the documents Sage refused, whose link opens the invoice grid filtered
/// by Failed. Screenshots go to `shots`.
async fn admin_pages(
    base: &str,
    shots: &std::path::Path,
    expect: &AdminExpectations<'_>,
) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    std::fs::create_dir_all(shots)?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{base}index.php/admin/")).await?;
    until(
        &browser,
        "return !!document.querySelector('#username')",
        120,
        "admin login form",
    )
    .await?;
    browser
        .type_into(&browser.find("#username").await?, "admin")
        .await?;
    browser
        .type_into(&browser.find("#login").await?, "ledger-admin-1")
        .await?;
    browser.click(&browser.find(".action-login").await?).await?;
    until(
        &browser,
        "return !!document.querySelector('#menu-magento-backend-dashboard, .admin__menu')",
        120,
        "admin dashboard",
    )
    .await?;

    for grid in &expect.grids {
        lines.extend(grid_checks(&browser, base, shots, grid).await?);
    }

    // The invoice view: the Sage block inside Order Information.
    let (id, sage_number) = &expect.synced_invoice;
    browser
        .goto(&format!(
            "{base}index.php/admin/sales/invoice/view/invoice_id/{id}/"
        ))
        .await?;
    until(
        &browser,
        "return !!document.querySelector('.ledger-sage-sync-info')",
        120,
        "the invoice view's Sage block",
    )
    .await?;
    let block = browser
        .execute(
            "var r = document.querySelector('.ledger-sage-sync-info');
             return r.textContent.replace(/\\s+/g, ' ').trim() + ' | ' +
                 (r.nextElementSibling ? r.nextElementSibling.textContent.replace(/\\s+/g, ' ').trim() : '');",
            json!([]),
        )
        .await?;
    let block = block.as_str().unwrap_or("").to_string();
    browser.screenshot(&shots.join("invoice-view.png")).await?;
    ensure!(
        block.contains("Synced") && block.contains(sage_number.as_str()),
        "invoice view shows {block:?}, expected Synced and {sage_number}"
    );
    lines.push(format!("invoice view: {block}"));

    // The configuration page's banner: configured, nothing waiting, and the documents Sage
    // refused (from Ledger's status feed) named with their reasons.
    browser
        .goto(&format!(
            "{base}index.php/admin/admin/system_config/edit/section/ledger_sage_sync/"
        ))
        .await?;
    until(
        &browser,
        "return !!document.querySelector('.ledger-sage-sync-banner')",
        120,
        "the configuration banner",
    )
    .await?;
    let banner = browser
        .execute("return document.querySelector('.ledger-sage-sync-banner').textContent.replace(/\\s+/g, ' ').trim();", json!([]))
        .await?;
    browser.screenshot(&shots.join("config-banner.png")).await?;
    let banner = banner.as_str().unwrap_or("").to_string();
    ensure!(
        banner.contains("Ledger Sage Sync is configured.") && banner.contains("Outbox: 0 waiting"),
        "configuration banner: {banner}"
    );
    let count = format!(
        "Sage refused {} document(s): their Sage Status is Failed.",
        expect.refused.len()
    );
    ensure!(
        banner.contains(&count),
        "configuration banner does not say \"{count}\": {banner}"
    );
    for (label, reference, reason) in &expect.refused {
        let named = format!("{label} {reference} (");
        let at = banner
            .find(&named)
            .with_context(|| format!("configuration banner does not name {named}: {banner}"))?;
        let item = &banner[at..];
        ensure!(
            item.split_once("UTC): ")
                .is_some_and(|(_, text)| text.starts_with(reason.as_str())),
            "configuration banner: {label} {reference} without its reason \"{reason}\": {banner}"
        );
    }
    lines.push(format!("configuration banner: {banner}"));
    // Its link opens the invoice grid showing only Failed rows, the refused invoice among them.
    let (_, refused_invoice, _) = expect
        .refused
        .iter()
        .find(|r| r.0 == "Invoice")
        .context("no refused invoice expected")?;
    let href = browser
        .execute(
            "var a = document.querySelector('a.ledger-sage-sync-failed-invoices'); if (!a) { return null; } a.click(); return a.getAttribute('href');",
            json!([]),
        )
        .await?;
    let href = href
        .as_str()
        .context("no Failed invoices link in the banner")?
        .to_string();
    until_only_failed(
        &browser,
        refused_invoice,
        "the banner's link: invoice grid with Failed rows only",
    )
    .await?;
    browser
        .screenshot(&shots.join("banner-link-failed-invoices.png"))
        .await?;
    let shown = browser
        .execute(GRID_ROWS, json!([]))
        .await?
        .as_array()
        .map_or(0, Vec::len);
    lines.push(format!(
        "banner link {href} opens the invoice grid filtered by Failed: {shown} row(s), all Failed, {refused_invoice} among them"
    ));
    clear_filters(&browser).await?;
    browser.close().await;
    Ok(lines)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<()> {
    let root = std::env::var("LEDGER_MAGENTO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("../magento-root"));
    ensure!(
        root.join("bin/magento").is_file() && root.join("app/etc/env.php").is_file(),
        "no installed Magento at {} (run ./dev magento first)",
        root.display()
    );
    let magento = Magento {
        root,
        php: std::env::var("PHP_BIN").unwrap_or_else(|_| "php".into()),
    };
    let latency_count: usize = std::env::var("LEDGER_MAGENTO_E2E_INVOICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let mut checks = Checks(0);

    // The refusal in step 5 changes a setting mid-run: services read settings afresh each second.
    if std::env::var("LEDGER_SETTINGS_TTL_SECS").is_err() {
        std::env::set_var("LEDGER_SETTINGS_TTL_SECS", "1");
    }
    let mut nats = TestNats::start_secured().await?;
    let db = TestDb::create().await?;
    let options = StackOptions::secured(&nats, db.url(), 300);
    let stack = Arc::new(Stack::start(options).await?);
    let merchant = stack.onboard(MERCHANT).await?;
    // Vanilla Magento has no online gateway that works offline: the store's check / money order
    // stands in for a card captured at invoice (its receipt is posted and allocated); purchase
    // order stays on net terms (paid later).
    stack
        .put_settings(
            &merchant,
            json!({"prepaid_offline_methods": ["banktransfer", "cashondelivery"]}),
        )
        .await?;

    // The store, ready and unpaired; nothing of earlier runs waiting.
    magento.driver(&["setup", &stack.gateway_url])?;
    magento.driver(&["reset"])?;

    // 1. Pairing: Magento asks for a code; the merchant enters it in the portal; Magento's
    //    cron collects the key.
    let started = magento.bin(&["ledger:pairing:start"])?;
    let code = started
        .lines()
        .next()
        .map(str::trim)
        .filter(|c| c.len() == 9 && c.as_bytes()[4] == b'-')
        .with_context(|| format!("no pairing code printed: {started}"))?
        .to_string();
    let store_url = pair_in_portal(&stack, &code).await?;
    magento.cron()?;
    let status = magento.bin(&["ledger:pairing:status"])?;
    ensure!(
        status.contains(MERCHANT),
        "the cron did not collect the key: {status}"
    );
    checks.ok(format!(
        "paired: code {code} from bin/magento ledger:pairing:start entered in the portal (store {store_url}), key collected by cron ledger_sage_sync_pairing"
    ));

    // Magento's cron publishes these documents (the publish after commit is measured in 8).
    magento.driver(&["config", "ledger_sage_sync/relay/flush_after_commit", "0"])?;

    // 2. The documents, through Magento's service contracts.
    let docs = magento.driver(&["documents"])?;
    let orders = &docs["orders"];
    let outbox_rows = docs["outbox"].as_array().map_or(0, Vec::len);
    checks.ok(format!(
        "Magento made orders a {} (2 VAT rates, item discount, taxed shipping), po {} (purchase order), guest {}, eur {} ({} {}), free {}; credit memo {}; {outbox_rows} outbox rows",
        orders["a"]["increment_id"],
        orders["po"]["increment_id"],
        orders["guest"]["increment_id"],
        orders["eur"]["increment_id"],
        orders["eur"]["grand_total"],
        orders["eur"]["currency"],
        orders["free"]["increment_id"],
        orders["a"]["creditmemos"][0]["increment_id"],
    ));
    ensure!(
        orders["a"]["tax_percents"].as_array().map_or(0, Vec::len) == 2,
        "order a has not two VAT rates: {}",
        orders["a"]
    );

    // 3. Magento's cron publishes the outbox (next minute: the publish job is due once a minute).
    next_minute().await;
    let cron_started = Instant::now();
    magento.cron()?;
    let outbox = magento.driver(&["outbox"])?;
    let waiting = outbox["counts"]["pending"].as_i64().unwrap_or(-1)
        + outbox["counts"]["retry"].as_i64().unwrap_or(-1);
    ensure!(
        waiting == 0,
        "the cron left events waiting: {}",
        outbox["counts"]
    );
    checks.ok(format!(
        "cron:run --group=ledger_sage_sync published the outbox in {:.1} s: {} waiting, {} dead",
        cron_started.elapsed().as_secs_f64(),
        waiting,
        outbox["dead"]
    ));

    // 4. Sage against Magento's own rows.
    let paid_keys = ["a", "guest", "eur"];
    let expected_invoices = ["a", "po", "guest", "eur"];
    let arrived = stack
        .wait_until(Duration::from_secs(60), || {
            let invoices = stack.documents(&merchant, "sales_invoices");
            let payments = stack.documents(&merchant, "contact_payments");
            expected_invoices.iter().all(|k| {
                !with_reference(
                    &invoices,
                    orders[k]["invoices"][0]["increment_id"]
                        .as_str()
                        .unwrap_or("?"),
                )
                .is_empty()
            }) && !stack.documents(&merchant, "sales_credit_notes").is_empty()
                && payments
                    .iter()
                    .filter(|p| p["transaction_type"]["id"] == "CUSTOMER_RECEIPT")
                    .count()
                    >= paid_keys.len()
        })
        .await;
    if !arrived {
        let mut dead = Vec::new();
        for service in ["contacts", "documents", "payments"] {
            let letters = stack.wait_for_dead_letters(service, MERCHANT).await?;
            dead.extend(letters.iter().map(|d| format!("{service}: {d:?}")));
        }
        bail!(
            "not every document reached Sage within 60 s: {}; dead letters: {dead:#?}",
            sage_summary(&stack, &merchant)
        );
    }
    // Let late duplicates, if any, arrive before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let invoices = stack.documents(&merchant, "sales_invoices");
    let payments = stack.documents(&merchant, "contact_payments");
    let notes = stack.documents(&merchant, "sales_credit_notes");
    for key in expected_invoices {
        let row = &orders[key]["invoices"][0];
        let reference = row["increment_id"].as_str().context("increment_id")?;
        let found = with_reference(&invoices, reference);
        ensure!(
            found.len() == 1,
            "invoice {reference} is in Sage {} times",
            found.len()
        );
        let sage = found[0];
        let expected = dec(&row["grand_total"]);
        let currency = sage["currency"]["id"].as_str().unwrap_or("GBP");
        ensure!(
            currency == orders[key]["currency"].as_str().unwrap_or("?"),
            "invoice {reference}: Sage currency {currency}, Magento {}",
            orders[key]["currency"]
        );
        ensure!(
            dec(&sage["total_amount"]) == expected,
            "invoice {reference}: Sage total {} {currency}, Magento grand total {expected}",
            sage["total_amount"]
        );
        let allocated: Decimal = payments
            .iter()
            .filter(|p| p["transaction_type"]["id"] == "CUSTOMER_RECEIPT")
            .flat_map(|p| {
                p["allocated_artefacts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|a| a["artefact"]["id"] == sage["id"])
            .map(|a| dec(&a["amount"]))
            .sum();
        if paid_keys.contains(&key) {
            ensure!(
                allocated == expected,
                "invoice {reference}: payment allocated {allocated}, grand total {expected}"
            );
        } else {
            ensure!(
                allocated.is_zero() && dec(&sage["outstanding_amount"]) == expected,
                "net-terms invoice {reference}: allocated {allocated}, outstanding {}",
                sage["outstanding_amount"]
            );
        }
        checks.ok(format!(
            "invoice {reference} ({key}) once in Sage, total {} {currency} = Magento grand total{}",
            dec(&sage["total_amount"]),
            if paid_keys.contains(&key) {
                format!(", receipt {allocated} allocated")
            } else {
                format!(", unpaid: outstanding {}", dec(&sage["outstanding_amount"]))
            }
        ));
    }
    let memo = &orders["a"]["creditmemos"][0];
    let memo_reference = format!(
        "{}/{}",
        memo["increment_id"].as_str().unwrap_or("?"),
        orders["a"]["invoices"][0]["increment_id"]
            .as_str()
            .unwrap_or("?")
    );
    let found = with_reference(&notes, &memo_reference);
    ensure!(
        found.len() == 1,
        "credit note {memo_reference} is in Sage {} times",
        found.len()
    );
    ensure!(
        dec(&found[0]["total_amount"]) == dec(&memo["grand_total"]),
        "credit note {memo_reference}: Sage {} Magento {}",
        found[0]["total_amount"],
        memo["grand_total"]
    );
    let invoice_a = with_reference(
        &invoices,
        orders["a"]["invoices"][0]["increment_id"]
            .as_str()
            .unwrap_or("?"),
    )[0];
    ensure!(
        found[0]["original_invoice_date"] == invoice_a["date"],
        "credit note {memo_reference} is not linked to its invoice"
    );
    checks.ok(format!(
        "credit note {memo_reference} once in Sage, total {} = Magento grand total (adjustment fee {}), linked to invoice {}",
        dec(&found[0]["total_amount"]),
        dec(&memo["adjustment_negative"]),
        orders["a"]["invoices"][0]["increment_id"].as_str().unwrap_or("?")
    ));
    let free_reference = orders["free"]["invoices"][0]["increment_id"]
        .as_str()
        .unwrap_or("?");
    ensure!(
        with_reference(&invoices, free_reference).is_empty(),
        "the 0.00 invoice {free_reference} was posted to Sage"
    );

    // 5. Two documents refused on purpose: Sage does not know the sales ledger account, so it
    //    refuses one more invoice and a credit memo of the guest order (its invoice is in Sage).
    let real_account = stack.break_sales_ledger_account(&merchant).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let refused = magento.driver(&["invoices", "1"])?;
    let refused_reference = refused["invoices"][0]["increment_id"]
        .as_str()
        .context("refused invoice")?
        .to_string();
    let guest_order = orders["guest"]["id"].to_string();
    let refused_memo = magento.driver(&["refund", &guest_order])?;
    let refused_memo_reference = refused_memo["increment_id"]
        .as_str()
        .context("refused credit memo")?
        .to_string();
    magento.bin(&["ledger:outbox:publish"])?;
    let mut dead = Vec::new();
    for _ in 0..8 {
        dead = stack.wait_for_dead_letters("documents", MERCHANT).await?;
        if dead.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    ensure!(
        dead.len() >= 2,
        "Sage did not refuse invoice {refused_reference} and credit memo {refused_memo_reference} ({} dead letters): {}",
        dead.len(),
        sage_summary(&stack, &merchant)
    );
    stack
        .put_settings(&merchant, json!({"sales_ledger_account_id": real_account}))
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 6. The status cron fills the Sage Status column.
    let mut statuses;
    let settled = {
        let started = Instant::now();
        loop {
            statuses = magento.driver(&["status"])?;
            let rows = statuses["invoice"].as_array().cloned().unwrap_or_default();
            let by_ref = |r: &str| {
                rows.iter()
                    .find(|row| row["increment_id"].as_str() == Some(r))
                    .and_then(|row| row["sage_status"].as_str().map(String::from))
            };
            let ours_done = expected_invoices
                .iter()
                .map(|k| {
                    orders[k]["invoices"][0]["increment_id"]
                        .as_str()
                        .unwrap_or("?")
                })
                .chain([free_reference, refused_reference.as_str()])
                .all(|r| by_ref(r).is_some_and(|s| s != "pending"))
                && statuses["creditmemo"].as_array().is_some_and(|rows| {
                    rows.iter().any(|row| {
                        row["increment_id"].as_str() == Some(refused_memo_reference.as_str())
                            && row["sage_status"].as_str().is_some_and(|s| s != "pending")
                    })
                });
            if ours_done || started.elapsed() > Duration::from_secs(90) {
                break ours_done;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    };
    ensure!(
        settled,
        "the status cron left documents pending: {statuses}"
    );
    let status_of = |kind: &str, reference: &str| -> (String, String) {
        statuses[kind]
            .as_array()
            .and_then(|rows| {
                rows.iter()
                    .find(|r| r["increment_id"].as_str() == Some(reference))
            })
            .map(|r| {
                (
                    r["sage_status"].as_str().unwrap_or("").to_string(),
                    r["sage_status_message"].as_str().unwrap_or("").to_string(),
                )
            })
            .unwrap_or_default()
    };
    for key in expected_invoices {
        let reference = orders[key]["invoices"][0]["increment_id"]
            .as_str()
            .unwrap_or("?");
        let (status, message) = status_of("invoice", reference);
        ensure!(
            status == "synced",
            "invoice {reference}: grid says {status} ({message})"
        );
    }
    let memo_id = memo["increment_id"].as_str().unwrap_or("?");
    let (memo_status, memo_message) = status_of("creditmemo", memo_id);
    ensure!(
        memo_status == "synced",
        "credit memo {memo_id}: {memo_status} ({memo_message})"
    );
    let (free_status, free_message) = status_of("invoice", free_reference);
    ensure!(
        free_status == "skipped" && free_message.contains("0.00"),
        "0.00 invoice {free_reference}: {free_status} ({free_message})"
    );
    let (refused_status, refused_message) = status_of("invoice", &refused_reference);
    ensure!(
        refused_status == "failed" && !refused_message.is_empty(),
        "refused invoice {refused_reference}: {refused_status} ({refused_message})"
    );
    let (refused_memo_status, refused_memo_message) =
        status_of("creditmemo", &refused_memo_reference);
    ensure!(
        refused_memo_status == "failed" && !refused_memo_message.is_empty(),
        "refused credit memo {refused_memo_reference}: {refused_memo_status} ({refused_memo_message})"
    );
    checks.ok(format!(
        "status cron: 4 invoices and credit memo {memo_id} Synced; 0.00 invoice {free_reference} Skipped (\"{free_message}\"); refused invoice {refused_reference} Failed (\"{refused_message}\"); refused credit memo {refused_memo_reference} Failed (\"{refused_memo_message}\")"
    ));

    // 6b. The admin pages in headless Chromium, Magento served by PHP's web server with
    //     Magento's router at the store's base URL.
    let base =
        std::env::var("LEDGER_MAGENTO_URL").unwrap_or_else(|_| "http://127.0.0.1:8082/".into());
    let listen = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut server = Command::new(&magento.php)
        .args(["-S", &listen, "-t", "pub/", "phpserver/router.php"])
        .current_dir(&magento.root)
        .env("LEDGER_NATS_ALLOW_PLAIN", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("start php -S for the admin pages")?;
    let synced_reference = orders["a"]["invoices"][0]["increment_id"]
        .as_str()
        .unwrap_or("?");
    let (_, synced_message) = status_of("invoice", synced_reference);
    let sage_ref = statuses["invoice"]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| r["increment_id"].as_str() == Some(synced_reference))
        })
        .and_then(|r| r["sage_ref"].as_str().map(String::from))
        .unwrap_or_default();
    ensure!(
        !sage_ref.is_empty(),
        "no Sage reference stored for invoice {synced_reference}"
    );
    let (_, memo_message) = status_of("creditmemo", memo_id);
    let prefix = |message: &str| -> String { message.chars().take(40).collect() };
    let expect = AdminExpectations {
        grids: [
            GridExpectations {
                what: "invoice",
                path: "sales/invoice/",
                shot: "invoice-grid",
                rows: vec![
                    (
                        synced_reference,
                        "Synced",
                        if synced_message.is_empty() {
                            "Synced".to_string()
                        } else {
                            synced_message.clone()
                        },
                    ),
                    (free_reference, "Skipped", "0.00".to_string()),
                    (
                        refused_reference.as_str(),
                        "Failed",
                        prefix(&refused_message),
                    ),
                ],
            },
            GridExpectations {
                what: "credit memo",
                path: "sales/creditmemo/",
                shot: "creditmemo-grid",
                rows: vec![
                    (
                        memo_id,
                        "Synced",
                        if memo_message.is_empty() {
                            "Synced".to_string()
                        } else {
                            prefix(&memo_message)
                        },
                    ),
                    (
                        refused_memo_reference.as_str(),
                        "Failed",
                        prefix(&refused_memo_message),
                    ),
                ],
            },
        ],
        refused: vec![
            (
                "Invoice",
                refused_reference.as_str(),
                prefix(&refused_message),
            ),
            (
                "Credit memo",
                refused_memo_reference.as_str(),
                prefix(&refused_memo_message),
            ),
        ],
        synced_invoice: (
            orders["a"]["invoices"][0]["id"].as_i64().unwrap_or(0),
            sage_ref.clone(),
        ),
    };
    let shots = workspace_root().join("target/magento");
    let pages = admin_pages(&base, &shots, &expect).await;
    let _ = server.kill();
    let _ = server.wait();
    for line in pages? {
        checks.ok(format!("admin (Chromium): {line}"));
    }

    // 7. Outage: the engine's nats-server stopped (SIGKILL) and the gateway stopped, with the
    //    publish after commit on (the save path that touches the network): invoice saves go on,
    //    the outbox takes them, nothing reaches Sage. Then the server starts again on the same
    //    port and JetStream store, the gateway starts again, the services reconnect by
    //    themselves, and Magento's cron drains the outbox, each event once.
    let last_before = magento.driver(&["outbox"])?["rows"]
        .as_array()
        .and_then(|rows| rows.last().cloned())
        .and_then(|row| row["id"].as_str().and_then(|id| id.parse::<i64>().ok()))
        .unwrap_or(0);
    magento.driver(&["config", "ledger_sage_sync/relay/flush_after_commit", "1"])?;
    magento.driver(&["unpause"])?;
    stack.stop_gateway().await?;
    nats.stop();
    let before = stack.documents(&merchant, "sales_invoices").len();
    let count = latency_count.to_string();
    let outage = magento.driver(&["invoices", &count])?;
    let outage_rows = outage["invoices"].as_array().context("outage invoices")?;
    let outage_refs: Vec<String> = outage_rows
        .iter()
        .filter_map(|i| i["increment_id"].as_str().map(String::from))
        .collect();
    ensure!(
        outage_refs.len() == latency_count,
        "not every invoice was saved during the outage"
    );
    let (save_p50, save_p99) = percentiles(
        outage_rows
            .iter()
            .filter_map(|i| i["save_ms"].as_f64())
            .collect(),
    );
    let waiting_during = magento.driver(&["outbox"])?["counts"].clone();
    ensure!(
        stack.documents(&merchant, "sales_invoices").len() == before,
        "an invoice reached Sage while nats-server was stopped"
    );
    nats.start_again().await?;
    stack.start_gateway().await?;
    // Magento's cron, once a minute, until the outbox is drained and Sage holds every invoice:
    // the row that met the outage waits out its one-minute backoff, so two runs are expected.
    let mut drain_runs = 0;
    let mut drained = false;
    while !drained && drain_runs < 5 {
        next_minute().await;
        magento.cron()?;
        drain_runs += 1;
        let open = magento.driver(&["outbox"])?["counts"].clone();
        let empty = open["pending"].as_i64() == Some(0) && open["retry"].as_i64() == Some(0);
        drained = empty
            && stack
                .wait_until(Duration::from_secs(40), || {
                    let invoices = stack.documents(&merchant, "sales_invoices");
                    outage_refs
                        .iter()
                        .all(|r| with_reference(&invoices, r).len() == 1)
                })
                .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let invoices = stack.documents(&merchant, "sales_invoices");
    let doubled = outage_refs
        .iter()
        .filter(|r| with_reference(&invoices, r).len() > 1)
        .count();
    let missing = outage_refs
        .iter()
        .filter(|r| with_reference(&invoices, r).is_empty())
        .count();
    let rows = magento.driver(&["outbox"])?;
    let outage_events: Vec<&Value> = rows["rows"]
        .as_array()
        .context("outbox rows")?
        .iter()
        .filter(|r| {
            r["id"]
                .as_str()
                .and_then(|id| id.parse::<i64>().ok())
                .is_some_and(|id| id > last_before)
        })
        .collect();
    let unpublished = outage_events
        .iter()
        .filter(|r| r["status"] != "published")
        .count();
    // Each document's events in the order they were recorded (created before paid).
    let mut by_entity: HashMap<String, Vec<&str>> = HashMap::new();
    for row in &outage_events {
        by_entity
            .entry(format!(
                "{}:{}",
                row["entity_type"].as_str().unwrap_or(""),
                row["entity_id"].as_str().unwrap_or("")
            ))
            .or_default()
            .push(row["published_at"].as_str().unwrap_or(""));
    }
    let in_order = by_entity
        .values()
        .all(|times| times.windows(2).all(|w| w[0] <= w[1]));
    ensure!(
        drained && doubled == 0 && missing == 0 && unpublished == 0 && in_order,
        "outage drain: drained={drained} doubled={doubled} missing={missing} unpublished={unpublished} in_order={in_order}"
    );
    checks.ok(format!(
        "outage drain: {latency_count} invoices saved with the engine's nats-server and gateway stopped (invoice save p50 {save_p50:.0} ms, p99 {save_p99:.0} ms; outbox {waiting_during}); after it returned, {drain_runs} cron runs (one a minute) drained {} events, each document's in order: lost=0 doubled=0",
        outage_events.len()
    ));

    // 8. Commit→Sage 201 latency. (a) The publish straight after commit: one admin request per
    //    invoice (one PHP process each, as PHP-FPM serves the admin's "Submit Invoice").
    let (seen, watcher) = watch_invoices(&stack, &merchant);
    magento.driver(&["unpause"])?;
    let mut quick = Vec::new();
    for _ in 0..latency_count {
        let made = magento.driver(&["invoices", "1"])?;
        quick.extend(made["invoices"].as_array().cloned().unwrap_or_default());
    }
    let quick = json!({ "invoices": quick });
    stack
        .wait_until(Duration::from_secs(60), || {
            latencies(&quick, &seen.lock().expect("watch lock")).is_ok()
        })
        .await;
    let (quick_p50, quick_p99) = percentiles(latencies(&quick, &seen.lock().expect("watch lock"))?);
    let (quick_save_p50, _) = percentiles(
        quick["invoices"]
            .as_array()
            .context("quick invoices")?
            .iter()
            .filter_map(|i| i["save_ms"].as_f64())
            .collect(),
    );
    // (b) Magento's cron at its default cadence (every minute): the invoices are committed
    //     spread over three minutes, and cron:run starts at each minute boundary, as crontab does.
    magento.driver(&["config", "ledger_sage_sync/relay/flush_after_commit", "0"])?;
    next_minute().await;
    let spread = 170.0;
    let driver = {
        let (root, php, count) = (magento.root.clone(), magento.php.clone(), count.clone());
        tokio::task::spawn_blocking(move || {
            Magento { root, php }.driver(&["invoices", &count, &spread.to_string()])
        })
    };
    let cron_runs = {
        let (root, php) = (magento.root.clone(), magento.php.clone());
        tokio::spawn(async move {
            let mut runs = 0;
            for _ in 0..4 {
                next_minute().await;
                let (root, php) = (root.clone(), php.clone());
                tokio::task::spawn_blocking(move || Magento { root, php }.cron()).await??;
                runs += 1;
            }
            anyhow::Ok(runs)
        })
    };
    let cadence = driver.await??;
    let runs = cron_runs.await??;
    stack
        .wait_until(Duration::from_secs(30), || {
            latencies(&cadence, &seen.lock().expect("watch lock")).is_ok()
        })
        .await;
    let (cron_p50, cron_p99) = percentiles(latencies(&cadence, &seen.lock().expect("watch lock"))?);
    watcher.abort();
    magento.driver(&["config", "ledger_sage_sync/relay/flush_after_commit", "1"])?;
    checks.ok(format!(
        "commit→Sage 201 over {latency_count} invoices each: publish after commit p50 {:.0} ms p99 {:.0} ms (invoice save p50 {quick_save_p50:.0} ms with it); cron every minute ({runs} runs) p50 {cron_p50:.1} s p99 {cron_p99:.1} s",
        quick_p50 * 1000.0,
        quick_p99 * 1000.0,
    ));
    let invoices = stack.documents(&merchant, "sales_invoices");
    let mut references: Vec<&str> = invoices
        .iter()
        .filter_map(|i| i["reference"].as_str())
        .collect();
    let total = references.len();
    references.sort_unstable();
    references.dedup();
    ensure!(references.len() == total, "a document is in Sage twice");
    checks.ok(format!("{total} invoices in Sage, each once"));

    match Arc::try_unwrap(stack) {
        Ok(stack) => stack.stop().await,
        Err(_) => bail!("the stack is still shared"),
    }
    println!("magento-e2e: {} checks ok", checks.0);
    Ok(())
}

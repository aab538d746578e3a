//! Sage's list envelope: pagination, `attributes` and common filters.

use crate::error::ApiError;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Default `items_per_page`.
pub const DEFAULT_PER_PAGE: usize = 20;
/// Largest `items_per_page` Sage accepts.
pub const MAX_PER_PAGE: usize = 200;

/// Which fields list items show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    /// `id`, `displayed_as`, `$path` only (Sage's default).
    Minimal,
    /// `attributes=all`.
    All,
    /// `attributes=a,b`: the minimal fields plus these.
    Some(Vec<String>),
}

/// Parsed paging and presentation parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParams {
    pub page: usize,
    pub per_page: usize,
    pub attributes: Attributes,
    /// (key, descending)
    pub sort: Option<(String, bool)>,
}

/// Parses `page`, `items_per_page`, `attributes` and `sort`.
pub fn parse_params(
    q: &HashMap<String, String>,
    sort_keys: &[&str],
) -> Result<ListParams, ApiError> {
    let per_page = match q.get("items_per_page") {
        None => DEFAULT_PER_PAGE,
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if (1..=MAX_PER_PAGE as i64).contains(&n) => n as usize,
            _ => {
                return Err(ApiError::invalid(
                    "items_per_page",
                    format!("items_per_page: must be an integer between 1 and {MAX_PER_PAGE}"),
                ))
            }
        },
    };
    let page = match q.get("page") {
        None => 1,
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) => n.max(1) as usize,
            Err(_) => return Err(ApiError::invalid("page", "page: must be an integer")),
        },
    };
    let attributes = match q.get("attributes").map(|s| s.trim()) {
        None | Some("") => Attributes::Minimal,
        Some("all") => Attributes::All,
        Some(list) => Attributes::Some(
            list.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        ),
    };
    let sort = match q.get("sort") {
        None => None,
        Some(s) => {
            let (key, dir) = s.split_once(':').unwrap_or((s.as_str(), "asc"));
            if !sort_keys.contains(&key) || !matches!(dir, "asc" | "desc") {
                return Err(ApiError::invalid(
                    "sort",
                    format!("sort: {s} is not a valid sort order"),
                ));
            }
            Some((key.to_owned(), dir == "desc"))
        }
    };
    Ok(ListParams {
        page,
        per_page,
        attributes,
        sort,
    })
}

/// Projects one item according to `attributes`.
pub fn project(item: &Map<String, Value>, attributes: &Attributes) -> Value {
    match attributes {
        Attributes::All => Value::Object(item.clone()),
        Attributes::Minimal | Attributes::Some(_) => {
            let mut out = Map::new();
            for key in ["id", "displayed_as", "$path"] {
                if let Some(v) = item.get(key) {
                    out.insert(key.to_owned(), v.clone());
                }
            }
            if let Attributes::Some(keys) = attributes {
                for k in keys {
                    if let Some(v) = item.get(k) {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(out)
        }
    }
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' | b':' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn page_link(path: &str, q: &HashMap<String, String>, page: usize, per_page: usize) -> String {
    let mut others: Vec<(&String, &String)> = q
        .iter()
        .filter(|(k, _)| k.as_str() != "page" && k.as_str() != "items_per_page")
        .collect();
    others.sort();
    let mut s = format!("{path}?");
    for (k, v) in others {
        s.push_str(&format!("{}={}&", encode(k), encode(v)));
    }
    s.push_str(&format!("page={page}&items_per_page={per_page}"));
    s
}

/// Builds Sage's list envelope from already filtered and sorted items.
///
/// A page past the last returns the last page again (Sage's documented
/// behaviour), with `$page` saying which page that is.
pub fn envelope(
    items: &[&Map<String, Value>],
    params: &ListParams,
    path: &str,
    q: &HashMap<String, String>,
) -> Value {
    let total = items.len();
    let last_page = total.div_ceil(params.per_page).max(1);
    let page = params.page.min(last_page);
    let start = (page - 1) * params.per_page;
    let end = (start + params.per_page).min(total);
    let page_items: Vec<Value> = items[start..end]
        .iter()
        .map(|m| project(m, &params.attributes))
        .collect();
    let next = (page < last_page).then(|| page_link(path, q, page + 1, params.per_page));
    let back = (page > 1).then(|| page_link(path, q, page - 1, params.per_page));
    json!({
        "$total": total,
        "$page": page,
        "$next": next,
        "$back": back,
        "$itemsPerPage": params.per_page,
        "$items": page_items,
    })
}

/// Parses `updated_or_created_since` (a date, taken as midnight UTC, or an
/// RFC 3339 timestamp).
pub fn parse_since(q: &HashMap<String, String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(v) = q.get("updated_or_created_since") else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()));
    }
    Err(ApiError::invalid(
        "updated_or_created_since",
        "updated_or_created_since: is not a valid date or time",
    ))
}

/// Parses a `YYYY-MM-DD` query parameter.
pub fn parse_date_param(
    q: &HashMap<String, String>,
    name: &str,
) -> Result<Option<NaiveDate>, ApiError> {
    match q.get(name) {
        None => Ok(None),
        Some(v) if crate::schema::is_iso_date(v) => {
            Ok(NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
        }
        Some(_) => Err(ApiError::invalid(
            name,
            format!("{name}: must be a date in the format YYYY-MM-DD"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn items(n: usize) -> Vec<Map<String, Value>> {
        (0..n)
            .map(|i| crate::seed::into_map(json!({"id": format!("id{i}"), "displayed_as": format!("D{i}"), "$path": format!("/x/id{i}"), "name": format!("n{i}")})))
            .collect()
    }

    #[test]
    fn defaults_and_limits() {
        let p = parse_params(&q(&[]), &[]).unwrap();
        assert_eq!((p.page, p.per_page), (1, 20));
        assert_eq!(
            parse_params(&q(&[("items_per_page", "201")]), &[])
                .unwrap_err()
                .source(),
            "items_per_page"
        );
        assert!(parse_params(&q(&[("items_per_page", "0")]), &[]).is_err());
        assert_eq!(
            parse_params(&q(&[("items_per_page", "200")]), &[])
                .unwrap()
                .per_page,
            200
        );
        assert!(parse_params(&q(&[("sort", "date:sideways")]), &["date"]).is_err());
        assert_eq!(
            parse_params(&q(&[("sort", "date:desc")]), &["date"])
                .unwrap()
                .sort,
            Some(("date".into(), true))
        );
    }

    #[test]
    fn past_last_page_repeats_last() {
        let all = items(5);
        let refs: Vec<&Map<String, Value>> = all.iter().collect();
        let query = q(&[("page", "9"), ("items_per_page", "2"), ("search", "a b")]);
        let p = parse_params(&query, &[]).unwrap();
        let env = envelope(&refs, &p, "/contacts", &query);
        assert_eq!(env["$page"], 3);
        assert_eq!(env["$next"], Value::Null);
        assert_eq!(
            env["$back"],
            "/contacts?search=a%20b&page=2&items_per_page=2"
        );
        assert_eq!(env["$items"].as_array().unwrap().len(), 1);
        assert_eq!(env["$items"][0]["id"], "id4");
        assert_eq!(env["$total"], 5);
    }

    #[test]
    fn attributes_projection() {
        let all = items(1);
        let m = &all[0];
        assert!(project(m, &Attributes::Minimal).get("name").is_none());
        assert_eq!(project(m, &Attributes::All)["name"], "n0");
        let some = project(m, &Attributes::Some(vec!["name".into()]));
        assert_eq!(some["name"], "n0");
        assert_eq!(some["$path"], "/x/id0");
    }

    #[test]
    fn empty_list_is_page_one() {
        let p = parse_params(&q(&[("page", "3")]), &[]).unwrap();
        let env = envelope(&[], &p, "/x", &q(&[]));
        assert_eq!(env["$page"], 1);
        assert_eq!(env["$total"], 0);
        assert_eq!(env["$next"], Value::Null);
        assert_eq!(env["$back"], Value::Null);
    }
}

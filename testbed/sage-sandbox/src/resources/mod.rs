//! Writable resources: create/update logic and their JSON representations.

pub(crate) mod contacts;
pub(crate) mod items;
pub(crate) mod payments;
pub(crate) mod sales;

use crate::error::ApiError;
use crate::seed;
use serde_json::{Map, Value};

/// A non-empty string field.
pub(crate) fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A decimal field (number or decimal string); schema validation has
/// already rejected anything unparsable.
pub(crate) fn dec_field(m: &Map<String, Value>, key: &str) -> Option<rust_decimal::Decimal> {
    m.get(key)
        .filter(|v| !v.is_null())
        .and_then(crate::money::parse_decimal)
}

/// A nested object field.
pub(crate) fn obj_field<'a>(
    m: &'a Map<String, Value>,
    key: &str,
) -> Option<&'a Map<String, Value>> {
    m.get(key).and_then(Value::as_object)
}

/// A date field already checked by the schema.
pub(crate) fn date_field(m: &Map<String, Value>, key: &str) -> Option<chrono::NaiveDate> {
    str_field(m, key).and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
}

/// Requires a tax rate id to exist; returns its percentage.
pub(crate) fn require_tax_rate(id: &str, source: &str) -> Result<rust_decimal::Decimal, ApiError> {
    seed::tax_rate(id)
        .map(|t| t.percentage)
        .ok_or_else(|| ApiError::missing_reference(source, "Couldn't find tax rate."))
}

/// Requires a currency id to exist.
pub(crate) fn require_currency(id: &str, source: &str) -> Result<(), ApiError> {
    if seed::currency_exists(id) {
        Ok(())
    } else {
        Err(ApiError::missing_reference(
            source,
            "Couldn't find currency.",
        ))
    }
}

/// Renders an address the way Sage returns it: `*_id` fields become link objects.
pub(crate) fn render_address(addr: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for (k, v) in addr {
        match k.as_str() {
            "country_id" => {
                if let Some(c) = v.as_str() {
                    out.insert("country".into(), seed::link("countries", c, c));
                }
            }
            "address_type_id" => {
                if let Some(t) = v.as_str() {
                    out.insert("address_type".into(), seed::link("address_types", t, t));
                }
            }
            "country_group_id" => {
                if let Some(g) = v.as_str() {
                    out.insert("country_group".into(), seed::link("country_groups", g, g));
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Country code of an address object.
pub(crate) fn address_country(addr: Option<&Map<String, Value>>) -> Option<String> {
    addr.and_then(|a| str_field(a, "country_id"))
        .map(|c| c.to_uppercase())
}

/// Shallow merge of a PUT body over the stored input.
pub(crate) fn merge(base: &Map<String, Value>, patch: &Map<String, Value>) -> Map<String, Value> {
    let mut out = base.clone();
    for (k, v) in patch {
        if k != "idempotency_id" {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// The request's root object without `idempotency_id`.
pub(crate) fn input_of(root: &Map<String, Value>) -> Map<String, Value> {
    merge(&Map::new(), root)
}

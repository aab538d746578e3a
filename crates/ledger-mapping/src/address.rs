//! Magento address → Sage address object, within Sage's field limits.

use crate::rules::{ADDRESS_LINE_MAX, POSTAL_CODE_MAX};
use crate::text::{clean_text, fit_text};
use ledger_events::Address;
use serde_json::{Map, Value};

/// A Sage address object plus, when something did not fit Sage's limits, the full
/// address as text for the document's or contact's notes (so nothing is lost, quirk 5).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SageAddress {
    pub json: Value,
    pub overflow: Option<String>,
}

/// Maps an address: first street line → `address_line_1`, the remaining street lines
/// joined → `address_line_2`, then city, region, postcode and country, each cleaned and
/// cut to Sage's limit (50 per line, 10 for the postcode) by [`fit_text`]. `label` names
/// the address in the overflow note ("Billing address").
pub(crate) fn map_address(address: &Address, label: &str) -> SageAddress {
    let street: Vec<String> = address
        .street
        .iter()
        .map(|s| clean_text(s))
        .filter(|s| !s.is_empty())
        .collect();
    let line1 = street.first().cloned().unwrap_or_default();
    let line2 = street
        .iter()
        .skip(1)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    let city = clean_text(&address.city);
    let region = address
        .region
        .as_deref()
        .or(address.region_code.as_deref())
        .map(clean_text)
        .unwrap_or_default();
    let postcode = address
        .postcode
        .as_deref()
        .map(clean_text)
        .unwrap_or_default();
    let country = address.country_id.trim().to_ascii_uppercase();

    let mut cut = false;
    let mut map = Map::new();
    let mut put = |key: &str, value: &str, max: usize| {
        if value.is_empty() {
            return;
        }
        let fitted = fit_text(value, max);
        cut |= fitted.was_cut();
        map.insert(key.to_owned(), Value::String(fitted.text));
    };
    put("address_line_1", &line1, ADDRESS_LINE_MAX);
    put("address_line_2", &line2, ADDRESS_LINE_MAX);
    put("city", &city, ADDRESS_LINE_MAX);
    put("region", &region, ADDRESS_LINE_MAX);
    put("postal_code", &postcode, POSTAL_CODE_MAX);
    if !country.is_empty() {
        map.insert("country_id".into(), Value::String(country.clone()));
    }

    let overflow = cut.then(|| {
        let parts: Vec<&str> = street
            .iter()
            .map(String::as_str)
            .chain([
                city.as_str(),
                region.as_str(),
                postcode.as_str(),
                country.as_str(),
            ])
            .filter(|s| !s.is_empty())
            .collect();
        format!("{label} (full): {}", parts.join(", "))
    });
    SageAddress {
        json: Value::Object(map),
        overflow,
    }
}

#[cfg(test)]
pub(crate) fn test_address(country: &str) -> Address {
    serde_json::from_value(serde_json::json!({
        "firstname": "Ada", "lastname": "Lovelace", "street": ["1 Analytical Row"],
        "city": "London", "postcode": "EC1A 1AA", "country_id": country
    }))
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_address_maps_field_by_field() {
        let mut a = test_address("gb");
        a.street = vec!["1 Analytical Row".into(), "Flat 2".into(), "Block C".into()];
        a.region = Some("Greater London".into());
        let m = map_address(&a, "Billing address");
        assert_eq!(
            m.json,
            json!({"address_line_1": "1 Analytical Row", "address_line_2": "Flat 2, Block C",
                   "city": "London", "region": "Greater London", "postal_code": "EC1A 1AA",
                   "country_id": "GB"})
        );
        assert_eq!(m.overflow, None);
    }

    #[test]
    fn quirk5_long_fields_are_cut_and_kept_in_the_overflow_note() {
        let mut a = test_address("DE");
        let long_street = "Unit 7, The Old Granary Business Park, Long Meadow Industrial Estate";
        a.street = vec![long_street.into()];
        a.postcode = Some("D-12345-6789-X".into());
        let m = map_address(&a, "Delivery address");
        let line1 = m.json["address_line_1"].as_str().unwrap();
        assert!(line1.chars().count() <= 50);
        assert!(long_street.starts_with(line1));
        assert_eq!(m.json["postal_code"], json!("D-12345-67"));
        let note = m.overflow.unwrap();
        assert!(note.starts_with("Delivery address (full): "));
        assert!(note.contains(long_street));
        assert!(note.contains("D-12345-6789-X"));
    }

    #[test]
    fn escaped_parts_are_decoded_before_they_are_measured() {
        let mut a = test_address("FR");
        // 55 characters escaped (over the 50 limit), 41 decoded: no cut once decoded.
        a.street = vec!["Ch&acirc;teau d&#39;Yquem &amp; Fils, 12 Rue de la Paix".into()];
        a.city = "Saint-&Eacute;tienne".into();
        let m = map_address(&a, "Billing address");
        assert_eq!(
            m.json["address_line_1"],
            json!("Château d'Yquem & Fils, 12 Rue de la Paix")
        );
        assert_eq!(m.json["city"], json!("Saint-Étienne"));
        assert_eq!(m.overflow, None);
    }

    #[test]
    fn empty_parts_are_left_out() {
        let mut a = test_address("IE");
        a.postcode = None;
        a.street = vec!["  ".into(), "2 Quay St".into()];
        let m = map_address(&a, "Billing address");
        assert_eq!(
            m.json,
            json!({"address_line_1": "2 Quay St", "city": "London", "country_id": "IE"})
        );
    }
}

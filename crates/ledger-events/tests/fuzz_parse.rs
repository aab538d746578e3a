//! A bounded fuzz run over the event parser, the first thing every hostile store's bytes meet:
//! whatever arrives, `parse` answers without panicking, and every refusal names the field and
//! the reason (the whole event, `""`, only when the bytes are not JSON at all).

use ledger_events::{parse, ContractError};
use proptest::prelude::*;
use serde_json::Value;

const EXAMPLES: [&str; 9] = [
    include_str!("../../../schemas/examples/creditmemo-created-adjustment-and-shipping.json"),
    include_str!("../../../schemas/examples/creditmemo-created-offline-no-invoice.json"),
    include_str!("../../../schemas/examples/customer-saved-b2b.json"),
    include_str!("../../../schemas/examples/invoice-created-eur-base-gbp.json"),
    include_str!("../../../schemas/examples/invoice-created-guest.json"),
    include_str!("../../../schemas/examples/invoice-created-uk-b2c-vat20.json"),
    include_str!("../../../schemas/examples/invoice-paid-card-capture.json"),
    include_str!("../../../schemas/examples/product-saved-simple.json"),
    include_str!("../../../schemas/examples/product-saved-virtual.json"),
];

/// Checks that a refusal names where and why.
fn names_the_field(bytes: &[u8], error: &ContractError) -> Result<(), TestCaseError> {
    let issues = error.issues();
    prop_assert!(!issues.is_empty(), "a refusal without issues: {error}");
    for issue in issues {
        prop_assert!(!issue.reason.trim().is_empty(), "no reason: {error}");
        if !matches!(error, ContractError::MalformedJson(_)) {
            prop_assert!(
                issue.path.starts_with('/')
                    || (issue.path.is_empty()
                        && !serde_json::from_slice::<Value>(bytes).is_ok_and(|v| v.is_object())),
                "a refusal of a JSON object names no field: {issue:?}"
            );
        }
    }
    Ok(())
}

/// Every JSON pointer of `value`'s leaves and inner nodes.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        _ => {}
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String("magento.other-merchant.>".into())),
        Just(Value::String("99999999999999999999999999999.999".into())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = parse(&bytes) {
            names_the_field(&bytes, &e)?;
        }
    }

    #[test]
    fn random_json_never_panics(value in arbitrary_json()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        match parse(&bytes) {
            Ok(_) => prop_assert!(false, "random JSON accepted as an event: {value}"),
            Err(e) => names_the_field(&bytes, &e)?,
        }
    }

    /// A valid event with one field replaced by anything, or removed.
    #[test]
    fn mutated_events_are_refused_by_field(
        example in 0..EXAMPLES.len(),
        pick in any::<prop::sample::Index>(),
        replacement in arbitrary_json(),
        remove in any::<bool>(),
    ) {
        let mut value: Value = serde_json::from_str(EXAMPLES[example]).unwrap();
        let mut all = Vec::new();
        pointers(&value, String::new(), &mut all);
        let pointer = pick.get(&all).clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        if remove {
            match value.pointer_mut(parent) {
                Some(Value::Object(map)) => { map.remove(key); }
                Some(Value::Array(items)) => {
                    let i: usize = key.parse().unwrap();
                    if i < items.len() { items.remove(i); }
                }
                _ => {}
            }
        } else if let Some(slot) = value.pointer_mut(&pointer) {
            *slot = replacement;
        }
        let bytes = serde_json::to_vec(&value).unwrap();
        if let Err(e) = parse(&bytes) {
            names_the_field(&bytes, &e)?;
        }
    }
}

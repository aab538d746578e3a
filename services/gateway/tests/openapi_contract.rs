//! The gateway's HTTP API document (`docs/openapi.yaml`) lists exactly the routes the gateway
//! serves: every method and path of `gateway::routes::table()` is in it, and nothing else.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use common::{rust_files, workspace_root};

/// A path template with every parameter name dropped (`/a/{merchant}` → `/a/{}`): the
/// document may name a parameter more descriptively than the code does.
fn shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// `METHOD shape` of every operation in the document.
fn documented() -> BTreeSet<String> {
    let path = workspace_root().join("docs/openapi.yaml");
    let text = std::fs::read_to_string(&path).expect("docs/openapi.yaml is readable");
    let doc: Value = serde_norway::from_str(&text).expect("docs/openapi.yaml is YAML");
    let paths = doc["paths"]
        .as_object()
        .expect("docs/openapi.yaml has a `paths` object");
    let methods = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        let item = item
            .as_object()
            .unwrap_or_else(|| panic!("paths.{path} is not an object"));
        let mut any = false;
        for method in item.keys().filter(|k| methods.contains(&k.as_str())) {
            any = true;
            assert!(
                out.insert(format!("{} {}", method.to_uppercase(), shape(path))),
                "{} {path} is documented twice",
                method.to_uppercase()
            );
        }
        assert!(any, "paths.{path} documents no operation");
    }
    out
}

fn served() -> BTreeSet<String> {
    gateway::routes::table()
        .iter()
        .map(|r| format!("{} {}", r.method, shape(r.path)))
        .collect()
}

#[test]
fn the_document_lists_every_route_the_gateway_serves_and_no_other() {
    let documented = documented();
    let served = served();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "docs/openapi.yaml and gateway::routes disagree:\n  served but not documented: {undocumented:?}\n  documented but not served: {not_served:?}"
    );
}

#[test]
fn path_templates_compare_by_shape() {
    assert_eq!(
        shape("/v1/pairings/{pairing_id}"),
        shape("/v1/pairings/{pairing}")
    );
    assert_ne!(shape("/v1/pairings/{pairing}"), shape("/v1/pairings"));
    assert_eq!(shape("/a/{x}/b/{y}"), "/a/{}/b/{}");
}

/// Routes reach axum only through `gateway::routes` (which records them in the table): no other
/// source file of the gateway builds or extends a router itself.
#[test]
fn routes_are_added_only_through_the_table() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let forbidden = [
        "Router::new(",
        ".route(",
        ".route_service(",
        ".nest(",
        ".nest_service(",
        ".merge(",
        ".fallback(",
        ".fallback_service(",
    ];
    let mut offenders = Vec::new();
    let mut files = 0;
    for entry in rust_files(&src) {
        if entry.file_name().and_then(|n| n.to_str()) == Some("routes.rs") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&entry).unwrap();
        for (n, line) in text.lines().enumerate() {
            for f in forbidden {
                if line.contains(f) {
                    offenders.push(format!("{}:{}: {}", entry.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        files > 5,
        "the gateway's sources were not found in {}",
        src.display()
    );
    assert!(
        offenders.is_empty(),
        "routes must be added through gateway::routes::Routes so the API document is checked:\n{}",
        offenders.join("\n")
    );
}

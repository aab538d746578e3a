//! The committed swagger extract must be what `schemas/sage/extract.py`
//! produces from Sage's swagger. Runs only where the swagger is available
//! (`../shared/sage/swagger-v3.1.json` relative to the workspace root).

use std::path::PathBuf;
use std::process::Command;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

#[test]
fn committed_extract_matches_regeneration() {
    let root = workspace_root();
    let swagger = root.join("../shared/sage/swagger-v3.1.json");
    if !swagger.exists() {
        println!(
            "skipped: {} not found; cannot regenerate the swagger extract",
            swagger.display()
        );
        return;
    }
    if Command::new("python3").arg("--version").output().is_err() {
        println!("skipped: python3 not available; cannot regenerate the swagger extract");
        return;
    }
    let out = std::env::temp_dir().join(format!("sage-structure-{}.json", std::process::id()));
    let status = Command::new("python3")
        .arg(root.join("schemas/sage/extract.py"))
        .arg(&swagger)
        .arg(&out)
        .status()
        .expect("run extract.py");
    assert!(status.success(), "extract.py failed");
    let regenerated = std::fs::read_to_string(&out).expect("read regenerated extract");
    let _ = std::fs::remove_file(&out);
    let committed = std::fs::read_to_string(root.join("schemas/sage/sage-v3.1-structure.json"))
        .expect("read committed extract");
    assert!(
        regenerated == committed,
        "schemas/sage/sage-v3.1-structure.json is stale: rerun schemas/sage/extract.py"
    );
    // And the sandbox embeds exactly the committed file.
    assert_eq!(committed, sage_sandbox::schema::STRUCTURE_JSON);
}

#[test]
fn extract_holds_structure_only() {
    let v: serde_json::Value = serde_json::from_str(sage_sandbox::schema::STRUCTURE_JSON).unwrap();
    fn walk(v: &serde_json::Value, in_properties: bool, path: &str) {
        if let Some(m) = v.as_object() {
            for (k, child) in m {
                if !in_properties {
                    // Schema keywords only; property names are free.
                    assert!(
                        [
                            "type",
                            "format",
                            "enum",
                            "required",
                            "maxLength",
                            "minLength",
                            "maximum",
                            "minimum",
                            "properties",
                            "items",
                            "definitions",
                            "swagger_info_version",
                            "base_path"
                        ]
                        .contains(&k.as_str())
                            || path.starts_with("/definitions") && path.matches('/').count() == 1,
                        "unexpected keyword {k} at {path}"
                    );
                    assert!(
                        child.is_object() || k != "description",
                        "prose description at {path}"
                    );
                }
                walk(
                    child,
                    k == "properties" && !in_properties,
                    &format!("{path}/{k}"),
                );
            }
        }
    }
    walk(&v, false, "");
    // Every root object accepts idempotency_id.
    for (name, def) in v["definitions"].as_object().unwrap() {
        let root = def["properties"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap();
        assert_eq!(
            root["properties"]["idempotency_id"]["maxLength"], 32,
            "{name}"
        );
    }
}

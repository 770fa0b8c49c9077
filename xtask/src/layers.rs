//! The layer rule, checked from `cargo metadata`: models ← events ← tools ← agent ← services ←
//! core-logic ← server. A crate may depend only on crates to its left, and only the server may
//! depend on actix (or figment); lower layers also stay away from IO crates they must not know.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

pub const LAYERS: &[&str] = &[
    "sqlmatic-models",
    "sqlmatic-events",
    "sqlmatic-tools",
    "sqlmatic-agent",
    "sqlmatic-services",
    "sqlmatic-core-logic",
    "sqlmatic-server",
];

/// External crates a layer must not depend on (any dependency kind).
fn forbidden(package: &str) -> &'static [&'static str] {
    match package {
        "sqlmatic-models" => &[
            "rusqlite",
            "r2d2",
            "r2d2_sqlite",
            "reqwest",
            "tokio",
            "actix-web",
            "actix-ws",
            "figment",
        ],
        "sqlmatic-events" => {
            &["rusqlite", "r2d2", "r2d2_sqlite", "reqwest", "actix-web", "actix-ws", "figment"]
        }
        "sqlmatic-tools" => &["reqwest", "actix-web", "actix-ws", "figment"],
        // the agent stores nothing: storage is the services layer's
        "sqlmatic-agent" => &[
            "rusqlite",
            "r2d2",
            "r2d2_sqlite",
            "tokio-postgres",
            "actix-web",
            "actix-ws",
            "figment",
        ],
        "sqlmatic-services" | "sqlmatic-core-logic" => {
            &["actix-web", "actix-ws", "actix-rt", "awc", "figment"]
        }
        _ => &[],
    }
}

/// (package, dependency, kind) edges of the workspace members.
pub fn edges(root: &Path) -> anyhow::Result<Vec<(String, String, String)>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: Value = serde_json::from_slice(&out.stdout)?;
    let mut edges = Vec::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default().to_owned();
        for d in p["dependencies"].as_array().into_iter().flatten() {
            let dep = d["name"].as_str().unwrap_or_default().to_owned();
            let kind = d["kind"].as_str().unwrap_or("normal").to_owned();
            edges.push((name.clone(), dep, kind));
        }
    }
    Ok(edges)
}

/// Every violation of the layer rule, as sentences.
pub fn violations(edges: &[(String, String, String)]) -> Vec<String> {
    let rank = |n: &str| LAYERS.iter().position(|l| *l == n);
    let mut out = Vec::new();
    for (pkg, dep, kind) in edges {
        let Some(p) = rank(pkg) else { continue };
        // a crate's dev-dependency on itself (to turn on a test feature) is no edge
        if let Some(d) = rank(dep)
            && d >= p
            && dep != pkg
        {
            out.push(format!(
                "{pkg} depends on {dep} ({kind}), which is not below it in {LAYERS:?}"
            ));
        }
        if forbidden(pkg).contains(&dep.as_str()) {
            out.push(format!("{pkg} depends on {dep} ({kind}), which its layer must not know"));
        }
    }
    out
}

pub fn check(root: &Path) -> anyhow::Result<()> {
    let v = violations(&edges(root)?);
    if v.is_empty() {
        eprintln!("layers ok: {}", LAYERS.join(" <- "));
        Ok(())
    } else {
        bail!("layer violations:\n  {}", v.join("\n  "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_respects_the_layers() {
        let v = violations(&edges(&crate::root()).unwrap());
        assert!(v.is_empty(), "{v:#?}");
    }

    #[test]
    fn the_check_catches_upward_edges_and_actix_below_the_server() {
        let e = |a: &str, b: &str| (a.to_owned(), b.to_owned(), "normal".to_owned());
        let v = violations(&[
            e("sqlmatic-tools", "sqlmatic-services"),
            e("sqlmatic-core-logic", "actix-web"),
            e("sqlmatic-server", "actix-web"),
            e("sqlmatic-services", "sqlmatic-tools"),
            e("sqlmatic-agent", "sqlmatic-services"),
            e("sqlmatic-agent", "rusqlite"),
            e("sqlmatic-services", "sqlmatic-agent"),
        ]);
        assert_eq!(v.len(), 4, "{v:#?}");
    }

    #[test]
    fn every_crate_and_module_says_what_it_owns() {
        let mut missing = Vec::new();
        for dir in ["crates", "xtask"] {
            visit(&crate::root().join(dir), &mut missing);
        }
        assert!(missing.is_empty(), "files without a //! doc comment: {missing:#?}");
    }

    fn visit(dir: &Path, missing: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with("target") {
                    visit(&path, missing);
                }
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.components().any(|c| c.as_os_str() == "src")
            {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if !text.trim_start().starts_with("//!") {
                    missing.push(path.display().to_string());
                }
            }
        }
    }
}

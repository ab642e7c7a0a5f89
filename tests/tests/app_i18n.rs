//! The CCP's translations, tested natively (the app itself builds only for
//! wasm): the table's own checks, and every string the panel's source
//! passes to `ccp.t(...)` or `tr(...)` has a Japanese entry.

#[path = "../../app/src/i18n.rs"]
#[allow(dead_code)]
mod i18n;

use i18n::{tr, Lang};

fn sources(dir: &std::path::Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("app sources") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("i18n.rs") {
            out.push(std::fs::read_to_string(&path).expect("read"));
        }
    }
}

/// Every literal in `t("...")` / `tr(..., "...")` / `if ... { "A" } else { "B" }` passed to them.
fn used_strings(src: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in [
        "t(\"",
        "tr(self.lang.get_untracked(), \"",
        "tr(ccp.lang.get_untracked(), \"",
    ] {
        let mut rest = src;
        while let Some(i) = rest.find(marker) {
            // `t("` must be the call `t`, not the end of another name
            // (`op.get("op")` is not a label).
            let whole_name = !rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            rest = &rest[i + marker.len()..];
            if let (true, Some(end)) = (whole_name, rest.find('"')) {
                found.push(rest[..end].to_string());
            }
        }
    }
    // ccp.t(if x { "A" } else { "B" }) and ccp.t(match ...) arms feed literals too.
    for line in src.lines().filter(|l| {
        l.contains("ccp.t(if")
            || l.trim_start().starts_with("ConnectionState::") && l.contains("=> \"")
    }) {
        let mut rest = line;
        while let Some(i) = rest.find('"') {
            rest = &rest[i + 1..];
            if let Some(end) = rest.find('"') {
                found.push(rest[..end].to_string());
                rest = &rest[end + 1..];
            }
        }
    }
    // Label tables: `ContactState::X => "Label"`, `Outcome::X => "Label"` and
    // `"WireName" => "Label"` (a capitalised wire name, as the status bar's).
    for line in src.lines() {
        let t = line.trim_start();
        let labelled = t.starts_with("ContactState::")
            || t.starts_with("Outcome::")
            || t.strip_prefix('"').is_some_and(|r| {
                r.starts_with(|c: char| c.is_ascii_uppercase()) && r.contains("\" => \"")
            });
        if let Some(i) = t.find("=> \"").filter(|_| labelled) {
            let rest = &t[i + 4..];
            if let Some(end) = rest.find('"') {
                found.push(rest[..end].to_string());
            }
        }
    }
    found.retain(|s| !s.is_empty() && s != "Switchboard");
    found
}

#[test]
fn every_string_the_panel_shows_is_translated() {
    let mut srcs = Vec::new();
    sources(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../app/src"),
        &mut srcs,
    );
    let mut used: Vec<String> = srcs.iter().flat_map(|s| used_strings(s)).collect();
    used.sort();
    used.dedup();
    assert!(used.len() > 30, "found the panel's strings: {used:?}");
    let missing: Vec<&String> = used
        .iter()
        .filter(|s| {
            let key: &'static str = Box::leak(s.to_string().into_boxed_str());
            tr(Lang::Ja, key) == key
        })
        .collect();
    assert!(missing.is_empty(), "no Japanese for {missing:?}");
}

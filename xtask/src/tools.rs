//! Installs the tools the build and the tests need, each only when it is
//! missing or of the wrong version. Versions are pinned where the project
//! depends on them: wasm-bindgen must match the crate's `=0.2.130`, Trunk
//! 0.21.14 is the newest that builds on this rustc, and wasm-opt comes
//! from npm's binaryen 132 (Debian's 108 produces modules that fail at
//! start).

use std::process::Command;

use crate::{root, run, tool_path};

const WASM_BINDGEN: &str = "0.2.130";
const TRUNK: &str = "0.21.14";

fn output_contains(cmd: &str, args: &[&str], needle: &str) -> bool {
    Command::new(cmd)
        .env("PATH", tool_path())
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(needle))
}

fn ensure_wasm_target() -> Result<(), String> {
    if output_contains(
        "rustup",
        &["target", "list", "--installed"],
        "wasm32-unknown-unknown",
    ) {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))
}

fn ensure_cargo_tool(bin: &str, krate: &str, version: &str, locked: bool) -> Result<(), String> {
    if output_contains(bin, &["--version"], version) {
        return Ok(());
    }
    let mut cmd = Command::new("cargo");
    cmd.args(["install", krate, "--version", version, "--force"]);
    // wasm-bindgen-cli's lockfile names a crate version the registry no
    // longer has, so it installs unlocked; Trunk installs locked.
    if locked {
        cmd.arg("--locked");
    }
    run(&mut cmd)
}

fn ensure_npm_packages() -> Result<(), String> {
    let r = root();
    let installed = r.join("node_modules/.bin/wasm-opt").exists()
        && r.join("node_modules/playwright-core/package.json").exists()
        && r.join("node_modules/.bin/tsc").exists()
        && r.join("node_modules/.bin/esbuild").exists();
    if installed {
        return Ok(());
    }
    run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs Debian packages whose marker file is missing.
fn ensure_apt(packages: &[(&str, &str)]) -> Result<(), String> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(marker, _)| !std::path::Path::new(marker).exists())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let sudo = if is_root() { vec![] } else { vec!["sudo"] };
    let apt = |args: &[&str]| {
        let mut all: Vec<&str> = sudo.clone();
        all.push("apt-get");
        all.extend_from_slice(args);
        let mut cmd = Command::new(all[0]);
        cmd.args(&all[1..]).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run(&mut apt(&["update", "-q"]))?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(missing);
    run(&mut apt(&args))
}

/// What building the wasm needs.
pub fn ensure_build_tools() -> Result<(), String> {
    ensure_wasm_target()?;
    ensure_cargo_tool("wasm-bindgen", "wasm-bindgen-cli", WASM_BINDGEN, false)?;
    ensure_cargo_tool("trunk", "trunk", TRUNK, true)?;
    ensure_npm_packages()
}

/// What the native tests need: cmake (C libopus for the interop test),
/// espeak-ng and sox (test speech).
pub fn ensure_test_tools() -> Result<(), String> {
    ensure_apt(&[
        ("/usr/bin/cmake", "cmake"),
        ("/usr/bin/espeak-ng", "espeak-ng"),
        ("/usr/bin/sox", "sox"),
        // opusinfo/opusdec check the bridge's Ogg Opus recordings.
        ("/usr/bin/opusinfo", "opus-tools"),
        // The SIP trunk tests' far ends (tests/tests/sip_trunk.rs): a real
        // SIP phone (baresip-core, not the GUI metapackage) and SIPp.
        ("/usr/bin/baresip", "baresip-core"),
        ("/usr/bin/sipp", "sip-tester"),
        // The registrar/proxy with digest auth for the trunk tests.
        ("/usr/sbin/kamailio", "kamailio"),
    ])
}

/// What the browser tests need: Chromium and its driver, and a CJK font
/// (without one the Japanese panel renders as boxes in the screenshots).
pub fn ensure_browser_tools() -> Result<(), String> {
    ensure_apt(&[
        ("/usr/bin/chromium", "chromium"),
        ("/usr/bin/chromedriver", "chromium-driver"),
        (
            "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
            "fonts-noto-cjk",
        ),
    ])?;
    ensure_npm_packages()
}

//! `cargo xtask <command>`: the project's own scripts, in Rust so they run
//! wherever cargo does.
//!
//! - `run [--config FILE]`: installs what is missing, builds the CCP with
//!   Trunk and starts the backend (release) with the sample configuration,
//!   and beside it the sample order service (127.0.0.1:8091, its database
//!   in the backend's data_dir), stopped with the backend.
//! - `test`: installs what is missing and runs every test: native crates,
//!   the CCP build, and the browser end-to-end tests in headless Chromium.
//! - `bench [load]`: the benchmarks whose figures go into docs/benchmarks.md.
//! - `sdk-types`: regenerates the SDK's committed TypeScript declarations.
//! - `install`: only the tool installs.
//! - `lint`: rustfmt and clippy.
//! - `conformance --url http://HOST:PORT --agent U:P --agent U2:P2 [...]`:
//!   checks any running backend against docs/protocol.md.
//!
//! Every install step checks first and skips what is already there, so a
//! second run costs seconds.

mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use tools::{ensure_browser_tools, ensure_build_tools, ensure_test_tools};

/// The workspace root (the parent of this crate).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs a command from the workspace root, echoing it; fails on non-zero exit.
fn run(cmd: &mut Command) -> Result<(), String> {
    cmd.current_dir(root());
    eprintln!("xtask> {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// PATH with the npm tools (wasm-opt) and cargo's bin directory first.
fn tool_path() -> String {
    let mut parts = vec![root().join("node_modules/.bin").display().to_string()];
    if let Some(home) = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
    {
        parts.push(home.join("bin").display().to_string());
    }
    parts.push(std::env::var("PATH").unwrap_or_default());
    parts.join(":")
}

/// Builds the CCP into dist/ with Trunk (release: wasm-opt -Oz), then the
/// audio engine into dist/media/engine.wasm (Trunk copies public/media
/// beside it: the worklet processor and its loader).
///
/// Each step after a cargo build (Trunk with its wasm-bindgen and wasm-opt,
/// the SDK core's, the engine's wasm-opt) is skipped when its inputs are
/// the same as at its last run and its outputs are still as it left them
/// (see [`Stamp`]): a `cargo xtask run` with nothing changed took 46 s,
/// most of it redoing these.
fn build_ccp() -> Result<(), String> {
    run(cargo().args(["fetch"]))?;
    // Before Trunk: it copies the core into dist/sdk/direct.
    build_sdk_core()?;
    // Trunk's own cargo build, done first so its output can be stamped;
    // Trunk's build then finds it fresh (same profile, target and binary).
    run(cargo().args([
        "build",
        "--profile",
        "ccp",
        "--target",
        "wasm32-unknown-unknown",
        "--manifest-path",
        "app/Cargo.toml",
        "--bin",
        "switchboard-app",
    ]))?;
    let r = root();
    let stamp = Stamp::new(
        "ccp",
        &[
            r.join("target/wasm32-unknown-unknown/ccp/switchboard-app.wasm"),
            r.join("Trunk.toml"),
            r.join("app/index.html"),
            r.join("app/style.css"),
            r.join("app/boot.js"),
            r.join("app/favicon.svg"),
            r.join("public/media"),
            r.join("streams-sdk/js"),
            r.join("target/sdk-direct"),
        ],
        // Everything Trunk and the steps after it leave in dist/ (the
        // engine, written after them, is the engine step's own output).
        &[r.join("dist")],
        &["dist/media/engine.wasm"],
    );
    if stamp.fresh() {
        eprintln!("xtask> the CCP in dist/ is up to date (Trunk skipped)");
    } else {
        run(Command::new("trunk").env("PATH", tool_path()).args([
            "build",
            "--release",
            "--offline",
        ]))?;
        bundle_ccp_scripts()?;
        minify_sdk()?;
        stamp.record()?;
    }
    build_media()
}

/// A content stamp of one build step: a hash of its inputs' bytes (files,
/// or every file under a directory, with their paths) and of its outputs'
/// as they were when the step last finished, kept in `target/stamps/`.
/// The step is fresh when both hash the same now: a changed input, or an
/// output deleted or overwritten since (Trunk empties dist/, for one),
/// runs it again. Modification times are not used: a checkout or a copy
/// of the tree changes them without changing anything.
struct Stamp {
    file: PathBuf,
    inputs: u64,
    outputs: Vec<PathBuf>,
    skip: Vec<PathBuf>,
}

impl Stamp {
    fn new(name: &str, inputs: &[PathBuf], outputs: &[PathBuf], skip: &[&str]) -> Stamp {
        let skip: Vec<PathBuf> = skip.iter().map(|s| root().join(s)).collect();
        // This program is an input too: the steps' commands and flags are
        // written here, so a changed xtask runs them again.
        let mut inputs = inputs.to_vec();
        inputs.extend(std::env::current_exe().ok());
        Stamp {
            file: root().join("target/stamps").join(name),
            inputs: content_hash(&inputs, &skip),
            outputs: outputs.to_vec(),
            skip,
        }
    }

    /// What the stamp file holds when inputs and outputs are as now.
    fn line(&self) -> String {
        format!(
            "{:016x} {:016x}\n",
            self.inputs,
            content_hash(&self.outputs, &self.skip)
        )
    }

    fn fresh(&self) -> bool {
        self.outputs.iter().all(|o| o.exists())
            && std::fs::read_to_string(&self.file).is_ok_and(|old| old == self.line())
    }

    fn record(&self) -> Result<(), String> {
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&self.file, self.line()).map_err(|e| format!("{}: {e}", self.file.display()))
    }
}

/// FNV-1a over each path (relative to the root) and its bytes, directories
/// walked in name order; a missing path hashes as missing. `skip` paths
/// are left out.
fn content_hash(paths: &[PathBuf], skip: &[PathBuf]) -> u64 {
    fn walk(path: &Path, skip: &[PathBuf], h: &mut Vec<u8>) {
        if skip.iter().any(|s| s == path) {
            return;
        }
        let rel = path.strip_prefix(root()).unwrap_or(path);
        h.extend_from_slice(rel.to_string_lossy().as_bytes());
        h.push(0);
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect();
            entries.sort();
            for entry in entries {
                walk(&entry, skip, h);
            }
        } else if let Ok(bytes) = std::fs::read(path) {
            h.extend_from_slice(&fnv1a64(&bytes).to_le_bytes());
        } else {
            h.extend_from_slice(b"missing");
        }
    }
    let mut all = Vec::new();
    for p in paths {
        walk(p, skip, &mut all);
    }
    fnv1a64(&all)
}

/// Bundles the CCP's scripts into one minified module with a content hash
/// in its name: app/boot.js, the wasm-bindgen loader and its snippets.
///
/// Trunk leaves them as seven files (boot.js, the loader, five snippets),
/// and only the loader's name carries a hash, so every reload of the CCP
/// (each time a CRM page embeds it) revalidated six of them with the
/// server: 14-28 ms of a 150 ms start budget. The bundle is named after
/// its own content, so the backend serves it `immutable` and a reload
/// fetches nothing but the page. (Trunk's own minifier fails on ES modules,
/// so esbuild minifies here.)
fn bundle_ccp_scripts() -> Result<(), String> {
    let dist = root().join("dist");
    let index = dist.join("index.html");
    let html = std::fs::read_to_string(&index).map_err(|e| format!("{}: {e}", index.display()))?;
    let loader = html_attr(&html, "data-app-js")
        .ok_or("dist/index.html: no data-app-js (see Trunk.toml pattern_script)")?;
    let loader = loader.rsplit('/').next().unwrap_or_default().to_string();
    // The entry: the loader first, handed to boot.js through a global (its
    // own dynamic import is for `trunk serve`), then boot.js.
    let entry_app = dist.join(".bundle-app.js");
    let entry = dist.join(".bundle-main.js");
    let write = |path: &std::path::Path, text: String| {
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(
        &entry_app,
        format!("import * as app from './{loader}';\nglobalThis.__switchboardApp = app;\n"),
    )?;
    write(
        &entry,
        "import './.bundle-app.js';\nimport './boot.js';\n".to_string(),
    )?;
    let out = root().join("target/ccp-bundle.js");
    run(Command::new("esbuild")
        .env("PATH", tool_path())
        .arg(&entry)
        // Errors only: the loader's import object repeats snippet keys,
        // which esbuild warns about; minified, it means the same.
        .args([
            "--bundle",
            "--minify",
            "--target=es2022",
            "--log-level=error",
            "--format=esm",
            // The audio engine is loaded when a call needs it, by URL.
            "--external:/ccp/*",
        ])
        .arg(format!("--outfile={}", out.display()))
        .arg("--allow-overwrite"))?;
    let bundle = std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let name = format!("ccp-{:016x}.js", fnv1a64(&bundle));
    std::fs::write(dist.join(&name), &bundle).map_err(|e| format!("dist/{name}: {e}"))?;
    let page = ccp_page_with_bundle(&html, &name)?;
    write(&index, page)?;
    for file in [entry_app, entry, dist.join(&loader), dist.join("boot.js")] {
        std::fs::remove_file(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let snippets = dist.join("snippets");
    if snippets.exists() {
        std::fs::remove_dir_all(&snippets).map_err(|e| format!("{}: {e}", snippets.display()))?;
    }
    Ok(())
}

/// The value of the first `name=` attribute in `html`, quoted or not.
fn html_attr<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let at = html.find(&format!("{name}="))? + name.len() + 1;
    let rest = &html[at..];
    match rest.chars().next()? {
        q @ ('"' | '\'') => rest[1..].split(q).next(),
        _ => rest.split([' ', '>']).next(),
    }
}

/// Trunk's page with its scripts replaced by the bundle: the loader's own
/// `<script>` and the module preloads (loader, snippets) go, and boot.js's
/// tag becomes the bundle's, keeping `data-app-wasm` (the wasm's hashed
/// name, which the bundle reads). Other tags (style sheet, wasm preload)
/// stay as they are.
fn ccp_page_with_bundle(html: &str, bundle: &str) -> Result<String, String> {
    let wasm = html_attr(html, "data-app-wasm").ok_or("dist/index.html: no data-app-wasm")?;
    let base = wasm.rsplit_once('/').map(|(b, _)| b).unwrap_or("");
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let mut replaced = false;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = if rest.starts_with("<script") {
            rest.find("</script>").map(|e| e + "</script>".len())
        } else {
            rest.find('>').map(|e| e + 1)
        }
        .ok_or("dist/index.html: unterminated tag")?;
        let tag = &rest[..end];
        if tag.starts_with("<script") && tag.contains("data-app-wasm") {
            out.push_str(&format!(
                "<script data-app-wasm={wasm} src={base}/{bundle} type=module></script>"
            ));
            replaced = true;
        } else if tag.starts_with("<script") && tag.contains("switchboard-app-") {
            // The loader's own tag: it is in the bundle now.
        } else if tag.starts_with("<link") && tag.contains("modulepreload") {
        } else {
            out.push_str(tag);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    if !replaced {
        return Err("dist/index.html: boot.js's script tag not found".into());
    }
    Ok(out)
}

/// 64-bit FNV-1a: a stable content hash for a cache-busting file name
/// (not for security).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The SDK files CRM pages download, minified in place in dist/sdk (the
/// committed sources stay readable). `connect-streams-min.js` is the name
/// Streams integrations load; `connect-streams.js` is the same bytes.
fn minify_sdk() -> Result<(), String> {
    let sdk = root().join("dist/sdk");
    let esbuild = |input: &str, output: &str, format: &str| {
        run(Command::new("esbuild")
            .env("PATH", tool_path())
            .arg(sdk.join(input))
            .args(["--minify", "--target=es2022", "--log-level=warning"])
            .arg(format!("--format={format}"))
            .arg(format!("--outfile={}", sdk.join(output).display()))
            .arg("--allow-overwrite"))
    };
    esbuild("switchboard.js", "switchboard.js", "esm")?;
    esbuild("connect-streams.mjs", "connect-streams.mjs", "esm")?;
    esbuild("connect-streams.js", "connect-streams.js", "iife")?;
    std::fs::copy(
        sdk.join("connect-streams.js"),
        sdk.join("connect-streams-min.js"),
    )
    .map(|_| ())
    .map_err(|e| format!("dist/sdk/connect-streams-min.js: {e}"))
}

/// The SDK's direct-transport core: streams-sdk with `js-core`, bound by
/// wasm-bindgen for the JS SDK into `target/sdk-direct`, size-optimised;
/// Trunk copies it to `dist/sdk/direct/` (see app/index.html).
fn build_sdk_core() -> Result<(), String> {
    let input = root().join("target/wasm32-unknown-unknown/sdk-core/streams_sdk.wasm");
    let out = root().join("target/sdk-direct");
    run(cargo().args([
        "build",
        "--profile",
        "sdk-core",
        "-p",
        "switchboard-streams-sdk",
        "--features",
        "js-core",
        "--target",
        "wasm32-unknown-unknown",
        "--lib",
    ]))?;
    let stamp = Stamp::new(
        "sdk-core",
        std::slice::from_ref(&input),
        std::slice::from_ref(&out),
        &[],
    );
    if stamp.fresh() {
        return Ok(());
    }
    run(Command::new("wasm-bindgen")
        .env("PATH", tool_path())
        .args([
            "--target",
            "web",
            "--no-typescript",
            "--out-name",
            "core",
            "--out-dir",
        ])
        .arg(&out)
        .arg(&input))?;
    let wasm = out.join("core_bg.wasm");
    run(Command::new("wasm-opt")
        .env("PATH", tool_path())
        .arg("-Oz")
        .args(WASM_FEATURES)
        .arg(&wasm)
        .arg("-o")
        .arg(&wasm))?;
    stamp.record()
}

/// The audio engine: a dependency-free wasm module (no imports), optimised
/// with wasm-opt -O3 (speed over size: it runs every 2.67 ms).
fn build_media() -> Result<(), String> {
    // The engine profile: release with opus-pure optimised for size (see
    // the root Cargo.toml), so the native server keeps a fast codec.
    run(cargo().args([
        "build",
        "--profile",
        "engine",
        "-p",
        "switchboard-media",
        "--target",
        "wasm32-unknown-unknown",
    ]))?;
    let input = root().join("target/wasm32-unknown-unknown/engine/media.wasm");
    let output = root().join("dist/media/engine.wasm");
    std::fs::create_dir_all(root().join("dist/media")).map_err(|e| format!("dist/media: {e}"))?;
    let stamp = Stamp::new(
        "engine",
        std::slice::from_ref(&input),
        std::slice::from_ref(&output),
        &[],
    );
    if stamp.fresh() {
        return Ok(());
    }
    run(Command::new("wasm-opt")
        .env("PATH", tool_path())
        .arg("-O3")
        .args(WASM_FEATURES)
        .arg(&input)
        .arg("-o")
        .arg(&output))?;
    stamp.record()
}

/// The wasm features the engine is built with (see .cargo/config.toml).
const WASM_FEATURES: &[&str] = &[
    "--enable-simd",
    "--enable-bulk-memory",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-mutable-globals",
];

fn cmd_run(args: &[String]) -> Result<(), String> {
    ensure_build_tools()?;
    build_ccp()?;
    // Stopped when this guard drops: after the backend exits, or on error.
    let _orders = start_order_service(args)?;
    let mut server = cargo();
    server.args(["run", "--release", "-p", "switchboard-server", "--"]);
    server.args(args);
    run(&mut server)
}

/// The sample order service (order-service/), the external function the
/// sample flow invokes, running beside the backend. Its database lives in
/// the backend's data directory. Dropping the guard closes the service's
/// stdin (it runs with `--exit-on-stdin-eof`), waits a moment for it to
/// stop, then kills it; if xtask itself dies (Ctrl-C, a kill) the pipe
/// closes with it, so no orphan keeps port 8091.
struct OrderService(std::process::Child);

impl Drop for OrderService {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        for _ in 0..60 {
            if matches!(self.0.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_order_service(backend_args: &[String]) -> Result<OrderService, String> {
    run(cargo().args(["build", "--release", "-p", "switchboard-order-service"]))?;
    let db = backend_data_dir(backend_args)?.join("orders.sqlite");
    let mut cmd = cargo();
    cmd.current_dir(root())
        .args([
            "run",
            "--release",
            "-q",
            "-p",
            "switchboard-order-service",
            "--",
        ])
        .args(["--listen", "127.0.0.1:8091", "--exit-on-stdin-eof", "--db"])
        .arg(&db)
        .stdin(std::process::Stdio::piped());
    eprintln!("xtask> {cmd:?}");
    cmd.spawn()
        .map(OrderService)
        .map_err(|e| format!("cannot start the order service: {e}"))
}

/// The backend's `[server] data_dir` (relative to the workspace root, where
/// the backend runs): read from `--config FILE` if given, else the sample's
/// "var". A line scan, not a TOML parser: xtask has no dependencies, and the
/// backend validates the file itself a moment later.
fn backend_data_dir(backend_args: &[String]) -> Result<PathBuf, String> {
    let Some(file) = backend_args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| backend_args.get(i + 1))
    else {
        return Ok(root().join("var"));
    };
    let path = root().join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut in_server = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_server = line == "[server]";
        } else if let Some(value) = line
            .strip_prefix("data_dir")
            .map(str::trim_start)
            .and_then(|rest| rest.strip_prefix('='))
            .filter(|_| in_server)
        {
            let value = value
                .split('#')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            return Ok(root().join(value));
        }
    }
    Ok(root().join("var"))
}

fn cmd_test(args: &[String]) -> Result<(), String> {
    let browser = !args.iter().any(|a| a == "--no-browser");
    ensure_build_tools()?;
    ensure_test_tools()?;
    if browser {
        ensure_browser_tools()?;
    }
    run(cargo().args(["test", "--workspace", "--exclude", "switchboard-app"]))?;
    check_sdk_types()?;
    // The SDK's JS that needs no browser: the Streams facade's semantics,
    // its API rows, and the npm package with a strict TypeScript consumer.
    run(Command::new("node").env("PATH", tool_path()).args([
        "--test",
        "--test-concurrency=1",
        "tests/js/",
    ]))?;
    if browser {
        build_ccp()?;
        // The order service too: the flow page's test runs the sample flow.
        run(cargo().args([
            "build",
            "-p",
            "switchboard-server",
            "-p",
            "switchboard-order-service",
        ]))?;
        run(Command::new("node").env("PATH", tool_path()).args([
            "--test",
            "--test-concurrency=1",
            "tests/browser/",
        ]))?;
    }
    Ok(())
}

/// Where `tsc` writes the SDK's declarations, and the committed copy.
const SDK_TYPES_BUILT: &str = "target/sdk-types/switchboard.d.ts";
const SDK_TYPES_COMMITTED: &str = "streams-sdk/js/switchboard.d.ts";

/// Type-checks the SDK's JSDoc (strict) and generates its declarations.
fn build_sdk_types() -> Result<String, String> {
    run(Command::new("tsc")
        .env("PATH", tool_path())
        .args(["-p", "streams-sdk/tsconfig.json"]))?;
    std::fs::read_to_string(root().join(SDK_TYPES_BUILT))
        .map_err(|e| format!("{SDK_TYPES_BUILT}: {e}"))
}

/// The committed `.d.ts` must be what the build generates.
fn check_sdk_types() -> Result<(), String> {
    let built = build_sdk_types()?;
    let committed = std::fs::read_to_string(root().join(SDK_TYPES_COMMITTED))
        .map_err(|e| format!("{SDK_TYPES_COMMITTED}: {e}"))?;
    if built == committed {
        Ok(())
    } else {
        Err(format!(
            "{SDK_TYPES_COMMITTED} is not what the SDK's source generates; \
             run `cargo xtask sdk-types` and commit the result"
        ))
    }
}

fn cmd_sdk_types() -> Result<(), String> {
    ensure_build_tools()?;
    // The SDK's ERROR_CODES, generated from the Rust list (the same test
    // checks it in `cargo test`).
    run(cargo().env("SWITCHBOARD_BLESS", "1").args([
        "test",
        "-q",
        "-p",
        "switchboard-streams-sdk",
        "--lib",
        "errors::",
    ]))?;
    let built = build_sdk_types()?;
    std::fs::write(root().join(SDK_TYPES_COMMITTED), built)
        .map_err(|e| format!("{SDK_TYPES_COMMITTED}: {e}"))
}

fn cmd_bench(args: &[String]) -> Result<(), String> {
    let which = args.first().map(String::as_str).unwrap_or("load");
    match which {
        "media" => {
            run(cargo().args([
                "run",
                "--release",
                "-p",
                "switchboard-media",
                "--example",
                "bench",
            ]))?;
            ensure_build_tools()?;
            build_media()?;
            run(Command::new("node").args(["tests/bench/media-wasm.mjs", "dist/media/engine.wasm"]))
        }
        "load" => load_bench("loadgen", &args[args.len().min(1)..]),
        "media-load" => load_bench("mediagen", &args[args.len().min(1)..]),
        "hostile" => load_bench("hostile", &args[args.len().min(1)..]),
        "sip" => load_bench("sipgen", &args[args.len().min(1)..]),
        "calls" => browser_bench("tests/bench/call-latency.mjs", true),
        "webrtc" => browser_bench("tests/bench/webrtc.mjs", true),
        "ccp" => browser_bench("tests/bench/ccp.mjs", false),
        "sdk" => browser_bench("tests/bench/sdk.mjs", false),
        // A trunk call's mouth-to-ear both ways, baresip to the CCP (`true`:
        // the test tools, baresip among them).
        "sip-m2e" => browser_bench("tests/bench/sip-mouth-to-ear.mjs", true),
        other => Err(format!(
            "unknown benchmark `{other}` (known: load, media, media-load, hostile, sip, calls, webrtc, ccp, sdk)"
        )),
    }
}

/// A load generator from the tests crate (`loadgen`, `mediagen`) against a
/// release backend, with the arguments after the benchmark's name.
fn load_bench(bin: &str, args: &[String]) -> Result<(), String> {
    run(cargo().args(["build", "--release", "-p", "switchboard-server"]))?;
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "-p",
        "switchboard-tests",
        "--bin",
        bin,
        "--",
    ]);
    cmd.args(args);
    run(&mut cmd)
}

/// A benchmark that runs in Chromium against the real backend: builds the
/// CCP and the backend, then runs `script` with node. `speech`: it makes
/// speech with espeak-ng and sox.
fn browser_bench(script: &str, speech: bool) -> Result<(), String> {
    ensure_build_tools()?;
    if speech {
        ensure_test_tools()?;
    }
    ensure_browser_tools()?;
    build_ccp()?;
    run(cargo().args(["build", "-p", "switchboard-server"]))?;
    run(Command::new("node").env("PATH", tool_path()).arg(script))
}

fn cmd_lint() -> Result<(), String> {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "switchboard-app",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}

/// The protocol conformance suite (tests/conformance) against a running
/// backend; the arguments go to it as they are (`--help` lists them).
fn cmd_conformance(args: &[String]) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args([
        "run",
        "-q",
        "-p",
        "switchboard-tests",
        "--bin",
        "conformance",
        "--",
    ]);
    cmd.args(args);
    run(&mut cmd)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = args
        .split_first()
        .map_or(("help", &[][..]), |(c, r)| (c.as_str(), r));
    let result = match command {
        "run" => cmd_run(rest),
        "test" => cmd_test(rest),
        "bench" => cmd_bench(rest),
        "sdk-types" => cmd_sdk_types(),
        "install" => ensure_build_tools()
            .and_then(|()| ensure_test_tools())
            .and_then(|()| ensure_browser_tools()),
        "lint" => cmd_lint(),
        "conformance" => cmd_conformance(rest),
        _ => {
            eprintln!("usage: cargo xtask run [--config FILE] | test [--no-browser] | bench [load ARGS | media | media-load ARGS | hostile ARGS | calls | webrtc | ccp | sdk] | sdk-types | install | lint");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{backend_data_dir, ccp_page_with_bundle, root};

    #[test]
    fn the_ccp_page_loads_one_bundle_in_place_of_trunks_scripts() {
        // Trunk's minified page, as `trunk build --release` writes it.
        let page = "<!doctype html><html lang=en><link href=/ccp/style-a.css rel=stylesheet>\
            <script src=/ccp/switchboard-app-0123456789abcdef.js type=module></script>\
            <script data-app-js=/ccp/switchboard-app-0123456789abcdef.js data-app-wasm=/ccp/switchboard-app-0123456789abcdef_bg.wasm src=/ccp/boot.js type=module></script>\
            <link crossorigin href=/ccp/switchboard-app-0123456789abcdef.js rel=modulepreload>\
            <link crossorigin href=/ccp/snippets/switchboard-app-1/inline0.js rel=modulepreload>\
            <link as=fetch crossorigin href=/ccp/switchboard-app-0123456789abcdef_bg.wasm rel=preload type=application/wasm></head><body></body></html>";
        let got = ccp_page_with_bundle(page, "ccp-00000000000000aa.js").expect("rewritten");
        assert_eq!(
            got,
            "<!doctype html><html lang=en><link href=/ccp/style-a.css rel=stylesheet>\
            <script data-app-wasm=/ccp/switchboard-app-0123456789abcdef_bg.wasm src=/ccp/ccp-00000000000000aa.js type=module></script>\
            <link as=fetch crossorigin href=/ccp/switchboard-app-0123456789abcdef_bg.wasm rel=preload type=application/wasm></head><body></body></html>"
        );
        // A page without boot.js's tag is an error, not a page that never starts.
        assert!(
            ccp_page_with_bundle("<html><script data-app-wasm=/x_bg.wasm></html>", "b.js").is_err()
        );
        assert!(ccp_page_with_bundle("<html></html>", "b.js").is_err());
    }

    #[test]
    fn the_order_service_database_goes_in_the_backends_data_dir() {
        assert_eq!(backend_data_dir(&[]).ok(), Some(root().join("var")));
        let file = std::env::temp_dir().join(format!("xtask-data-dir-{}.toml", std::process::id()));
        let args = ["--config".to_string(), file.display().to_string()];
        let cases = [
            // Only [server]'s key counts, comments and spacing aside.
            ("[other]\ndata_dir = \"no\"\n[server]\nlisten = \"x\"\ndata_dir   =  \"state/db\" # here\n", root().join("state/db")),
            ("[server]\ndata_dir = \"/abs/dir\"\n", std::path::PathBuf::from("/abs/dir")),
            ("[server]\nlisten = \"x\"\n", root().join("var")),
            ("[server.more]\ndata_dir = \"no\"\n", root().join("var")),
        ];
        for (text, want) in cases {
            std::fs::write(&file, text).expect("write");
            assert_eq!(backend_data_dir(&args).ok(), Some(want), "{text}");
        }
        let _ = std::fs::remove_file(&file);
        assert!(
            backend_data_dir(&args).is_err(),
            "a missing file is an error"
        );
    }
}

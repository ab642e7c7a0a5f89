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
fn build_ccp() -> Result<(), String> {
    run(cargo().args(["fetch"]))?;
    // Before Trunk: it copies the core into dist/sdk/direct.
    build_sdk_core()?;
    run(Command::new("trunk")
        .env("PATH", tool_path())
        .args(["build", "--release", "--offline"]))?;
    minify_ccp_loader()?;
    minify_sdk()?;
    build_media()
}

/// Minifies the CCP's wasm-bindgen loader in place: Trunk's own minifier
/// fails on ES modules ("Failed to minify JS"), so the 50 KB loader would
/// ship as written. Its name keeps Trunk's hash of the unminified content,
/// which is still unique to the build; the page carries no integrity for it.
fn minify_ccp_loader() -> Result<(), String> {
    let dist = root().join("dist");
    let entries = std::fs::read_dir(&dist).map_err(|e| format!("{}: {e}", dist.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("switchboard-app-") && name.ends_with(".js") {
            let path = entry.path();
            run(Command::new("esbuild")
                .env("PATH", tool_path())
                .arg(&path)
                // Errors only: the loader's import object repeats snippet
                // keys, which esbuild warns about; minified, it means the same.
                .args([
                    "--minify",
                    "--target=es2022",
                    "--log-level=error",
                    "--format=esm",
                ])
                .arg(format!("--outfile={}", path.display()))
                .arg("--allow-overwrite"))?;
        }
    }
    Ok(())
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
    let out = root().join("target/sdk-direct");
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
        .arg(root().join("target/wasm32-unknown-unknown/sdk-core/streams_sdk.wasm")))?;
    let wasm = out.join("core_bg.wasm");
    run(Command::new("wasm-opt")
        .env("PATH", tool_path())
        .arg("-Oz")
        .args(WASM_FEATURES)
        .arg(&wasm)
        .arg("-o")
        .arg(&wasm))
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
    run(Command::new("wasm-opt")
        .env("PATH", tool_path())
        .arg("-O3")
        .args(WASM_FEATURES)
        .arg(&input)
        .arg("-o")
        .arg(&output))
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
    use super::{backend_data_dir, root};

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

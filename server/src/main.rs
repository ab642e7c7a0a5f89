//! `switchboard-server [--config FILE]` runs the backend (the embedded
//! sample configuration when no file is given);
//! `switchboard-server sim-call --server ADDR --from NUMBER --queue QUEUE
//! [--key KEY | --config FILE]` places a simulated inbound call with the
//! simulator key given, or the one in FILE, or the sample's development key.
//! `switchboard-server hash-password` reads a password from stdin and
//! prints its Argon2id hash for an agent's `password` in the configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use server::config::Config;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("sim-call") {
        return sim_call(&args).await;
    }
    if args.first().map(String::as_str) == Some("hash-password") {
        return hash_password(&args);
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("switchboard-server [--config FILE]\nswitchboard-server sim-call --server 127.0.0.1:8480 --from +819012345678 --queue support [--key KEY | --config FILE]\necho -n 'secret' | switchboard-server hash-password [--m-cost KIB] [--t-cost N]");
        return ExitCode::SUCCESS;
    }
    let cfg = match arg(&args, "--config") {
        Some(path) => Config::load(&PathBuf::from(path)),
        None => Config::sample(),
    };
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let running = match server::start(cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("Switchboard backend on http://{}", running.addr);
    println!("  CCP (agent softphone):  http://{}/ccp/", running.addr);
    if let Some(demo) = running.crm_addr {
        println!("  demo CRM page:          http://{demo}/");
        println!("  customer phone page:    http://{demo}/phone/");
    }
    println!("  sample agents: alice / alice-pass, bob / bob-pass, carol / carol-pass");
    let signal = stop_signal().await;
    tracing::info!("{signal}: stopping");
    let report = running.shutdown(STOP_DEADLINE).await;
    tracing::info!(
        calls_ended = report.calls_ended,
        sockets_left = report.sockets_left,
        bridge_done = report.bridge_done,
        store_flushed = report.store_flushed,
        "stopped"
    );
    ExitCode::SUCCESS
}

/// One line from stdin (a trailing newline is not part of the password),
/// hashed with Argon2id; the PHC string goes to stdout. `--m-cost KIB` and
/// `--t-cost N` override the defaults (19456 KiB, 2 passes).
fn hash_password(args: &[String]) -> ExitCode {
    use std::io::Read;
    let mut input = String::new();
    if let Err(e) = std::io::stdin().take(4096).read_to_string(&mut input) {
        eprintln!("cannot read the password from stdin: {e}");
        return ExitCode::from(2);
    }
    let password = input
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&input);
    let cost = |name: &str, default: u32| match arg(args, name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| format!("{name} must be a number")),
    };
    let (m_cost, t_cost) = match (cost("--m-cost", 19_456), cost("--t-cost", 2)) {
        (Ok(m), Ok(t)) => (m, t),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match server::auth::password::hash_password_with(password, m_cost, t_cost) {
        Ok(phc) => {
            println!("{phc}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// How long a graceful stop may take before the process exits anyway
/// (supervisors such as systemd wait 90 s before SIGKILL; Kubernetes 30 s).
const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Resolves on SIGTERM (service managers, `kill`) or SIGINT (Ctrl-C) with
/// the signal's name.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

async fn sim_call(args: &[String]) -> ExitCode {
    let server: SocketAddr = match arg(args, "--server")
        .unwrap_or_else(|| "127.0.0.1:8480".into())
        .parse()
    {
        Ok(a) => a,
        Err(_) => {
            eprintln!("--server must be an address like 127.0.0.1:8480");
            return ExitCode::from(2);
        }
    };
    let from = arg(args, "--from").unwrap_or_else(|| "+819012345678".into());
    let queue = arg(args, "--queue").unwrap_or_else(|| "support".into());
    let key = match (arg(args, "--key"), arg(args, "--config")) {
        (Some(key), _) => key,
        (None, Some(path)) => match Config::load(&PathBuf::from(path)) {
            Ok(cfg) if cfg.simulator => cfg.simulator_key,
            Ok(_) => {
                eprintln!("the simulator is off in that configuration");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("configuration error: {e}");
                return ExitCode::from(2);
            }
        },
        // The sample's development key, for `cargo xtask run`.
        (None, None) => match Config::sample() {
            Ok(cfg) => cfg.simulator_key,
            Err(e) => {
                eprintln!("configuration error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    match server::sim::place_call(server, &key, &from, &queue).await {
        Ok((status, body)) => {
            println!("{status} {body}");
            if (200..300).contains(&status) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("cannot reach {server}: {e}");
            ExitCode::FAILURE
        }
    }
}

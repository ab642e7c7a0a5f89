//! `switchboard-server [--config FILE]` runs the backend (the embedded
//! sample configuration when no file is given);
//! `switchboard-server sim-call --server ADDR --from NUMBER --queue QUEUE`
//! places a simulated inbound call.

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
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("switchboard-server [--config FILE]\nswitchboard-server sim-call --server 127.0.0.1:8480 --from +819012345678 --queue support");
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
    println!("  customer phone page:    http://{}/phone/", running.addr);
    if let Some(crm) = running.crm_addr {
        println!("  demo CRM page:          http://{crm}/");
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
    match server::sim::place_call(server, &from, &queue).await {
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

//! `switchboard-server [--config FILE]` runs the backend (the embedded
//! sample configuration when no file is given);
//! `switchboard-server sim-call --server ADDR --from NUMBER --queue QUEUE
//! [--key KEY | --config FILE]` places a simulated inbound call with the
//! simulator key given, or the one in FILE, or the sample's development key.

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
        println!("switchboard-server [--config FILE]\nswitchboard-server sim-call --server 127.0.0.1:8480 --from +819012345678 --queue support [--key KEY | --config FILE]");
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
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
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

//! `switchboard-order-service [--listen ADDR] [--db FILE] [--exit-on-stdin-eof]`
//! runs the sample order service (defaults: 127.0.0.1:8091, orders.sqlite).
//! `--exit-on-stdin-eof` ties its life to the process that started it:
//! `cargo xtask run` holds the write end of its stdin, so however xtask
//! ends (Ctrl-C, the backend exiting, a kill), the pipe closes and the
//! service stops instead of lingering as an orphan.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "switchboard-order-service [--listen 127.0.0.1:8091] [--db orders.sqlite] [--exit-on-stdin-eof]";

struct Args {
    listen: SocketAddr,
    db: PathBuf,
    exit_on_stdin_eof: bool,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut out = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 8091)),
        db: PathBuf::from("orders.sqlite"),
        exit_on_stdin_eof: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => {
                let v = it.next().ok_or("--listen needs an address")?;
                out.listen = v
                    .parse()
                    .map_err(|e| format!("--listen {v}: {e} (expected IP:PORT)"))?;
            }
            "--db" => out.db = PathBuf::from(it.next().ok_or("--db needs a file")?),
            "--exit-on-stdin-eof" => out.exit_on_stdin_eof = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match parse_args(&raw) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\nusage: {USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = args.db.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("cannot create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    let store = match order_service::Store::open(&args.db) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    // The bound address, not the flag's: with port 0 the OS picks it.
    let bound = listener.local_addr().unwrap_or(args.listen);
    println!(
        "Sample order service on http://{bound} (database {})",
        args.db.display()
    );
    let stop = stop_signal(args.exit_on_stdin_eof);
    if let Err(e) = axum::serve(listener, order_service::app(store))
        .with_graceful_shutdown(stop)
        .await
    {
        eprintln!("server error: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Ctrl-C, SIGTERM, or (with `--exit-on-stdin-eof`) the end of stdin.
async fn stop_signal(exit_on_stdin_eof: bool) {
    let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
    if exit_on_stdin_eof {
        // A plain thread: tokio's stdin needs a feature the workspace does
        // not enable, and this read blocks until the parent goes away.
        std::thread::spawn(move || {
            // Whatever the parent writes is discarded through a fixed
            // buffer; only the end (or an error) matters.
            let mut buf = [0u8; 256];
            let mut stdin = std::io::stdin().lock();
            while matches!(std::io::Read::read(&mut stdin, &mut buf), Ok(n) if n > 0) {}
            let _ = eof_tx.send(());
        });
    } else {
        drop(eof_tx);
    }
    let eof = async {
        if exit_on_stdin_eof {
            let _ = eof_rx.await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
        _ = eof => {}
    }
}

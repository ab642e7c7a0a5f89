//! The real backend binary as a child process, for tests that need what
//! only a process has: signals, `kill -9`, an exit status, files left on
//! disk by a process that died.
//!
//! `CARGO_BIN_EXE_*` only names binaries of the crate under test, and the
//! backend's binary belongs to the server crate; so [`server_binary`]
//! runs `cargo build -p switchboard-server` once per test process (a
//! no-op when it is fresh: Cargo has released its lock by the time tests
//! run) and uses the binary beside this test's executable.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// `target/<profile>/switchboard-server`, built (or brought up to date)
/// on first use.
pub fn server_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable");
        // target/<profile>/deps/<test>-<hash>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable under target/<profile>/deps");
        let bin = profile_dir.join(format!(
            "switchboard-server{}",
            std::env::consts::EXE_SUFFIX
        ));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "switchboard-server"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let built = build.status().is_ok_and(|s| s.success());
        assert!(
            built || bin.exists(),
            "cannot build {}: run `cargo build -p switchboard-server`",
            bin.display()
        );
        bin
    })
    .clone()
}

/// The test configuration for a server process keeping its data in
/// `dir`, with the repository's public/ (the simulated caller's prompt),
/// then `extra` lines.
pub fn process_config(dir: &Path, extra: &str) -> String {
    let public = Path::new(env!("CARGO_MANIFEST_DIR")).join("../public");
    format!(
        "{}data_dir = {:?}\npublic_dir = {:?}\n{extra}",
        crate::TEST_CONFIG,
        dir.display().to_string(),
        public.display().to_string()
    )
}

/// A backend process on a configuration file in a data directory.
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Everything it printed on stdout (its log), for failure messages.
    pub log: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

impl ServerProcess {
    /// Writes `config` to `dir/config.toml` and starts the backend on it;
    /// returns once it prints its address.
    pub fn start(dir: &Path, config: &str) -> ServerProcess {
        let path = dir.join("config.toml");
        std::fs::write(&path, config).expect("write config");
        let mut child = Command::new(server_binary())
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("start the backend");
        let stdout = child.stdout.take().expect("stdout");
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        // Drains stdout for the process's whole life, so a chatty log can
        // never fill the pipe and stall the backend.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("backend on http://").nth(1) {
                    let _ = addr_tx.send(rest.trim().to_owned());
                }
                if let Ok(mut log) = sink.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let addr = match addr_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                panic!("the backend did not start: {}", log.lock().expect("log"));
            }
        };
        ServerProcess {
            child,
            addr,
            log,
            status: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `INT`, `KILL`) with the system's `kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    /// Waits up to `deadline` for the process to exit.
    pub async fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().expect("wait") {
                self.status = Some(status);
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

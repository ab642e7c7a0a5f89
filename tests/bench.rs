//! Shared by the load benchmarks (`loadgen`, `mediagen`): command-line
//! arguments, a generated configuration with N agents, the backend started
//! as its own release process (so its memory and CPU are its own), and
//! reading its memory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tokio::io::{AsyncBufReadExt, BufReader};

/// `--name N` from the command line, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A configuration with `agents` agents named `agent0..`, password `pw`
/// (plain text, allowed by the development flag: a thousand Argon2 checks
/// would measure the password hash, not the backend), all on one profile
/// serving the `support` queue; its simulator takes [`crate::SIM_KEY`]
/// with no practical rate limit.
pub fn config(agents: u64, dir: &Path) -> String {
    let mut s = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nring_timeout_s = 30\nsimulator = true\ndev_plaintext_passwords = true\n\
         simulator_key = \"{}\"\nsimulator_calls_per_minute = 1000000\n\
         [[agent_states]]\nname = \"Available\"\nkind = \"routable\"\n[[agent_states]]\nname = \"Offline\"\nkind = \"offline\"\n\
         [[queues]]\nid = \"support\"\nname = \"Support\"\nmax_contacts = 100000\n\
         [[routing_profiles]]\nid = \"p\"\nname = \"P\"\nqueues = [{{ queue = \"support\", priority = 1 }}]\n",
        dir.display(),
        crate::SIM_KEY
    );
    for i in 0..agents {
        s.push_str(&format!("[[agents]]\nusername = \"agent{i}\"\npassword = \"pw\"\nname = \"Agent {i}\"\nrouting_profile = \"p\"\n"));
    }
    s
}

/// Resident memory of a process, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The backend running as a child process.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process.
    pub child: Child,
    /// Its data directory (removed on drop).
    pub dir: PathBuf,
}

impl Backend {
    /// Writes a configuration for `agents` agents and starts the release
    /// backend beside this executable.
    pub async fn start(agents: u64, name: &str) -> Backend {
        // Every simulated agent connects from 127.0.0.1: the cap on
        // sockets before `hello` per address is meant for the Internet.
        Backend::start_with(agents, name, "[limits]\nmax_pre_hello_per_ip = 1000000\n").await
    }

    /// Like [`Backend::start`], with `extra` TOML appended to the
    /// configuration (a `[limits]` table, say).
    pub async fn start_with(agents: u64, name: &str, extra: &str) -> Backend {
        let dir = std::env::temp_dir().join(format!("switchboard-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cfg_path = dir.join("load.toml");
        std::fs::write(&cfg_path, config(agents, &dir) + extra).expect("config");
        let bin = std::env::current_exe()
            .expect("exe")
            .with_file_name("switchboard-server");
        let mut child = Command::new(&bin)
            .args(["--config", &cfg_path.display().to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "start {} (cargo build --release -p switchboard-server): {e}",
                    bin.display()
                )
            });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines =
            BufReader::new(tokio::process::ChildStdout::from_std(stdout).expect("async stdout"))
                .lines();
        let addr = loop {
            let line = lines
                .next_line()
                .await
                .expect("read")
                .expect("backend printed its address");
            if let Some(rest) = line.split("backend on http://").nth(1) {
                break rest.trim().parse().expect("address");
            }
        };
        // Keep reading: the backend prints more lines, and a closed pipe
        // would make its `println!` fail and stop it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Backend { addr, child, dir }
    }

    /// The backend's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! The binary as `cargo xtask run` starts it: it serves the seeded order on
//! the address given, stops when its stdin closes (`--exit-on-stdin-eof`,
//! so it never outlives xtask), keeps its data across the restart, and
//! refuses bad arguments with exit code 2.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard-order-service");

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("order-service-process-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Starts the service on port 0 and returns it with its address (read from
/// the line it prints once it listens).
fn start(db: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--exit-on-stdin-eof", "--db"])
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, addr)
}

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

/// Waits (bounded) for the child to exit; its status, or None if it lingers.
fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn stops_when_stdin_closes_and_keeps_its_data() {
    let dir = temp_dir();
    let db = dir.join("nested/orders.sqlite");
    let (mut child, addr) = start(&db);
    let answer = get(&addr, "/v1/orders/100");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("\"shipping_date\":\"2018-11-12\""),
        "{answer}"
    );

    drop(child.stdin.take());
    let status = wait_exit(&mut child, Duration::from_secs(10));
    if status.is_none() {
        let _ = child.kill();
    }
    assert!(status.expect("exited after stdin closed").success());
    assert!(
        TcpStream::connect(&addr).is_err(),
        "nothing listens any more"
    );

    // The database outlives the process.
    let (mut child, addr) = start(&db);
    assert!(get(&addr, "/v1/orders/100").starts_with("HTTP/1.1 200"));
    drop(child.stdin.take());
    assert!(wait_exit(&mut child, Duration::from_secs(10)).is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_exit_with_2() {
    for args in [
        &["--bogus"][..],
        &["--listen"][..],
        &["--listen", "not-an-address"][..],
        &["--db"][..],
    ] {
        let out = Command::new(BIN).args(args).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?} explains itself");
    }
}

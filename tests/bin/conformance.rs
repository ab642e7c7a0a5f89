//! `conformance`: checks a running backend against docs/protocol.md.
//!
//! ```text
//! conformance --url http://HOST:PORT --agent USER:PASS --agent USER2:PASS2
//!             [--sim | --sim-key KEY | --call-command 'CMD']
//!             [--sim-from +15550001234] [--sim-queue support]
//!             [--only ID|GROUP]... [--skip ID|GROUP]...
//! ```
//!
//! Prints one PASS/FAIL/SKIP line per check with the reason, and exits 1
//! if any check failed (2 on bad arguments). `cargo xtask conformance`
//! builds and runs it.

use std::process::ExitCode;

use switchboard_tests::conformance::{self, Agent, CallSource, Endpoint, Outcome, Target};

const USAGE: &str =
    "usage: conformance --url http://HOST:PORT --agent USER:PASS --agent USER2:PASS2
                   [--sim | --sim-key KEY | --call-command 'CMD']
                   [--sim-from NUMBER] [--sim-queue QUEUE]
                   [--only ID|GROUP]... [--skip ID|GROUP]...

  --agent         two test agents (the first takes the test call; the second
                  must be able to log in; both should hold no contacts)
  --sim           start the call with the reference simulator, POST /v1/sim/calls
  --sim-key KEY   the same, sending `Authorization: Bearer KEY`
  --sim-from/-queue  the caller's number (+15550001234) and queue (support)
  --call-command  a shell command that makes an inbound call ring in a queue
                  the first agent serves (run once, with sh -c)
  --only/--skip   select checks by id or group (`limits`, `hello`, `call`, ...)
Without a way to start a call the call checks are skipped.";

fn parse(args: &[String]) -> Result<Target, String> {
    let mut url = None;
    let mut agents = Vec::new();
    let mut sim = false;
    let mut key = None;
    let mut command = None;
    let mut from = "+15550001234".to_owned();
    let mut queue = "support".to_owned();
    let (mut only, mut skip) = (Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--url" => url = Some(value()?),
            "--agent" => agents.push(Agent::parse(&value()?)?),
            "--sim" => sim = true,
            "--sim-key" => key = Some(value()?),
            "--sim-from" => from = value()?,
            "--sim-queue" => queue = value()?,
            "--call-command" => command = Some(value()?),
            "--only" => only.push(value()?),
            "--skip" => skip.push(value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let endpoint = Endpoint::parse(&url)?;
    let agents: [Agent; 2] = agents
        .try_into()
        .map_err(|_| "exactly two --agent USER:PASS are required".to_owned())?;
    let call = match (sim || key.is_some(), command) {
        (true, Some(_)) => {
            return Err("--sim/--sim-key and --call-command exclude each other".into())
        }
        (true, None) => CallSource::Simulator { key, from, queue },
        (false, Some(cmd)) => CallSource::Command(cmd),
        (false, None) => CallSource::None,
    };
    Ok(Target {
        endpoint,
        agents,
        call,
        only,
        skip,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let target = match parse(&args) {
        Ok(t) => t,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("conformance: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    println!(
        "Switchboard protocol conformance: {} as {} and {}\n",
        target.endpoint.ws_url(),
        target.agents[0].username,
        target.agents[1].username
    );
    let mut progress = |r: &conformance::CheckResult| {
        let tag = match r.outcome {
            Outcome::Pass => "PASS",
            Outcome::Fail(_) => "FAIL",
            Outcome::Skip(_) => "SKIP",
        };
        eprintln!("  … {tag} {}", r.id);
    };
    let report = conformance::run(&target, &mut progress).await;
    println!("\n{}", report.render());
    if report.failures().next().is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

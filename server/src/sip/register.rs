//! Registration with a trunk's registrar (RFC 3261 §10): for each trunk
//! with `register = true`, a task REGISTERs our Contact under the trunk's
//! username, answers 401/407 with digest credentials, and refreshes at
//! half the expiry the registrar granted (it may shorten ours), so the
//! binding never lapses. A registrar that does not answer or refuses is
//! retried with a back-off; nothing else in the gateway waits on it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;

use super::digest::Challenge;
use super::msg::{self, Message, Start};
use super::T1;
use crate::center::random_id;
use crate::config::SipTrunk;

/// Wait before trying again after a failure (no answer, 403, 5xx).
const RETRY: Duration = Duration::from_secs(30);
/// Never refresh more often than this.
const MIN_REFRESH: Duration = Duration::from_secs(2);

/// One trunk's registration.
pub(super) struct Registration {
    pub socket: super::transport::Transport,
    pub local: SocketAddr,
    pub trunk: SipTrunk,
    pub target: SocketAddr,
    pub call_id: String,
}

/// What one REGISTER transaction ended with.
enum Outcome {
    /// Registered for this long.
    Registered(Duration),
    /// Challenged: send again with this header.
    Challenge(String, String, bool),
    /// Refused or unanswered.
    Failed(String),
}

impl Registration {
    fn domain(&self) -> String {
        self.trunk
            .credentials
            .as_ref()
            .and_then(|c| c.realm.clone())
            .unwrap_or_else(|| {
                self.trunk
                    .address
                    .as_deref()
                    .and_then(|a| a.rsplit_once(':').map(|(h, _)| h.to_owned()))
                    .unwrap_or_default()
            })
    }

    fn user(&self) -> String {
        self.trunk
            .credentials
            .as_ref()
            .map(|c| c.username.clone())
            .unwrap_or_default()
    }

    fn request(&self, cseq: u32, tag: &str, auth: Option<&(String, String)>) -> Vec<u8> {
        let (user, domain) = (self.user(), self.domain());
        let auth = auth
            .map(|(n, v)| format!("{n}: {v}\r\n"))
            .unwrap_or_default();
        format!(
            "REGISTER sip:{domain} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:{user}@{domain}>;tag={tag}\r\nTo: <sip:{user}@{domain}>\r\n\
Call-ID: {cid}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local}>;expires={exp}\r\n\
Expires: {exp}\r\n{auth}Content-Length: 0\r\n\r\n",
            local = self.local,
            branch = random_id("z9hG4bK"),
            cid = self.call_id,
            exp = self.trunk.register_expires_s,
        )
        .into_bytes()
    }

    /// Runs for the gateway's life.
    pub async fn run(self, mut rx: mpsc::Receiver<Message>) {
        let tag = random_id("t");
        let mut cseq = 0u32;
        let mut auth: Option<(String, String)> = None;
        let mut challenges = 0u32;
        loop {
            cseq += 1;
            let outcome = self
                .transaction(&mut rx, self.request(cseq, &tag, auth.as_ref()), cseq)
                .await;
            match outcome {
                Outcome::Registered(granted) => {
                    challenges = 0;
                    tracing::info!(
                        "sip: registered with trunk {} for {} s",
                        self.trunk.name,
                        granted.as_secs()
                    );
                    tokio::time::sleep((granted / 2).max(MIN_REFRESH)).await;
                }
                Outcome::Challenge(name, value, stale) => {
                    challenges += 1;
                    if challenges > 2 && !stale {
                        tracing::warn!("sip: trunk {} refused our credentials", self.trunk.name);
                        auth = None;
                        challenges = 0;
                        tokio::time::sleep(RETRY).await;
                    } else {
                        auth = Some((name, value));
                    }
                }
                Outcome::Failed(why) => {
                    tracing::warn!("sip: registering with trunk {}: {why}", self.trunk.name);
                    auth = None;
                    challenges = 0;
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    /// Sends one REGISTER (retransmitting per timer E) and reads its final
    /// response.
    async fn transaction(
        &self,
        rx: &mut mpsc::Receiver<Message>,
        request: Vec<u8>,
        cseq: u32,
    ) -> Outcome {
        let give_up = tokio::time::Instant::now() + 64 * T1;
        let mut gap = T1;
        let _ = self.socket.send_to(&request, self.target).await;
        loop {
            let wait = tokio::time::sleep(gap);
            tokio::select! {
                m = rx.recv() => {
                    let Some(m) = m else { return Outcome::Failed("gateway stopped".into()) };
                    let Start::Response { code } = m.start else { continue };
                    if m.cseq() != Some((cseq, "REGISTER")) || code < 200 {
                        continue;
                    }
                    return self.outcome(code, &m, cseq);
                }
                _ = wait => {
                    if tokio::time::Instant::now() >= give_up {
                        return Outcome::Failed("no answer from the registrar".into());
                    }
                    // Timer E only on UDP (RFC 3261 17.1.2.2), or to reopen a
                    // lost TCP connection; timer F always.
                    if self.socket.should_retransmit(self.target) {
                        let _ = self.socket.send_to(&request, self.target).await;
                    }
                    gap = (gap * 2).min(Duration::from_secs(4));
                }
            }
        }
    }

    fn outcome(&self, code: u16, m: &Message, _cseq: u32) -> Outcome {
        match code {
            200..=299 => {
                // The registrar's grant: our Contact's expires, else the
                // Expires header, else what we asked for.
                let ours = format!("{}", self.socket.local_for(self.target));
                let from_contact = m
                    .headers_named("contact")
                    .flat_map(|v| v.split(','))
                    .find(|c| c.contains(&ours))
                    .and_then(|c| msg::param(c, "expires"))
                    .and_then(|e| e.parse::<u64>().ok());
                let secs = from_contact
                    .or_else(|| m.header("expires").and_then(|e| e.trim().parse().ok()))
                    .unwrap_or(u64::from(self.trunk.register_expires_s));
                Outcome::Registered(Duration::from_secs(secs.max(1)))
            }
            401 | 407 => {
                let header = if code == 401 {
                    "www-authenticate"
                } else {
                    "proxy-authenticate"
                };
                let Some(creds) = self.trunk.credentials.as_ref() else {
                    return Outcome::Failed(format!("{code} without credentials"));
                };
                match m.header(header).map(Challenge::parse) {
                    Some(Ok(ch)) => {
                        let uri = format!("sip:{}", self.domain());
                        let value = ch.answer(
                            &creds.username,
                            &creds.password,
                            "REGISTER",
                            &uri,
                            1,
                            &random_id("c"),
                        );
                        let name = if code == 401 {
                            "Authorization"
                        } else {
                            "Proxy-Authorization"
                        };
                        Outcome::Challenge(name.into(), value, ch.stale)
                    }
                    Some(Err(e)) => Outcome::Failed(e.to_string()),
                    None => Outcome::Failed(format!("{code} without a challenge")),
                }
            }
            _ => Outcome::Failed(format!("SIP {code}")),
        }
    }
}

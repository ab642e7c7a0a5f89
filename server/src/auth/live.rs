//! The sockets open on each login, so a logout can close them and a token's
//! expiry holds on a socket opened before it.
//!
//! A login is a *family* of tokens: the one `POST /v1/login` issued and
//! every token refreshed from it. Logging out revokes the whole family.
//! Each authenticated socket holds a [`Grant`]: the family, when its token
//! expires (moved forward by `refresh_token` on that socket), and a watch
//! the registry flips on revocation. The socket's loop awaits
//! [`Grant::next`], which yields the warning, the expiry or the revocation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::Millis;
use tokio::sync::watch;

/// What a socket must do about its login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantEvent {
    /// Tell the client its token expires at this time.
    Expiring(Millis),
    /// The token expired without a refresh: close.
    Expired,
    /// The login was revoked: close.
    Revoked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lease {
    expires_at: Millis,
    revoked: bool,
}

type Senders = HashMap<String, Vec<(u64, watch::Sender<Lease>)>>;

/// Every authenticated socket, by login family.
#[derive(Debug, Default)]
pub struct Registry {
    sockets: Mutex<Senders>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Registry {
    /// Registers a socket on `family` whose token expires at `expires_at`.
    pub fn track(self: &Arc<Self>, family: &str, expires_at: Millis, warn_ms: u64) -> Grant {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = watch::channel(Lease {
            expires_at,
            revoked: false,
        });
        if let Ok(mut map) = self.sockets.lock() {
            let list = map.entry(family.to_owned()).or_default();
            // A sender whose socket is gone is dropped on the way.
            list.retain(|(_, s)| !s.is_closed());
            list.push((id, tx.clone()));
        }
        Grant {
            registry: self.clone(),
            id,
            family: family.to_owned(),
            tx,
            rx,
            warn_ms,
            warned_for: None,
        }
    }

    /// Revokes every socket of `family`; returns how many were open.
    pub fn revoke(&self, family: &str) -> usize {
        let Ok(mut map) = self.sockets.lock() else {
            return 0;
        };
        let list = map.remove(family).unwrap_or_default();
        for (_, tx) in &list {
            tx.send_modify(|l| l.revoked = true);
        }
        list.len()
    }

    /// Open sockets on `family`.
    pub fn open_on(&self, family: &str) -> usize {
        self.sockets
            .lock()
            .map(|m| {
                m.get(family)
                    .map_or(0, |l| l.iter().filter(|(_, s)| !s.is_closed()).count())
            })
            .unwrap_or(0)
    }

    fn forget(&self, family: &str, id: u64) {
        if let Ok(mut map) = self.sockets.lock() {
            if let Some(list) = map.get_mut(family) {
                list.retain(|(i, _)| *i != id);
                if list.is_empty() {
                    map.remove(family);
                }
            }
        }
    }
}

/// One socket's login; unregisters on drop.
#[derive(Debug)]
pub struct Grant {
    registry: Arc<Registry>,
    id: u64,
    family: String,
    tx: watch::Sender<Lease>,
    rx: watch::Receiver<Lease>,
    warn_ms: u64,
    /// The expiry already warned about (a refresh warns again for the new one).
    warned_for: Option<Millis>,
}

impl Grant {
    /// The login family this socket belongs to.
    pub fn family(&self) -> &str {
        &self.family
    }

    /// When the socket's token expires.
    pub fn expires_at(&self) -> Millis {
        self.rx.borrow().expires_at
    }

    /// After `refresh_token`: the socket lives until the new token expires.
    pub fn extend(&mut self, expires_at: Millis) {
        self.tx.send_modify(|l| l.expires_at = expires_at);
    }

    /// Whether the socket may still act at `now`.
    pub fn valid(&self, now: Millis) -> bool {
        let l = *self.rx.borrow();
        !l.revoked && now < l.expires_at
    }

    /// Waits for the next thing the socket must act on. `clock` is the
    /// backend's wall clock (expiry times are wall-clock milliseconds).
    pub async fn next(&mut self, clock: impl Fn() -> Millis) -> GrantEvent {
        loop {
            let lease = *self.rx.borrow_and_update();
            if lease.revoked {
                return GrantEvent::Revoked;
            }
            let now = clock();
            if now >= lease.expires_at {
                return GrantEvent::Expired;
            }
            let warn_at = Millis(lease.expires_at.0.saturating_sub(self.warn_ms));
            let due = if self.warned_for != Some(lease.expires_at) {
                if now >= warn_at {
                    self.warned_for = Some(lease.expires_at);
                    return GrantEvent::Expiring(lease.expires_at);
                }
                warn_at
            } else {
                lease.expires_at
            };
            let wait = Duration::from_millis(due.since(now).max(1));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                changed = self.rx.changed() => {
                    if changed.is_err() {
                        // The registry dropped this login: treat as revoked.
                        return GrantEvent::Revoked;
                    }
                }
            }
        }
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.registry.forget(&self.family, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn clock(t: &Arc<AtomicU64>) -> impl Fn() -> Millis {
        let t = t.clone();
        move || Millis(t.load(Ordering::Relaxed))
    }

    #[tokio::test]
    async fn warns_once_then_expires() {
        let reg = Arc::new(Registry::default());
        let t = Arc::new(AtomicU64::new(1_000));
        let mut g = reg.track("f", Millis(1_050), 40);
        t.store(1_010, Ordering::Relaxed);
        assert_eq!(g.next(clock(&t)).await, GrantEvent::Expiring(Millis(1_050)));
        t.store(1_050, Ordering::Relaxed);
        assert_eq!(g.next(clock(&t)).await, GrantEvent::Expired);
    }

    #[tokio::test]
    async fn a_refresh_warns_again_for_the_new_expiry() {
        let reg = Arc::new(Registry::default());
        let t = Arc::new(AtomicU64::new(1_000));
        let mut g = reg.track("f", Millis(1_010), 100);
        assert_eq!(g.next(clock(&t)).await, GrantEvent::Expiring(Millis(1_010)));
        g.extend(Millis(2_000));
        t.store(1_950, Ordering::Relaxed);
        assert_eq!(g.next(clock(&t)).await, GrantEvent::Expiring(Millis(2_000)));
        assert!(g.valid(Millis(1_999)));
        assert!(!g.valid(Millis(2_000)));
    }

    #[tokio::test]
    async fn revoking_a_family_wakes_its_sockets_only() {
        let reg = Arc::new(Registry::default());
        let wall = || Millis(0);
        let mut a = reg.track("f", Millis(u64::MAX), 10);
        let mut b = reg.track("f", Millis(u64::MAX), 10);
        let other = reg.track("g", Millis(u64::MAX), 10);
        assert_eq!(reg.open_on("f"), 2);
        assert_eq!(reg.revoke("f"), 2);
        assert_eq!(a.next(wall).await, GrantEvent::Revoked);
        assert_eq!(b.next(wall).await, GrantEvent::Revoked);
        assert!(other.valid(Millis(0)));
        drop(other);
        assert_eq!(reg.open_on("g"), 0, "dropping a grant unregisters it");
    }
}

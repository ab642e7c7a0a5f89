//! The stop signal for a graceful shutdown, and a count of the tasks that
//! must finish before the process may exit.
//!
//! `main` triggers it on SIGTERM or SIGINT; listeners stop accepting,
//! every socket task sees it, sends what it still has queued (the
//! `contact_destroyed` events of the calls the center just closed), closes
//! and drops its [`Busy`] guard; [`Shutdown::drained`] waits, with a
//! deadline, for the count to reach zero.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// A cloneable stop signal with a count of busy tasks.
#[derive(Clone)]
pub struct Shutdown {
    stop: Arc<watch::Sender<bool>>,
    busy: Arc<watch::Sender<usize>>,
}

/// Held by a task the shutdown waits for; releases on drop.
#[must_use = "the task counts as busy only while this is held"]
pub struct Busy {
    busy: Arc<watch::Sender<usize>>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.busy.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    /// Not triggered, nothing busy.
    pub fn new() -> Shutdown {
        Shutdown {
            stop: Arc::new(watch::channel(false).0),
            busy: Arc::new(watch::channel(0).0),
        }
    }

    /// Asks every task to stop (idempotent).
    pub fn trigger(&self) {
        self.stop.send_replace(true);
    }

    /// Whether the stop was asked for.
    pub fn is_triggered(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once the stop is asked for (at once if it already was).
    pub async fn triggered(&self) {
        let mut rx = self.stop.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// Counts the caller as busy until the guard drops.
    pub fn busy(&self) -> Busy {
        self.busy.send_modify(|n| *n += 1);
        Busy {
            busy: self.busy.clone(),
        }
    }

    /// Tasks still busy.
    pub fn busy_count(&self) -> usize {
        *self.busy.borrow()
    }

    /// Waits until no task is busy, at most `deadline`; returns how many
    /// still were when it gave up (0: all done).
    pub async fn drained(&self, deadline: Duration) -> usize {
        let mut rx = self.busy.subscribe();
        let _ = tokio::time::timeout(deadline, rx.wait_for(|n| *n == 0)).await;
        self.busy_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drained_waits_for_busy_tasks_and_gives_up_at_the_deadline() {
        let s = Shutdown::new();
        assert!(!s.is_triggered());
        let guard = s.busy();
        let stuck = s.busy();
        let waiter = {
            let s = s.clone();
            tokio::spawn(async move {
                s.triggered().await;
                drop(guard);
            })
        };
        s.trigger();
        waiter.await.expect("task");
        assert!(s.is_triggered());
        assert_eq!(s.drained(Duration::from_millis(50)).await, 1, "one stuck");
        drop(stuck);
        assert_eq!(s.drained(Duration::from_millis(50)).await, 0);
        // Triggered already: resolves at once.
        tokio::time::timeout(Duration::from_millis(50), s.triggered())
            .await
            .expect("immediate");
    }
}

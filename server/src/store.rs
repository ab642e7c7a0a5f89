//! The embedded SQLite store: contact records with their timeline, login
//! tokens and agent statuses. Everything a restart must not lose lives
//! here; the in-memory contact center is rebuilt around it.
//!
//! Login tokens are stored as their SHA-256 only (`login_tokens`); the
//! plain-text `tokens` table of earlier versions is dropped when an old
//! database is opened, so agents log in once more after the upgrade.
//!
//! Writes are small (WAL, synchronous=NORMAL). The contact timeline (a
//! contact's events and its end), the bulk of them, goes to a writer
//! thread with its own connection that commits in batches, so the center's
//! lock never waits for SQLite on the hot path; reads of the timeline
//! flush it first. Other writes (a new contact, tokens, statuses) stay
//! synchronous, since their callers act on failure. A killed process loses
//! what the writer had not committed yet (milliseconds of events); a power
//! loss loses at most the last [`SYNC_EVERY`], which the [`Syncer`] makes
//! durable from its own thread (docs/architecture.md, "Stopping and
//! crashing", has the measurements).

use std::collections::BTreeMap;
use std::path::Path;

use protocol::agent::{AgentState, AgentStateKind};
use protocol::Millis;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// A store failure. Never shown to clients beyond `internal`.
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(#[from] rusqlite::Error);

/// The database handle.
pub struct Store {
    db: Connection,
    /// The timeline writer (file databases only).
    writer: Option<Writer>,
}

/// A stored contact with its timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactRecord {
    /// Contact id.
    pub contact_id: String,
    /// inbound / outbound.
    pub initiation: String,
    /// Queue id, if it came through one.
    pub queue: Option<String>,
    /// The customer's number.
    pub customer_number: String,
    /// Creation time.
    pub created_at: Millis,
    /// End time.
    pub ended_at: Option<Millis>,
    /// Why it ended.
    pub disconnect_reason: Option<String>,
    /// Attributes at last update.
    pub attributes: BTreeMap<String, String>,
    /// The recording's file, when recording was on.
    pub recording: Option<String>,
    /// Everything that happened, in order.
    pub events: Vec<ContactRecordEvent>,
    /// The blocks its flows ran, in order (see `crate::flow::run::LogEntry`).
    pub flow_log: Vec<serde_json::Value>,
}

/// The timeline event a flow block's log entry is stored as (kept out of
/// `events`, returned as `flow_log`).
pub const FLOW_BLOCK_EVENT: &str = "flow_block";

/// One line of a contact's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactRecordEvent {
    /// When.
    pub at: Millis,
    /// Which agent, if one was involved.
    pub agent: Option<String>,
    /// What happened: queued, offered, accepted, missed, rejected, hold...
    pub event: String,
    /// Details (reason, wrap-up code, digits...).
    pub detail: Option<String>,
}

/// A persisted agent status.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredStatus {
    /// The state the agent chose last.
    pub chosen: AgentState,
    /// Since when.
    pub since: Millis,
}

impl Store {
    /// Opens (creating) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError(rusqlite::Error::InvalidPath(
                format!("{}: {e}", dir.display()).into(),
            ))
        })?;
        let path = dir.join("switchboard.sqlite3");
        let mut store = Store::init(Connection::open(&path)?)?;
        store.writer = Some(Writer::spawn(&path)?);
        Ok(store)
    }

    /// Waits until the timeline writer has committed everything queued
    /// so far (at most a few seconds).
    fn flush(&self) {
        if let Some(w) = &self.writer {
            let (done, wait) = std::sync::mpsc::channel();
            if w.send(Write::Flush(done)).is_ok() {
                let _ = wait.recv_timeout(std::time::Duration::from_secs(5));
            }
        }
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Store, StoreError> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(db: Connection) -> Result<Store, StoreError> {
        // An earlier version kept tokens in plain text: drop them with their
        // bytes overwritten, not left in free pages of the file.
        let plain_tokens: bool = db
            .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tokens'")?
            .exists([])?;
        if plain_tokens {
            db.execute_batch(
                "PRAGMA secure_delete = ON; DROP TABLE tokens; PRAGMA secure_delete = OFF;",
            )?;
        }
        db.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS contacts(
                 id TEXT PRIMARY KEY, initiation TEXT NOT NULL, queue TEXT,
                 customer_number TEXT NOT NULL, created_at INTEGER NOT NULL,
                 ended_at INTEGER, disconnect_reason TEXT, attributes TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS contact_events(
                 seq INTEGER PRIMARY KEY AUTOINCREMENT, contact_id TEXT NOT NULL,
                 at INTEGER NOT NULL, agent TEXT, event TEXT NOT NULL, detail TEXT);
             CREATE INDEX IF NOT EXISTS contact_events_by_contact ON contact_events(contact_id);
             CREATE TABLE IF NOT EXISTS login_tokens(
                 token_sha256 TEXT PRIMARY KEY, family TEXT NOT NULL,
                 username TEXT NOT NULL, expires_at INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS login_tokens_by_family ON login_tokens(family);
             CREATE TABLE IF NOT EXISTS agent_status(
                 username TEXT PRIMARY KEY, state TEXT NOT NULL, kind TEXT NOT NULL,
                 since INTEGER NOT NULL);",
        )?;
        // Added after the first release of the schema. Checked and added
        // in one write transaction, so that two processes opening the same
        // database at once cannot both add it.
        db.execute_batch("BEGIN IMMEDIATE")?;
        let has_recording: bool = db
            .prepare("SELECT 1 FROM pragma_table_info('contacts') WHERE name = 'recording'")?
            .exists([])?;
        if !has_recording {
            db.execute_batch("ALTER TABLE contacts ADD COLUMN recording TEXT")?;
        }
        db.execute_batch("COMMIT")?;
        Ok(Store { db, writer: None })
    }

    /// Records a new contact.
    pub fn create_contact(
        &self,
        id: &str,
        initiation: &str,
        queue: Option<&str>,
        customer_number: &str,
        attributes: &BTreeMap<String, String>,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO contacts(id, initiation, queue, customer_number, created_at, attributes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                initiation,
                queue,
                customer_number,
                now.0 as i64,
                to_json(attributes)
            ],
        )?;
        Ok(())
    }

    /// Appends to a contact's timeline.
    pub fn contact_event(
        &self,
        id: &str,
        now: Millis,
        agent: Option<&str>,
        event: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        if let Some(w) = &self.writer {
            let queued = w.send(Write::Event {
                id: id.to_owned(),
                at: now,
                agent: agent.map(str::to_owned),
                event: event.to_owned(),
                detail: detail.map(str::to_owned),
            });
            if queued.is_ok() {
                return Ok(());
            }
        }
        self.db.execute(
            "INSERT INTO contact_events(contact_id, at, agent, event, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, now.0 as i64, agent, event, detail],
        )?;
        Ok(())
    }

    /// Notes the queue a contact entered after it was created (a flow
    /// chose it).
    pub fn set_queue(&self, id: &str, queue: &str) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE contacts SET queue = ?2 WHERE id = ?1",
            params![id, queue],
        )?;
        Ok(())
    }

    /// Notes the file a contact's recording is written to.
    pub fn set_recording(&self, id: &str, path: &str) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE contacts SET recording = ?2 WHERE id = ?1",
            params![id, path],
        )?;
        Ok(())
    }

    /// Saves the contact's attributes.
    pub fn update_attributes(
        &self,
        id: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE contacts SET attributes = ?2 WHERE id = ?1",
            params![id, to_json(attributes)],
        )?;
        Ok(())
    }

    /// Marks a contact ended (once; later calls keep the first reason).
    pub fn end_contact(&self, id: &str, reason: &str, now: Millis) -> Result<(), StoreError> {
        if let Some(w) = &self.writer {
            let queued = w.send(Write::End {
                id: id.to_owned(),
                reason: reason.to_owned(),
                at: now,
            });
            if queued.is_ok() {
                return Ok(());
            }
        }
        self.db.execute(
            "UPDATE contacts SET ended_at = ?2, disconnect_reason = ?3 WHERE id = ?1 AND ended_at IS NULL",
            params![id, now.0 as i64, reason],
        )?;
        Ok(())
    }

    /// Contacts left open by a previous run are closed with `reason`.
    pub fn close_dangling_contacts(&self, reason: &str, now: Millis) -> Result<usize, StoreError> {
        Ok(self.db.execute(
            "UPDATE contacts SET ended_at = ?1, disconnect_reason = ?2 WHERE ended_at IS NULL",
            params![now.0 as i64, reason],
        )?)
    }

    /// One contact's record.
    pub fn contact(&self, id: &str) -> Result<Option<ContactRecord>, StoreError> {
        self.flush();
        let row = self
            .db
            .query_row(
                "SELECT id, initiation, queue, customer_number, created_at, ended_at, disconnect_reason, attributes, recording
                 FROM contacts WHERE id = ?1",
                params![id],
                |r| {
                    Ok(ContactRecord {
                        contact_id: r.get(0)?,
                        initiation: r.get(1)?,
                        queue: r.get(2)?,
                        customer_number: r.get(3)?,
                        created_at: Millis(r.get::<_, i64>(4)? as u64),
                        ended_at: r.get::<_, Option<i64>>(5)?.map(|v| Millis(v as u64)),
                        disconnect_reason: r.get(6)?,
                        attributes: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
                        recording: r.get(8)?,
                        events: Vec::new(),
                        flow_log: Vec::new(),
                    })
                },
            )
            .optional()?;
        let Some(mut record) = row else {
            return Ok(None);
        };
        let mut stmt = self.db.prepare_cached(
            "SELECT at, agent, event, detail FROM contact_events WHERE contact_id = ?1 ORDER BY seq",
        )?;
        record.events = stmt
            .query_map(params![id], |r| {
                Ok(ContactRecordEvent {
                    at: Millis(r.get::<_, i64>(0)? as u64),
                    agent: r.get(1)?,
                    event: r.get(2)?,
                    detail: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let (flow, events): (Vec<_>, Vec<_>) = std::mem::take(&mut record.events)
            .into_iter()
            .partition(|e| e.event == FLOW_BLOCK_EVENT);
        record.events = events;
        record.flow_log = flow
            .into_iter()
            .filter_map(|e| serde_json::from_str(e.detail.as_deref()?).ok())
            .collect();
        Ok(Some(record))
    }

    /// Whether `agent` took part in contact `id`: it was offered it (rang),
    /// dialed it, or acted on it. Every such step names the agent in the
    /// timeline, so the timeline is the participant list.
    pub fn took_part(&self, id: &str, agent: &str) -> Result<bool, StoreError> {
        self.flush();
        Ok(self
            .db
            .prepare_cached(
                "SELECT 1 FROM contact_events WHERE contact_id = ?1 AND agent = ?2 LIMIT 1",
            )?
            .exists(params![id, agent])?)
    }

    /// Copies the write-ahead log into the database file, syncs both and
    /// empties the log: after this, everything committed is on disk in
    /// the main file (a graceful stop calls it last).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.flush();
        checkpoint(&self.db, "TRUNCATE")
    }

    /// Number of stored contacts.
    pub fn contact_count(&self) -> Result<u64, StoreError> {
        self.flush();
        Ok(self
            .db
            .query_row("SELECT COUNT(*) FROM contacts", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// Saves a login token, by its SHA-256 (see `auth::token_hash`).
    pub fn save_token(
        &self,
        token_sha256: &str,
        family: &str,
        username: &str,
        expires_at: Millis,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO login_tokens(token_sha256, family, username, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![token_sha256, family, username, expires_at.0 as i64],
        )?;
        Ok(())
    }

    /// The owner of a live token, by the token's SHA-256.
    pub fn token_owner(
        &self,
        token_sha256: &str,
        now: Millis,
    ) -> Result<Option<crate::auth::TokenInfo>, StoreError> {
        Ok(self
            .db
            .query_row(
                "SELECT username, family, expires_at FROM login_tokens WHERE token_sha256 = ?1 AND expires_at > ?2",
                params![token_sha256, now.0 as i64],
                |r| {
                    Ok(crate::auth::TokenInfo {
                        agent: r.get(0)?,
                        family: r.get(1)?,
                        expires_at: Millis(r.get::<_, i64>(2)? as u64),
                    })
                },
            )
            .optional()?)
    }

    /// Deletes every token of a login (logout); returns how many.
    pub fn revoke_family(&self, family: &str) -> Result<usize, StoreError> {
        Ok(self.db.execute(
            "DELETE FROM login_tokens WHERE family = ?1",
            params![family],
        )?)
    }

    /// Drops expired tokens.
    pub fn purge_tokens(&self, now: Millis) -> Result<(), StoreError> {
        self.db.execute(
            "DELETE FROM login_tokens WHERE expires_at <= ?1",
            params![now.0 as i64],
        )?;
        Ok(())
    }

    /// Saves the state an agent chose.
    pub fn save_status(
        &self,
        username: &str,
        chosen: &AgentState,
        since: Millis,
    ) -> Result<(), StoreError> {
        let kind = serde_json::to_value(chosen.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.db.execute(
            "INSERT INTO agent_status(username, state, kind, since) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(username) DO UPDATE SET state = ?2, kind = ?3, since = ?4",
            params![username, chosen.name, kind, since.0 as i64],
        )?;
        Ok(())
    }

    /// Every saved status.
    pub fn statuses(&self) -> Result<Vec<(String, StoredStatus)>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT username, state, kind, since FROM agent_status")?;
        let rows = stmt.query_map([], |r| {
            let kind: String = r.get(2)?;
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                kind,
                Millis(r.get::<_, i64>(3)? as u64),
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (user, name, kind, since) = row?;
            let Ok(kind) =
                serde_json::from_value::<AgentStateKind>(serde_json::Value::String(kind))
            else {
                continue;
            };
            out.push((
                user,
                StoredStatus {
                    chosen: AgentState::new(&name, kind),
                    since,
                },
            ));
        }
        Ok(out)
    }
}

fn checkpoint(db: &Connection, mode: &str) -> Result<(), StoreError> {
    // Returns one row (busy, log frames, checkpointed frames).
    db.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))?;
    Ok(())
}

/// How often the [`Syncer`] makes committed writes durable.
pub const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Timeline writes the center hands off instead of making them under its
/// lock (see [`Writer`]).
enum Write {
    Event {
        id: String,
        at: Millis,
        agent: Option<String>,
        event: String,
        detail: Option<String>,
    },
    End {
        id: String,
        reason: String,
        at: Millis,
    },
    /// Answered once everything queued before it is committed.
    Flush(std::sync::mpsc::Sender<()>),
}

/// Writes queued before a backpressure wait: enough for minutes of a busy
/// center's timeline.
const WRITE_QUEUE: usize = 65_536;
/// Writes committed in one transaction at most.
const WRITE_BATCH: usize = 512;

/// The thread that writes contact timelines (events and ends) with its
/// own connection, in batches of one transaction each, so the center's
/// lock never waits for SQLite on the hot path. Reads of the timeline
/// (`contact`, `took_part`, `contact_count`, `checkpoint`) flush it first,
/// so they see every write made before them. A full queue makes the
/// sender wait (bounded), and a writer that is gone makes it write
/// itself.
struct Writer {
    tx: Option<std::sync::mpsc::SyncSender<Write>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn spawn(path: &Path) -> Result<Writer, StoreError> {
        let db = Connection::open(path)?;
        db.execute_batch("PRAGMA synchronous=NORMAL;")?;
        let (tx, rx) = std::sync::mpsc::sync_channel(WRITE_QUEUE);
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_batches(db, rx))
            .map_err(|e| StoreError(rusqlite::Error::InvalidPath(e.to_string().into())))?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues `w`; gives it back when the writer is gone.
    fn send(&self, w: Write) -> Result<(), Write> {
        match &self.tx {
            Some(tx) => tx.send(w).map_err(|e| e.0),
            None => Err(w),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has written the rest.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_one(db: &Connection, w: &Write) -> rusqlite::Result<()> {
    match w {
        Write::Event {
            id,
            at,
            agent,
            event,
            detail,
        } => {
            db.prepare_cached(
                "INSERT INTO contact_events(contact_id, at, agent, event, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id, at.0 as i64, agent, event, detail])?;
        }
        Write::End { id, reason, at } => {
            db.prepare_cached(
                "UPDATE contacts SET ended_at = ?2, disconnect_reason = ?3 WHERE id = ?1 AND ended_at IS NULL",
            )?
            .execute(params![id, at.0 as i64, reason])?;
        }
        Write::Flush(_) => {}
    }
    Ok(())
}

fn write_batches(mut db: Connection, rx: std::sync::mpsc::Receiver<Write>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let written = db.transaction().and_then(|tx| {
            for w in &batch {
                write_one(&tx, w)?;
            }
            tx.commit()
        });
        if let Err(e) = written {
            tracing::error!(lost = batch.len(), "store writer: {e}");
        }
        for w in batch {
            if let Write::Flush(done) = w {
                let _ = done.send(());
            }
        }
    }
}

/// Makes committed writes durable every [`SYNC_EVERY`] from a second
/// connection on its own thread. With `synchronous=NORMAL` a commit is
/// not synced; a passive checkpoint syncs the log and then the database,
/// so a power loss loses at most about a second of writes, and the
/// `fsync` never runs inside the center's lock. A killed process loses
/// nothing either way: its commits are already in the OS's cache.
pub struct Syncer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Syncer {
    /// Starts syncing the database in `dir` (opened by [`Store::open`]).
    pub fn spawn(dir: &Path) -> Result<Syncer, StoreError> {
        let db = Connection::open(dir.join("switchboard.sqlite3"))?;
        db.busy_timeout(std::time::Duration::from_millis(200))?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("store-sync".into())
            .spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(SYNC_EVERY);
                    if let Err(e) = checkpoint(&db, "PASSIVE") {
                        tracing::debug!("periodic checkpoint: {e}");
                    }
                }
            })
            .map_err(|e| {
                StoreError(rusqlite::Error::InvalidPath(
                    format!("cannot start the store's sync thread: {e}").into(),
                ))
            })?;
        Ok(Syncer { stop })
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn to_json(attributes: &BTreeMap<String, String>) -> String {
    serde_json::to_string(attributes).unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_writes_through_the_writer_are_read_back_in_order() {
        let dir = std::env::temp_dir().join(format!("switchboard-writer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = Store::open(&dir).expect("db");
            assert!(store.writer.is_some(), "a file database has a writer");
            store
                .create_contact(
                    "c1",
                    "inbound",
                    None,
                    "+15550000001",
                    &BTreeMap::new(),
                    Millis(1),
                )
                .expect("create");
            for i in 0..300u64 {
                store
                    .contact_event("c1", Millis(2 + i), None, &format!("e{i}"), None)
                    .expect("queued");
            }
            store
                .end_contact("c1", "done", Millis(400))
                .expect("queued");
            // Read at once: the read waits for what was queued before it.
            let rec = store.contact("c1").expect("read").expect("exists");
            let names: Vec<String> = rec.events.iter().map(|e| e.event.clone()).collect();
            let want: Vec<String> = (0..300).map(|i| format!("e{i}")).collect();
            assert_eq!(names, want);
            assert_eq!(rec.ended_at, Some(Millis(400)));
            assert_eq!(rec.disconnect_reason.as_deref(), Some("done"));
            store
                .contact_event("c1", Millis(500), None, "last", None)
                .expect("queued");
        }
        // Dropping the store lets the writer finish what was queued.
        let store = Store::open(&dir).expect("reopen");
        let rec = store.contact("c1").expect("read").expect("exists");
        assert_eq!(rec.events.last().map(|e| e.event.as_str()), Some("last"));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn contact_record_round_trips_with_timeline() {
        let store = Store::in_memory().expect("db");
        let attrs = BTreeMap::from([("customerName".to_string(), "Justin".to_string())]);
        store
            .create_contact(
                "c1",
                "inbound",
                Some("support"),
                "+819012345678",
                &attrs,
                Millis(10),
            )
            .expect("create");
        store
            .contact_event("c1", Millis(11), None, "queued", Some("support"))
            .expect("ev");
        store
            .contact_event("c1", Millis(12), Some("alice"), "accepted", None)
            .expect("ev");
        store
            .end_contact("c1", "customer_disconnect", Millis(20))
            .expect("end");
        store
            .end_contact("c1", "later_reason", Millis(30))
            .expect("end twice");
        let rec = store.contact("c1").expect("read").expect("exists");
        assert_eq!(rec.ended_at, Some(Millis(20)));
        assert_eq!(
            rec.disconnect_reason.as_deref(),
            Some("customer_disconnect")
        );
        assert_eq!(rec.attributes, attrs);
        assert_eq!(rec.events.len(), 2);
        assert_eq!(rec.events[1].agent.as_deref(), Some("alice"));
        assert_eq!(store.contact("nope").expect("read"), None);
        assert!(store.took_part("c1", "alice").expect("q"));
        assert!(!store.took_part("c1", "bob").expect("q"));
        assert!(!store.took_part("nope", "alice").expect("q"));
    }

    #[test]
    fn tokens_expire_and_a_family_is_revoked_together() {
        let store = Store::in_memory().expect("db");
        store
            .save_token("h1", "l-1", "alice", Millis(100))
            .expect("save");
        store
            .save_token("h2", "l-1", "alice", Millis(200))
            .expect("save");
        store
            .save_token("h3", "l-2", "alice", Millis(200))
            .expect("save");
        let owner = store
            .token_owner("h1", Millis(99))
            .expect("q")
            .expect("live");
        assert_eq!(
            (owner.agent.as_str(), owner.family.as_str()),
            ("alice", "l-1")
        );
        assert_eq!(owner.expires_at, Millis(100));
        assert_eq!(store.token_owner("h1", Millis(100)).expect("q"), None);
        assert_eq!(store.token_owner("other", Millis(0)).expect("q"), None);
        assert_eq!(store.revoke_family("l-1").expect("revoke"), 2);
        assert_eq!(store.token_owner("h2", Millis(0)).expect("q"), None);
        assert!(store.token_owner("h3", Millis(0)).expect("q").is_some());
    }

    #[test]
    fn an_old_database_with_plain_tokens_opens_and_drops_them() {
        let dir = std::env::temp_dir().join(format!("sb-store-old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        {
            let db = Connection::open(dir.join("switchboard.sqlite3")).expect("open");
            db.execute_batch(
                "CREATE TABLE tokens(token TEXT PRIMARY KEY, username TEXT NOT NULL, expires_at INTEGER NOT NULL);
                 INSERT INTO tokens VALUES ('t-plaintextsecret', 'alice', 9999999999999);",
            )
            .expect("old schema");
        }
        let store = Store::open(&dir).expect("an old database opens");
        store
            .save_token("h", "l", "alice", Millis(10))
            .expect("new table works");
        let old: bool = store
            .db
            .prepare("SELECT 1 FROM sqlite_master WHERE name = 'tokens'")
            .and_then(|mut s| s.exists([]))
            .expect("query");
        assert!(!old, "the plain-text token table is gone");
        drop(store);
        let mut bytes = Vec::new();
        for name in ["switchboard.sqlite3", "switchboard.sqlite3-wal"] {
            if let Ok(b) = std::fs::read(dir.join(name)) {
                bytes.extend(b);
            }
        }
        assert!(
            !bytes.windows(17).any(|w| w == b"t-plaintextsecret"),
            "the old tokens' bytes are overwritten"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn survives_reopen_and_closes_dangling_contacts() {
        let dir = std::env::temp_dir().join(format!("sb-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = Store::open(&dir).expect("open");
            store
                .create_contact(
                    "c1",
                    "inbound",
                    None,
                    "+15550001111",
                    &BTreeMap::new(),
                    Millis(1),
                )
                .expect("create");
            store
                .save_status("alice", &AgentState::available(), Millis(5))
                .expect("status");
        }
        let store = Store::open(&dir).expect("reopen");
        assert_eq!(
            store
                .close_dangling_contacts("backend_restart", Millis(9))
                .expect("close"),
            1
        );
        let rec = store.contact("c1").expect("read").expect("kept");
        assert_eq!(rec.disconnect_reason.as_deref(), Some("backend_restart"));
        let statuses = store.statuses().expect("statuses");
        assert_eq!(
            statuses,
            vec![(
                "alice".to_string(),
                StoredStatus {
                    chosen: AgentState::available(),
                    since: Millis(5)
                }
            )]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What each `synchronous` setting costs per contact event on this
    /// disk, for docs/architecture.md: `cargo test -p switchboard-server
    /// --release store::tests::measure_sync_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn measure_sync_cost() {
        for mode in ["OFF", "NORMAL", "FULL"] {
            let dir = std::env::temp_dir().join(format!("sb-sync-{mode}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let store = Store::open(&dir).expect("open");
            store
                .db
                .execute_batch(&format!("PRAGMA synchronous={mode}"))
                .expect("mode");
            store
                .create_contact(
                    "c",
                    "inbound",
                    None,
                    "+15550001111",
                    &BTreeMap::new(),
                    Millis(1),
                )
                .expect("create");
            let n = 2000;
            let mut times: Vec<f64> = (0..n)
                .map(|i| {
                    let t = std::time::Instant::now();
                    store
                        .contact_event("c", Millis(i), Some("alice"), "hold", None)
                        .expect("event");
                    t.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            times.sort_by(f64::total_cmp);
            let t = std::time::Instant::now();
            store.checkpoint().expect("checkpoint");
            println!(
                "synchronous={mode}: contact event median {:.0} us, p99 {:.0} us, max {:.0} us; checkpoint {:.1} ms",
                times[n as usize / 2],
                times[n as usize * 99 / 100],
                times[n as usize - 1],
                t.elapsed().as_secs_f64() * 1e3
            );
            drop(store);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

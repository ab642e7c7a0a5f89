//! The order service's SQLite database: the `orders` table (seeded with the
//! sample order 100 on first start) and the `messages` table that records
//! every confirmation the service "sends". Each change is one statement in
//! its own transaction with `synchronous = FULL`, so a change the service
//! answered survives a crash or a restart. The HTTP layer (`lib.rs`) calls
//! these methods from blocking threads; the connection sits behind a mutex
//! because SQLite serialises writers anyway and the service is tiny.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use crate::OrderError;

/// The sample order every fresh database holds (contract section 4).
pub const SEED_ORDER_ID: i64 = 100;

/// How many messages `GET /v1/messages` returns at most (the newest).
pub const MESSAGES_LISTED: i64 = 1000;

/// One order row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// The order number.
    pub id: i64,
    /// The customer's name.
    pub customer_name: String,
    /// The customer's phone number (E.164), what lookups match.
    pub phone: String,
    /// What was bought.
    pub product: String,
    /// ISO date (YYYY-MM-DD).
    pub shipping_date: String,
    /// Whether the order was cancelled.
    pub cancelled: bool,
}

/// One recorded confirmation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Row id (the API shows it as `m-<id>`).
    pub id: i64,
    /// The order it is about.
    pub order_id: i64,
    /// `date_changed` or `cancelled`.
    pub template: String,
    /// Recipient phone number (the order's).
    pub to: String,
    /// Language of the text (`en-US` or `ja-JP`).
    pub language: String,
    /// The text that would have been sent.
    pub body: String,
    /// Unix time in milliseconds when it was recorded.
    pub created_ms: i64,
}

/// What a date change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateChange {
    /// The order now ships on the new date.
    Changed(Order),
    /// The order is cancelled; nothing changed.
    OrderCancelled(Order),
}

/// A shared handle on the database.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and seeds order 100
    /// when it is missing. Existing rows are never overwritten.
    pub fn open(path: &Path) -> Result<Store, OrderError> {
        let open_err = |source: rusqlite::Error| OrderError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS orders (
                 id INTEGER PRIMARY KEY,
                 customer_name TEXT NOT NULL,
                 phone TEXT NOT NULL,
                 product TEXT NOT NULL,
                 shipping_date TEXT NOT NULL,
                 cancelled INTEGER NOT NULL DEFAULT 0
             );
             CREATE INDEX IF NOT EXISTS orders_phone ON orders(phone);
             CREATE TABLE IF NOT EXISTS messages (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 order_id INTEGER NOT NULL,
                 template TEXT NOT NULL,
                 recipient TEXT NOT NULL,
                 language TEXT NOT NULL,
                 body TEXT NOT NULL,
                 created_ms INTEGER NOT NULL
             );",
        )
        .map_err(open_err)?;
        // INSERT OR IGNORE: seeds a fresh database and leaves a changed
        // order 100 as it is on every later start.
        conn.execute(
            "INSERT OR IGNORE INTO orders (id, customer_name, phone, product, shipping_date, cancelled)
             VALUES (?1, 'Justin', '+15555550100', 'The North Face Summit L3 Ventrix 2.0 Hoodie', '2018-11-12', 0)",
            params![SEED_ORDER_ID],
        )
        .map_err(open_err)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, OrderError> {
        // A panic while holding the lock cannot leave SQLite half-written
        // (each change is one statement), so a poisoned lock is still usable.
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(OrderError::Database)
    }

    /// The order with this id.
    pub fn order(&self, id: i64) -> Result<Option<Order>, OrderError> {
        self.with(|c| {
            c.query_row(
                "SELECT id, customer_name, phone, product, shipping_date, cancelled FROM orders WHERE id = ?1",
                params![id],
                row_order,
            )
            .optional()
        })
    }

    /// The latest (highest numbered) order placed from this phone number.
    pub fn latest_order_for(&self, phone: &str) -> Result<Option<Order>, OrderError> {
        self.with(|c| {
            c.query_row(
                "SELECT id, customer_name, phone, product, shipping_date, cancelled FROM orders
                 WHERE phone = ?1 ORDER BY id DESC LIMIT 1",
                params![phone],
                row_order,
            )
            .optional()
        })
    }

    /// Sets the shipping date (ISO) of an order that is not cancelled.
    pub fn change_date(&self, id: i64, iso_date: &str) -> Result<Option<DateChange>, OrderError> {
        self.with(|c| {
            // One statement: the cancelled check and the write are atomic.
            let changed = c.execute(
                "UPDATE orders SET shipping_date = ?2 WHERE id = ?1 AND cancelled = 0",
                params![id, iso_date],
            )?;
            let order = c
                .query_row(
                    "SELECT id, customer_name, phone, product, shipping_date, cancelled FROM orders WHERE id = ?1",
                    params![id],
                    row_order,
                )
                .optional()?;
            Ok(order.map(|o| {
                if changed == 1 {
                    DateChange::Changed(o)
                } else {
                    DateChange::OrderCancelled(o)
                }
            }))
        })
    }

    /// Marks an order cancelled (idempotent); `None` when it does not exist.
    pub fn cancel(&self, id: i64) -> Result<Option<Order>, OrderError> {
        self.with(|c| {
            c.execute("UPDATE orders SET cancelled = 1 WHERE id = ?1", params![id])?;
            c.query_row(
                "SELECT id, customer_name, phone, product, shipping_date, cancelled FROM orders WHERE id = ?1",
                params![id],
                row_order,
            )
            .optional()
        })
    }

    /// Records a message and returns its row id.
    pub fn record_message(
        &self,
        order_id: i64,
        template: &str,
        to: &str,
        language: &str,
        body: &str,
        created_ms: i64,
    ) -> Result<i64, OrderError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO messages (order_id, template, recipient, language, body, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![order_id, template, to, language, body, created_ms],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// The newest messages (at most [`MESSAGES_LISTED`]), oldest first.
    pub fn messages(&self) -> Result<Vec<Message>, OrderError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, order_id, template, recipient, language, body, created_ms FROM
                   (SELECT * FROM messages ORDER BY id DESC LIMIT ?1) ORDER BY id ASC",
            )?;
            let rows = stmt.query_map(params![MESSAGES_LISTED], |r| {
                Ok(Message {
                    id: r.get(0)?,
                    order_id: r.get(1)?,
                    template: r.get(2)?,
                    to: r.get(3)?,
                    language: r.get(4)?,
                    body: r.get(5)?,
                    created_ms: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }
}

fn row_order(r: &rusqlite::Row<'_>) -> rusqlite::Result<Order> {
    Ok(Order {
        id: r.get(0)?,
        customer_name: r.get(1)?,
        phone: r.get(2)?,
        product: r.get(3)?,
        shipping_date: r.get(4)?,
        cancelled: r.get::<_, i64>(5)? != 0,
    })
}

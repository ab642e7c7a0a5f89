//! The sample order service: the external function the sample
//! `order-support` contact flow invokes (docs/sample-order-flow.md). The
//! backend's "invoke external function" block POSTs a contact flow event
//! (the shape of Amazon Connect's Lambda event: `Details.ContactData` and
//! `Details.Parameters`) to one of the `POST` endpoints below and merges the
//! flat string object it answers into the contact's attributes. The
//! orders and the confirmations "sent" live in SQLite ([`store`]), so the
//! tests and the flow's end-to-end test read the effect through the `GET`
//! endpoints. Bad input gets a typed JSON error (`{"error", "message"}`,
//! 4xx) and changes nothing.
//!
//! - `POST /v1/orders/lookup`: the caller's latest order by
//!   `CustomerEndpoint.Address`, or `{"order_found": "false"}`.
//! - `POST /v1/orders/change-date`: `Attributes.order_id` and
//!   `Parameters.StoredCustomerInput` (YYYYMMDD) →
//!   `change_result` = `ok` | `bad_date` | `order_cancelled`.
//! - `POST /v1/orders/cancel`: `Attributes.order_id` → `cancelled`, `cancel_result`.
//! - `POST /v1/messages/send`: `Parameters.template` (`date_changed` |
//!   `cancelled`) and `Attributes.order_id` → `message_id`.
//! - `GET /v1/orders/{id}`, `GET /v1/messages`: the database, for tests.

pub mod store;

use std::collections::HashMap;

use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub use store::{Message, Order, Store};

/// The largest request body accepted. An event is a few hundred bytes; the
/// backend caps the attributes it sends far below this.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything that can go wrong in the service. Client mistakes map to a
/// 4xx with their code; database failures to a 500 that does not leak them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrderError {
    /// The body is over [`MAX_BODY_BYTES`].
    #[error("the request body is over {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body could not be read.
    #[error("the request body could not be read")]
    BodyUnreadable,
    /// The body is not JSON.
    #[error("the body is not JSON: {reason}")]
    BadJson {
        /// The parser's message.
        reason: String,
    },
    /// JSON, but not a contact flow event.
    #[error("the body is not a contact flow event: {reason}")]
    BadEvent {
        /// What was wrong.
        reason: String,
    },
    /// A field the endpoint needs is absent.
    #[error("the event has no {field}")]
    MissingField {
        /// The field's path in the event.
        field: &'static str,
    },
    /// An order id that is not a positive number.
    #[error("`{value}` is not an order id")]
    BadOrderId {
        /// What was given.
        value: String,
    },
    /// No such order.
    #[error("there is no order {order_id}")]
    OrderNotFound {
        /// The id asked for.
        order_id: i64,
    },
    /// A message template the service does not know.
    #[error("unknown message template `{template}` (known: date_changed, cancelled)")]
    BadTemplate {
        /// What was given.
        template: String,
    },
    /// No route for this path.
    #[error("no such endpoint")]
    NotFound,
    /// The path exists, not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The database could not be opened at start.
    #[error("cannot open the database {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A database operation failed.
    #[error("database error: {0}")]
    Database(#[source] rusqlite::Error),
    /// A blocking database task died.
    #[error("database task failed")]
    Task,
}

impl OrderError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            OrderError::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            OrderError::BodyUnreadable => (StatusCode::BAD_REQUEST, "body_unreadable"),
            OrderError::BadJson { .. } => (StatusCode::BAD_REQUEST, "bad_json"),
            OrderError::BadEvent { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "bad_event"),
            OrderError::MissingField { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "missing_field"),
            OrderError::BadOrderId { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "bad_order_id"),
            OrderError::OrderNotFound { .. } => (StatusCode::NOT_FOUND, "order_not_found"),
            OrderError::BadTemplate { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "bad_template"),
            OrderError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            OrderError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            OrderError::Open { .. } | OrderError::Database(_) | OrderError::Task => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }
}

impl IntoResponse for OrderError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = if status.is_server_error() {
            // The database's words stay in the log, not in the response.
            tracing::error!(error = %self, "request failed");
            "internal error".to_string()
        } else {
            self.to_string()
        };
        (status, Json(json!({ "error": code, "message": message }))).into_response()
    }
}

/// The parts of a contact flow event the service reads. Unknown fields are
/// ignored: Connect's event carries more than this, and so may ours later.
#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "Details")]
    details: Details,
}

#[derive(Debug, Deserialize)]
struct Details {
    #[serde(rename = "ContactData")]
    contact_data: ContactData,
    #[serde(rename = "Parameters", default)]
    parameters: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct ContactData {
    #[serde(rename = "CustomerEndpoint", default)]
    customer_endpoint: Option<Endpoint>,
    #[serde(rename = "Attributes", default)]
    attributes: HashMap<String, String>,
    #[serde(rename = "LanguageCode", default)]
    language_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Endpoint {
    #[serde(rename = "Address")]
    address: String,
}

/// The body as an event: size, JSON and shape checked in that order, each
/// with its own error.
fn parse_event(body: Result<axum::body::Bytes, BytesRejection>) -> Result<Event, OrderError> {
    let bytes = body.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            OrderError::BodyTooLarge {
                limit: MAX_BODY_BYTES,
            }
        }
        _ => OrderError::BodyUnreadable,
    })?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| OrderError::BadJson {
        reason: e.to_string(),
    })?;
    serde_json::from_value(value).map_err(|e| OrderError::BadEvent {
        reason: e.to_string(),
    })
}

fn parse_order_id(value: &str) -> Result<i64, OrderError> {
    match value.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(OrderError::BadOrderId {
            value: value.chars().take(40).collect(),
        }),
    }
}

fn event_order_id(event: &Event) -> Result<i64, OrderError> {
    let raw = event
        .details
        .contact_data
        .attributes
        .get("order_id")
        .ok_or(OrderError::MissingField {
            field: "Details.ContactData.Attributes.order_id",
        })?;
    parse_order_id(raw)
}

/// `YYYYMMDD` (what a caller keys in) as an ISO date, if it is a real
/// calendar date. Anything else (length, non-digits, 20181131) is `None`.
pub fn parse_keyed_date(input: &str) -> Option<String> {
    let input = input.trim();
    if input.len() != 8 || !input.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let date = chrono::NaiveDate::parse_from_str(input, "%Y%m%d").ok()?;
    Some(date.format("%Y-%m-%d").to_string())
}

/// Runs a database call off the async threads (SQLite's fsync blocks).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OrderError> + Send + 'static,
) -> Result<T, OrderError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| OrderError::Task)?
}

/// The function's answer: a flat object of strings (what the backend merges
/// into the contact's attributes).
fn flat(pairs: &[(&str, String)]) -> Json<Map<String, Value>> {
    Json(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::String(v.clone())))
            .collect(),
    )
}

fn order_attributes(order: &Order) -> Json<Map<String, Value>> {
    flat(&[
        ("order_id", order.id.to_string()),
        ("customer_name", order.customer_name.clone()),
        ("product", order.product.clone()),
        ("shipping_date", order.shipping_date.clone()),
        ("cancelled", order.cancelled.to_string()),
    ])
}

async fn lookup(
    State(store): State<Store>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<Map<String, Value>>, OrderError> {
    let event = parse_event(body)?;
    let phone = event
        .details
        .contact_data
        .customer_endpoint
        .map(|e| e.address)
        .ok_or(OrderError::MissingField {
            field: "Details.ContactData.CustomerEndpoint.Address",
        })?;
    let found = blocking(move || store.latest_order_for(&phone)).await?;
    Ok(match found {
        Some(order) => order_attributes(&order),
        None => flat(&[("order_found", "false".into())]),
    })
}

async fn change_date(
    State(store): State<Store>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<Map<String, Value>>, OrderError> {
    let event = parse_event(body)?;
    let id = event_order_id(&event)?;
    let keyed =
        event
            .details
            .parameters
            .get("StoredCustomerInput")
            .ok_or(OrderError::MissingField {
                field: "Details.Parameters.StoredCustomerInput",
            })?;
    let Some(iso) = parse_keyed_date(keyed) else {
        // A caller's typo is an answer, not an error: the flow re-asks.
        let order = blocking(move || store.order(id))
            .await?
            .ok_or(OrderError::OrderNotFound { order_id: id })?;
        return Ok(flat(&[
            ("change_result", "bad_date".into()),
            ("shipping_date", order.shipping_date),
        ]));
    };
    let change = blocking(move || store.change_date(id, &iso))
        .await?
        .ok_or(OrderError::OrderNotFound { order_id: id })?;
    Ok(match change {
        store::DateChange::Changed(order) => flat(&[
            ("shipping_date", order.shipping_date),
            ("change_result", "ok".into()),
        ]),
        store::DateChange::OrderCancelled(order) => flat(&[
            ("shipping_date", order.shipping_date),
            ("change_result", "order_cancelled".into()),
        ]),
    })
}

async fn cancel(
    State(store): State<Store>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<Map<String, Value>>, OrderError> {
    let event = parse_event(body)?;
    let id = event_order_id(&event)?;
    blocking(move || store.cancel(id))
        .await?
        .ok_or(OrderError::OrderNotFound { order_id: id })?;
    Ok(flat(&[
        ("cancelled", "true".into()),
        ("cancel_result", "ok".into()),
    ]))
}

/// The confirmation's text, in the contact's language (Japanese when the
/// flow set a `ja-*` voice, English otherwise).
fn message_text(template: &str, order: &Order, japanese: bool) -> String {
    match (template, japanese) {
        ("date_changed", false) => format!(
            "Hi {}, your order {} ({}) will now ship on {}.",
            order.customer_name, order.id, order.product, order.shipping_date
        ),
        ("date_changed", true) => format!(
            "{}様、ご注文{}（{}）の発送日を{}に変更しました。",
            order.customer_name, order.id, order.product, order.shipping_date
        ),
        (_, false) => format!(
            "Hi {}, your order {} ({}) has been cancelled.",
            order.customer_name, order.id, order.product
        ),
        (_, true) => format!(
            "{}様、ご注文{}（{}）をキャンセルしました。",
            order.customer_name, order.id, order.product
        ),
    }
}

async fn send_message(
    State(store): State<Store>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<Map<String, Value>>, OrderError> {
    let event = parse_event(body)?;
    let template = event
        .details
        .parameters
        .get("template")
        .ok_or(OrderError::MissingField {
            field: "Details.Parameters.template",
        })?
        .clone();
    if template != "date_changed" && template != "cancelled" {
        return Err(OrderError::BadTemplate {
            template: template.chars().take(40).collect(),
        });
    }
    let id = event_order_id(&event)?;
    let japanese = event
        .details
        .contact_data
        .language_code
        .as_deref()
        .is_some_and(|l| l.starts_with("ja"));
    let language = if japanese { "ja-JP" } else { "en-US" };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let message_id = blocking(move || {
        // Read and record under one handle so the text matches the order
        // as it is when the message is recorded.
        let order = store
            .order(id)?
            .ok_or(OrderError::OrderNotFound { order_id: id })?;
        let text = message_text(&template, &order, japanese);
        store.record_message(id, &template, &order.phone, language, &text, now_ms)
    })
    .await?;
    Ok(flat(&[("message_id", format!("m-{message_id}"))]))
}

async fn get_order(
    State(store): State<Store>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, OrderError> {
    let id = parse_order_id(&raw)?;
    let order = blocking(move || store.order(id))
        .await?
        .ok_or(OrderError::OrderNotFound { order_id: id })?;
    Ok(Json(json!({
        "order_id": order.id.to_string(),
        "customer_name": order.customer_name,
        "phone": order.phone,
        "product": order.product,
        "shipping_date": order.shipping_date,
        "cancelled": order.cancelled,
    })))
}

async fn list_messages(State(store): State<Store>) -> Result<Json<Value>, OrderError> {
    let messages = blocking(move || store.messages()).await?;
    let list: Vec<Value> = messages
        .into_iter()
        .map(|m| {
            json!({
                "message_id": format!("m-{}", m.id),
                "order_id": m.order_id.to_string(),
                "template": m.template,
                "to": m.to,
                "language": m.language,
                "body": m.body,
                "created_ms": m.created_ms,
            })
        })
        .collect();
    Ok(Json(json!({ "messages": list })))
}

/// The service's routes over `store`.
pub fn app(store: Store) -> Router {
    Router::new()
        .route("/v1/orders/lookup", post(lookup))
        .route("/v1/orders/change-date", post(change_date))
        .route("/v1/orders/cancel", post(cancel))
        .route("/v1/messages/send", post(send_message))
        .route("/v1/orders/{id}", get(get_order))
        .route("/v1/messages", get(list_messages))
        .fallback(|| async { OrderError::NotFound })
        .method_not_allowed_fallback(|| async { OrderError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(store)
}

#[cfg(test)]
mod tests {
    use super::parse_keyed_date;

    #[test]
    fn keyed_dates() {
        assert_eq!(parse_keyed_date("20181120").as_deref(), Some("2018-11-20"));
        assert_eq!(parse_keyed_date("20240229").as_deref(), Some("2024-02-29"));
        for bad in [
            "",
            "2018112",
            "201811200",
            "20181131",
            "20230229",
            "20181320",
            "2018112a",
            "+2018112",
            "２０１８１１２０",
        ] {
            assert_eq!(parse_keyed_date(bad), None, "{bad:?}");
        }
    }
}

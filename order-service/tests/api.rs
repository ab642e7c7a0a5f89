//! The order service over real HTTP (127.0.0.1:0) and a real SQLite file in
//! a temporary directory, written from the contract
//! (/docs/sample-order-flow.md, "The order service's API"): the seeded
//! order, lookup, change of date (good and bad), cancel, messages, typed
//! errors that change nothing, and durability across a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A fresh directory per test, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "order-service-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Service {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Service {
    async fn start(db: &Path) -> Service {
        let store = order_service::Store::open(db).expect("open store");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, order_service::app(store))
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Service {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Stops the server and waits until it (and its database handle) is gone.
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.expect("server task");
    }

    async fn raw(&self, request: &[u8]) -> (u16, Value) {
        let mut s = TcpStream::connect(self.addr).await.expect("connect");
        // A server refusing an oversized body may answer and close before
        // reading it all: a failed write or a reset after the answer is fine
        // as long as the answer arrived.
        let _ = s.write_all(request).await;
        let mut out = Vec::new();
        // The server answers and closes (Connection: close); bounded by the
        // test's own timeout, not a sleep.
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out))
                .await
                .expect("response in time");
        if out.is_empty() {
            read.expect("read");
        }
        let text = String::from_utf8(out).expect("utf-8 response");
        let (head, body) = text.split_once("\r\n\r\n").expect("header end");
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status code");
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON body ({e}): {body}"))
        };
        (status, body)
    }

    async fn post_bytes(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.raw(&req).await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_bytes(path, body.to_string().as_bytes()).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.raw(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .await
    }

    async fn order(&self, id: u32) -> Value {
        let (status, body) = self.get(&format!("/v1/orders/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn messages(&self) -> Vec<Value> {
        let (status, body) = self.get("/v1/messages").await;
        assert_eq!(status, 200, "{body}");
        body["messages"].as_array().expect("messages array").clone()
    }
}

/// A contact flow event as the backend sends it (contract section 3).
fn event(caller: &str, attributes: Value, parameters: Value) -> Value {
    json!({
        "Name": "ContactFlowEvent",
        "Details": {
            "ContactData": {
                "ContactId": "c-1", "Channel": "VOICE", "InitialContactId": "c-1",
                "CustomerEndpoint": { "Address": caller, "Type": "TELEPHONE_NUMBER" },
                "SystemEndpoint": { "Address": "+18005550100", "Type": "TELEPHONE_NUMBER" },
                "Queue": null,
                "Attributes": attributes,
                "LanguageCode": "en-US"
            },
            "Parameters": parameters
        }
    })
}

const JUSTIN: &str = "+15555550100";
const HOODIE: &str = "The North Face Summit L3 Ventrix 2.0 Hoodie";

fn seeded_order() -> Value {
    json!({
        "order_id": "100", "customer_name": "Justin", "phone": JUSTIN,
        "product": HOODIE, "shipping_date": "2018-11-12", "cancelled": false
    })
}

#[tokio::test]
async fn fresh_database_holds_the_sample_order_and_no_messages() {
    let dir = TempDir::new();
    let svc = Service::start(&dir.0.join("orders.sqlite")).await;
    assert_eq!(svc.order(100).await, seeded_order());
    assert!(svc.messages().await.is_empty());
    svc.stop().await;
}

#[tokio::test]
async fn lookup_by_caller_number_answers_flat_strings() {
    let dir = TempDir::new();
    let svc = Service::start(&dir.0.join("orders.sqlite")).await;
    let (status, body) = svc
        .post(
            "/v1/orders/lookup",
            &event(JUSTIN, json!({}), json!({ "purpose": "latest" })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "order_id": "100", "customer_name": "Justin", "product": HOODIE,
                "shipping_date": "2018-11-12", "cancelled": "false" })
    );
    // Every value a string: the backend merges them into attributes.
    assert!(body
        .as_object()
        .expect("object")
        .values()
        .all(Value::is_string));

    let (status, body) = svc
        .post(
            "/v1/orders/lookup",
            &event("+819012345678", json!({}), json!({})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "order_found": "false" }));
    svc.stop().await;
}

#[tokio::test]
async fn change_date_by_keypad_updates_the_order() {
    let dir = TempDir::new();
    let svc = Service::start(&dir.0.join("orders.sqlite")).await;
    let (status, body) = svc
        .post(
            "/v1/orders/change-date",
            &event(
                JUSTIN,
                json!({ "order_id": "100" }),
                json!({ "StoredCustomerInput": "20181120" }),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["change_result"], "ok");
    assert_eq!(body["shipping_date"], "2018-11-20");
    assert_eq!(svc.order(100).await["shipping_date"], "2018-11-20");
    svc.stop().await;
}

#[tokio::test]
async fn a_bad_date_answers_bad_date_and_changes_nothing() {
    let dir = TempDir::new();
    let svc = Service::start(&dir.0.join("orders.sqlite")).await;
    for keyed in [
        "20181131",
        "2018112",
        "201811201",
        "abcdefgh",
        "",
        "20181320",
    ] {
        let (status, body) = svc
            .post(
                "/v1/orders/change-date",
                &event(
                    JUSTIN,
                    json!({ "order_id": "100" }),
                    json!({ "StoredCustomerInput": keyed }),
                ),
            )
            .await;
        assert_eq!(status, 200, "{keyed:?}: {body}");
        assert_eq!(body["change_result"], "bad_date", "{keyed:?}");
    }
    assert_eq!(svc.order(100).await, seeded_order());
    svc.stop().await;
}

#[tokio::test]
async fn cancel_sets_the_flag_and_a_cancelled_order_keeps_its_date() {
    let dir = TempDir::new();
    let svc = Service::start(&dir.0.join("orders.sqlite")).await;
    let (status, body) = svc
        .post(
            "/v1/orders/cancel",
            &event(JUSTIN, json!({ "order_id": "100" }), json!({})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "cancelled": "true", "cancel_result": "ok" }));
    assert_eq!(svc.order(100).await["cancelled"], true);

    let (status, body) = svc
        .post(
            "/v1/orders/change-date",
            &event(
                JUSTIN,
                json!({ "order_id": "100" }),
                json!({ "StoredCustomerInput": "20181120" }),
            ),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["change_result"], "order_cancelled");
    assert_eq!(svc.order(100).await["shipping_date"], "2018-11-12");
    svc.stop().await;
}

#[tokio::test]
async fn send_message_records_the_confirmation() {
    let dir = TempDir::new();
    let svc = Service::start(&dir.0.join("orders.sqlite")).await;
    svc.post(
        "/v1/orders/change-date",
        &event(
            JUSTIN,
            json!({ "order_id": "100" }),
            json!({ "StoredCustomerInput": "20181120" }),
        ),
    )
    .await;
    let (status, body) = svc
        .post(
            "/v1/messages/send",
            &event(
                JUSTIN,
                json!({ "order_id": "100" }),
                json!({ "template": "date_changed" }),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["message_id"]
        .as_str()
        .expect("message_id string")
        .to_string();
    assert!(!id.is_empty());

    let mut ja = event(
        JUSTIN,
        json!({ "order_id": "100" }),
        json!({ "template": "cancelled" }),
    );
    ja["Details"]["ContactData"]["LanguageCode"] = json!("ja-JP");
    let (status, body) = svc.post("/v1/messages/send", &ja).await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["message_id"].as_str(), Some(id.as_str()));

    let messages = svc.messages().await;
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["message_id"], id.as_str());
    assert_eq!(messages[0]["template"], "date_changed");
    assert_eq!(messages[0]["order_id"], "100");
    assert_eq!(messages[0]["to"], JUSTIN);
    let text = messages[0]["body"].as_str().expect("body");
    assert!(text.contains("2018-11-20"), "{text}");
    assert_eq!(messages[1]["template"], "cancelled");
    assert_eq!(messages[1]["language"], "ja-JP");
    svc.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_typed_error_and_changes_nothing() {
    let dir = TempDir::new();
    let svc = Service::start(&dir.0.join("orders.sqlite")).await;
    let good_change = event(
        JUSTIN,
        json!({ "order_id": "100" }),
        json!({ "StoredCustomerInput": "20181120" }),
    );
    let mut no_order = good_change.clone();
    no_order["Details"]["ContactData"]["Attributes"] = json!({});
    let mut unknown_order = good_change.clone();
    unknown_order["Details"]["ContactData"]["Attributes"] = json!({ "order_id": "999" });
    let mut bad_order = good_change.clone();
    bad_order["Details"]["ContactData"]["Attributes"] = json!({ "order_id": "-1; DROP" });
    let mut no_input = good_change.clone();
    no_input["Details"]["Parameters"] = json!({});
    let mut nested = good_change.clone();
    nested["Details"]["Parameters"] = json!({ "StoredCustomerInput": { "a": 1 } });
    let mut numeric_attr = good_change.clone();
    numeric_attr["Details"]["ContactData"]["Attributes"] = json!({ "order_id": 100 });

    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "/v1/orders/change-date",
            b"not json".to_vec(),
            400,
            "bad_json",
        ),
        ("/v1/orders/change-date", b"".to_vec(), 400, "bad_json"),
        (
            "/v1/orders/change-date",
            b"[1,2]".to_vec(),
            422,
            "bad_event",
        ),
        (
            "/v1/orders/change-date",
            b"{\"Details\":{}}".to_vec(),
            422,
            "bad_event",
        ),
        (
            "/v1/orders/change-date",
            nested.to_string().into_bytes(),
            422,
            "bad_event",
        ),
        (
            "/v1/orders/change-date",
            numeric_attr.to_string().into_bytes(),
            422,
            "bad_event",
        ),
        (
            "/v1/orders/change-date",
            no_order.to_string().into_bytes(),
            422,
            "missing_field",
        ),
        (
            "/v1/orders/change-date",
            no_input.to_string().into_bytes(),
            422,
            "missing_field",
        ),
        (
            "/v1/orders/change-date",
            bad_order.to_string().into_bytes(),
            422,
            "bad_order_id",
        ),
        (
            "/v1/orders/change-date",
            unknown_order.to_string().into_bytes(),
            404,
            "order_not_found",
        ),
        (
            "/v1/orders/cancel",
            no_order.to_string().into_bytes(),
            422,
            "missing_field",
        ),
        (
            "/v1/orders/cancel",
            unknown_order.to_string().into_bytes(),
            404,
            "order_not_found",
        ),
        (
            "/v1/messages/send",
            event(
                JUSTIN,
                json!({ "order_id": "100" }),
                json!({ "template": "spam" }),
            )
            .to_string()
            .into_bytes(),
            422,
            "bad_template",
        ),
        (
            "/v1/messages/send",
            event(JUSTIN, json!({ "order_id": "100" }), json!({}))
                .to_string()
                .into_bytes(),
            422,
            "missing_field",
        ),
        (
            "/v1/messages/send",
            event(
                JUSTIN,
                json!({ "order_id": "999" }),
                json!({ "template": "cancelled" }),
            )
            .to_string()
            .into_bytes(),
            404,
            "order_not_found",
        ),
        (
            "/v1/orders/lookup",
            json!({ "Details": { "ContactData": {} } })
                .to_string()
                .into_bytes(),
            422,
            "missing_field",
        ),
        (
            "/v1/orders/change-date",
            vec![b' '; order_service::MAX_BODY_BYTES + 1],
            413,
            "body_too_large",
        ),
        ("/v1/nothing", b"{}".to_vec(), 404, "not_found"),
    ];
    for (path, body, status, code) in cases {
        let (got, answer) = svc.post_bytes(path, &body).await;
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        assert_eq!(got, status, "{path} {shown}: {answer}");
        assert_eq!(answer["error"], code, "{path} {shown}: {answer}");
        assert!(answer["message"].is_string(), "{answer}");
    }
    let (status, answer) = svc.get("/v1/orders/abc").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (422, Some("bad_order_id"))
    );
    let (status, answer) = svc.get("/v1/orders/999").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("order_not_found"))
    );
    let (status, answer) = svc.get("/v1/orders/lookup").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (405, Some("method_not_allowed"))
    );

    assert_eq!(svc.order(100).await, seeded_order());
    assert!(svc.messages().await.is_empty());
    svc.stop().await;
}

#[tokio::test]
async fn changes_survive_a_restart_and_the_seed_does_not_overwrite_them() {
    let dir = TempDir::new();
    let db = dir.0.join("orders.sqlite");
    let svc = Service::start(&db).await;
    let (status, _) = svc
        .post(
            "/v1/orders/change-date",
            &event(
                JUSTIN,
                json!({ "order_id": "100" }),
                json!({ "StoredCustomerInput": "20190102" }),
            ),
        )
        .await;
    assert_eq!(status, 200);
    svc.post(
        "/v1/orders/cancel",
        &event(JUSTIN, json!({ "order_id": "100" }), json!({})),
    )
    .await;
    svc.post(
        "/v1/messages/send",
        &event(
            JUSTIN,
            json!({ "order_id": "100" }),
            json!({ "template": "cancelled" }),
        ),
    )
    .await;
    svc.stop().await;

    let svc = Service::start(&db).await;
    let order = svc.order(100).await;
    assert_eq!(order["shipping_date"], "2019-01-02");
    assert_eq!(order["cancelled"], true);
    let messages = svc.messages().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["template"], "cancelled");
    svc.stop().await;
}

//! The documented shapes, taken from docs/protocol.md and the golden
//! files in `protocol/tests/golden/` (the normative examples, embedded
//! here at build time). A frame fits a golden file when it has every key
//! the file has (keys the contract marks optional aside), each with the
//! same JSON type, recursively; extra keys are allowed because the
//! contract says unknown fields are ignored. Enumerations and per-state
//! fields the golden files cannot express are checked by hand below.

use serde_json::Value;

macro_rules! golden {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../protocol/tests/golden/",
            $name,
            ".json"
        ))
    };
}

/// A golden file by name (without `.json`).
pub fn golden(name: &str) -> Value {
    let text = match name {
        "welcome" => golden!("welcome"),
        "snapshot" => golden!("snapshot"),
        "error_frame" => golden!("error_frame"),
        "response_error" => golden!("response_error"),
        "event_agent_state_changed" => golden!("event_agent_state_changed"),
        "event_mute_changed" => golden!("event_mute_changed"),
        "event_contact_updated" => golden!("event_contact_updated"),
        "event_contact_destroyed" => golden!("event_contact_destroyed"),
        "event_digits" => golden!("event_digits"),
        "token_expiring" => golden!("token_expiring"),
        "result_token" => golden!("result_token"),
        "result_ack" => golden!("result_ack"),
        "result_pong" => golden!("result_pong"),
        "result_snapshot" => golden!("result_snapshot"),
        "result_agent_state" => golden!("result_agent_state"),
        "result_agent_states" => golden!("result_agent_states"),
        "result_agent_configuration" => golden!("result_agent_configuration"),
        "result_routing_profile" => golden!("result_routing_profile"),
        "result_quick_connects" => golden!("result_quick_connects"),
        "result_contact_created" => golden!("result_contact_created"),
        "result_connection_added" => golden!("result_connection_added"),
        "result_attributes" => golden!("result_attributes"),
        _ => "null",
    };
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Every error code of docs/protocol.md section 5: `rate_limited` is the
/// per-socket message-rate limit; `login_throttled` (HTTP login only),
/// `session_expired` and `token_revoked` end a login; `session_replaced`
/// tells an older socket a newer `hello` took its session over.
pub const ERROR_CODES: &[&str] = &[
    "bad_json",
    "bad_media_frame",
    "unknown_type",
    "unknown_op",
    "bad_request",
    "unsupported_version",
    "not_authenticated",
    "auth_failed",
    "already_authenticated",
    "frame_too_large",
    "not_found",
    "not_owner",
    "invalid_state",
    "invalid_argument",
    "unsupported_endpoint",
    "queue_full",
    "queue_closed",
    "no_media_leg",
    "internal",
    "rate_limited",
    "login_throttled",
    "session_expired",
    "token_revoked",
    "session_replaced",
];

/// Keys the contract marks optional (`next_state?`, `media_leg` only while
/// connected, an endpoint's kind-specific field, a contact's `queue`;
/// `since` is absent in `init` and checked per state instead).
const OPTIONAL: &[&str] = &[
    "next_state",
    "media_leg",
    "phone_number",
    "agent",
    "queue",
    "since",
];

const CONTACT_STATES: &[&str] = &[
    "init",
    "incoming",
    "connecting",
    "connected",
    "ended",
    "missed",
    "rejected",
    "error",
];
const CONNECTION_STATES: &[&str] = &["init", "connecting", "connected", "hold", "disconnected"];
const CONNECTION_KINDS: &[&str] = &["agent", "inbound", "outbound", "third_party"];
const ENDPOINT_KINDS: &[&str] = &["phone_number", "agent", "queue"];
const INITIATIONS: &[&str] = &["inbound", "outbound", "transfer"];
const STATE_KINDS: &[&str] = &["routable", "not_routable", "offline", "system", "error"];

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Compares `actual` with the golden `expected` (see the module doc).
pub fn fits(expected: &Value, actual: &Value, path: &str, errs: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Null, _) => {}
        (Value::Object(e), Value::Object(a)) => {
            for (key, ev) in e {
                match a.get(key) {
                    // A free string map: its keys are data, not shape.
                    Some(av) if key == "attributes" => {
                        if !av
                            .as_object()
                            .is_some_and(|m| m.values().all(Value::is_string))
                        {
                            errs.push(format!("`{path}.{key}` must be a map of strings"));
                        }
                    }
                    Some(av) => fits(ev, av, &format!("{path}.{key}"), errs),
                    None if OPTIONAL.contains(&key.as_str()) => {}
                    None => errs.push(format!("`{path}.{key}` is missing")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let Some(first) = e.first() {
                for (i, av) in a.iter().enumerate() {
                    fits(first, av, &format!("{path}[{i}]"), errs);
                }
            }
        }
        (Value::Number(e), Value::Number(a)) => {
            if (e.is_u64() || e.is_i64()) && !(a.is_u64() || a.is_i64()) {
                errs.push(format!("`{path}` must be an integer, got {a}"));
            }
        }
        (e, a) if kind_of(e) == kind_of(a) => {}
        (e, a) => errs.push(format!(
            "`{path}` must be {} like the golden file, got {}",
            kind_of(e),
            kind_of(a)
        )),
    }
}

fn one_of(v: &Value, allowed: &[&str], path: &str, errs: &mut Vec<String>) {
    match v.as_str() {
        Some(s) if allowed.contains(&s) => {}
        _ => errs.push(format!("`{path}` is {v}, not one of {allowed:?}")),
    }
}

fn integer(v: &Value, path: &str, errs: &mut Vec<String>) {
    if !(v.is_u64() || v.is_i64()) {
        errs.push(format!("`{path}` must be an integer, got {v}"));
    }
}

fn string(v: &Value, path: &str, errs: &mut Vec<String>) {
    if !v.is_string() {
        errs.push(format!("`{path}` must be a string, got {v}"));
    }
}

/// An agent state `{name, kind}`.
fn agent_state(v: &Value, path: &str, errs: &mut Vec<String>) {
    string(&v["name"], &format!("{path}.name"), errs);
    one_of(&v["kind"], STATE_KINDS, &format!("{path}.kind"), errs);
}

/// An agent status `{state, since, next_state?}`.
pub fn status(v: &Value, path: &str, errs: &mut Vec<String>) {
    agent_state(&v["state"], &format!("{path}.state"), errs);
    integer(&v["since"], &format!("{path}.since"), errs);
    if let Some(next) = v.get("next_state").filter(|n| !n.is_null()) {
        agent_state(next, &format!("{path}.next_state"), errs);
    }
}

/// An endpoint `{id, kind, name, phone_number?, agent?, queue?}`.
pub fn endpoint(v: &Value, path: &str, errs: &mut Vec<String>) {
    string(&v["id"], &format!("{path}.id"), errs);
    string(&v["name"], &format!("{path}.name"), errs);
    one_of(&v["kind"], ENDPOINT_KINDS, &format!("{path}.kind"), errs);
    if let Some(kind) = v["kind"].as_str() {
        if ENDPOINT_KINDS.contains(&kind) {
            string(&v[kind], &format!("{path}.{kind}"), errs);
        }
    }
}

/// A contact as one agent sees it (section 6).
pub fn contact(v: &Value, path: &str, errs: &mut Vec<String>) {
    string(&v["contact_id"], &format!("{path}.contact_id"), errs);
    one_of(
        &v["initiation"],
        INITIATIONS,
        &format!("{path}.initiation"),
        errs,
    );
    integer(&v["created_at"], &format!("{path}.created_at"), errs);
    if !v["attributes"]
        .as_object()
        .is_some_and(|m| m.values().all(Value::is_string))
    {
        errs.push(format!("`{path}.attributes` must be a map of strings"));
    }
    let state = &v["state"];
    one_of(
        &state["name"],
        CONTACT_STATES,
        &format!("{path}.state.name"),
        errs,
    );
    let name = state["name"].as_str().unwrap_or("");
    if name != "init" {
        integer(&state["since"], &format!("{path}.state.since"), errs);
    }
    if name == "incoming" {
        integer(
            &state["expires_at"],
            &format!("{path}.state.expires_at"),
            errs,
        );
    }
    if name == "ended" || name == "error" {
        string(&state["reason"], &format!("{path}.state.reason"), errs);
    }
    let Some(connections) = v["connections"].as_array() else {
        errs.push(format!("`{path}.connections` must be an array"));
        return;
    };
    match connections.first() {
        Some(own) if own["kind"] == "agent" => {
            let leg = own.get("media_leg").filter(|l| !l.is_null());
            let live = name == "connected" && own["state"]["name"] == "connected";
            match leg {
                Some(l) if l.as_u64().is_none_or(|l| l > u64::from(u32::MAX)) => errs.push(
                    format!("`{path}.connections[0].media_leg` must be a 32-bit unsigned integer, got {l}"),
                ),
                Some(_) if !live => errs.push(format!(
                    "`{path}.connections[0].media_leg` is present while the contact is {name} and the connection is {}: the leg is gone when the connection leaves `connected`",
                    own["state"]["name"]
                )),
                None if live => errs.push(format!(
                    "`{path}.connections[0]` has no `media_leg` while the contact is connected"
                )),
                _ => {}
            }
        }
        _ => errs.push(format!(
            "`{path}.connections[0]` must be the viewing agent's own connection (kind `agent`)"
        )),
    }
    for (i, c) in connections.iter().enumerate() {
        let p = format!("{path}.connections[{i}]");
        string(&c["connection_id"], &format!("{p}.connection_id"), errs);
        one_of(&c["kind"], CONNECTION_KINDS, &format!("{p}.kind"), errs);
        one_of(
            &c["state"]["name"],
            CONNECTION_STATES,
            &format!("{p}.state.name"),
            errs,
        );
        if c["state"]["name"] == "disconnected" {
            string(&c["state"]["reason"], &format!("{p}.state.reason"), errs);
        }
        endpoint(&c["endpoint"], &format!("{p}.endpoint"), errs);
        if i > 0 && c.get("media_leg").is_some_and(|l| !l.is_null()) {
            errs.push(format!(
                "`{p}.media_leg`: only the agent's own connection carries a leg"
            ));
        }
    }
}

/// The snapshot's fields (a `snapshot` frame or a `get_snapshot` result).
fn snapshot_fields(v: &Value, path: &str, errs: &mut Vec<String>) {
    status(&v["status"], &format!("{path}.status"), errs);
    if let Some(states) = v["states"].as_array() {
        for (i, s) in states.iter().enumerate() {
            agent_state(s, &format!("{path}.states[{i}]"), errs);
        }
    }
    if let Some(contacts) = v["contacts"].as_array() {
        for (i, c) in contacts.iter().enumerate() {
            contact(c, &format!("{path}.contacts[{i}]"), errs);
        }
    }
}

fn error_body(v: &Value, path: &str, errs: &mut Vec<String>) {
    one_of(&v["code"], ERROR_CODES, &format!("{path}.code"), errs);
    string(&v["message"], &format!("{path}.message"), errs);
}

/// Checks any frame the backend sends against the contract.
pub fn server_frame(v: &Value, errs: &mut Vec<String>) {
    let Some(ty) = v["type"].as_str() else {
        errs.push("a frame without a string `type`".into());
        return;
    };
    match ty {
        "welcome" => {
            fits(&golden("welcome"), v, "welcome", errs);
            integer(&v["version"], "welcome.version", errs);
        }
        "snapshot" => {
            fits(&golden("snapshot"), v, "snapshot", errs);
            snapshot_fields(v, "snapshot", errs);
        }
        "error" => {
            error_body(v, "error", errs);
            if v["code"] == "unsupported_version" {
                fits(&golden("error_frame"), v, "error", errs);
            }
        }
        "token_expiring" => {
            fits(&golden("token_expiring"), v, "token_expiring", errs);
            integer(&v["expires_at"], "token_expiring.expires_at", errs);
        }
        "event" => {
            integer(&v["seq"], "event.seq", errs);
            match v["event"].as_str() {
                Some(
                    name @ ("agent_state_changed"
                    | "mute_changed"
                    | "contact_updated"
                    | "contact_destroyed"
                    | "digits"),
                ) => {
                    fits(&golden(&format!("event_{name}")), v, "event", errs);
                    match name {
                        "agent_state_changed" => status(v, "event", errs),
                        "contact_updated" => contact(v, "event", errs),
                        _ => {}
                    }
                }
                _ => errs.push(format!("undocumented event {}", v["event"])),
            }
        }
        "response" => {
            if !v["id"].is_u64() {
                errs.push("a response without an integer `id`".into());
            }
            match (v.get("result"), v.get("error")) {
                (Some(r), None) => result(r, errs),
                (None, Some(e)) => error_body(e, "response.error", errs),
                _ => errs.push("a response must carry exactly one of `result` and `error`".into()),
            }
        }
        other => errs.push(format!("undocumented frame type `{other}`")),
    }
}

/// Checks a response's `result` against the golden file for its `kind`.
fn result(r: &Value, errs: &mut Vec<String>) {
    let kind = r["kind"].as_str().unwrap_or("");
    let file = match kind {
        "ack"
        | "pong"
        | "snapshot"
        | "agent_state"
        | "agent_states"
        | "agent_configuration"
        | "routing_profile"
        | "quick_connects"
        | "contact_created"
        | "connection_added"
        | "attributes"
        | "token" => format!("result_{kind}"),
        _ => {
            errs.push(format!("undocumented result kind {}", r["kind"]));
            return;
        }
    };
    fits(&golden(&file)["result"], r, "result", errs);
    match kind {
        "snapshot" => snapshot_fields(r, "result", errs),
        "agent_state" => status(r, "result", errs),
        "agent_states" => {
            for (i, s) in r["states"].as_array().into_iter().flatten().enumerate() {
                agent_state(s, &format!("result.states[{i}]"), errs);
            }
        }
        "quick_connects" => {
            for (i, e) in r["endpoints"].as_array().into_iter().flatten().enumerate() {
                endpoint(e, &format!("result.endpoints[{i}]"), errs);
            }
        }
        _ => {}
    }
}

/// Checks a media frame's header (section 8); returns the leg id.
pub fn media_header(b: &[u8]) -> Result<u32, String> {
    if b.len() < 16 {
        return Err(format!(
            "{} bytes, shorter than the 16-byte header",
            b.len()
        ));
    }
    if b[0] != 1 {
        return Err(format!("version {} (must be 1)", b[0]));
    }
    if b[1] & !0b111 != 0 {
        return Err(format!("undefined flag bits in {:#04x}", b[1]));
    }
    if b[2] > 2 {
        return Err(format!(
            "unknown codec byte {} (0 Opus, 1 PCMU, 2 PCMA)",
            b[2]
        ));
    }
    if b[3] != 0 {
        return Err("reserved byte 3 is not zero".into());
    }
    if b.len() - 16 > 1275 {
        return Err(format!(
            "Opus packet of {} bytes (at most 1,275)",
            b.len() - 16
        ));
    }
    Ok(u32::from_be_bytes([b[4], b[5], b[6], b[7]]))
}

/// Builds a media frame (section 8).
pub fn media_frame(
    version: u8,
    flags: u8,
    reserved: u16,
    leg: u32,
    seq: u32,
    ts: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + payload.len());
    out.push(version);
    out.push(flags);
    out.extend_from_slice(&reserved.to_be_bytes());
    out.extend_from_slice(&leg.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The golden files fit themselves and the hand checks accept them,
    /// so the suite cannot fail a backend that sends exactly them.
    #[test]
    fn golden_files_pass_their_own_checks() {
        for name in [
            "welcome",
            "snapshot",
            "error_frame",
            "response_error",
            "event_agent_state_changed",
            "event_mute_changed",
            "event_contact_updated",
            "event_contact_destroyed",
            "event_digits",
            "result_ack",
            "result_pong",
            "result_snapshot",
            "result_agent_state",
            "result_agent_states",
            "result_agent_configuration",
            "result_routing_profile",
            "result_quick_connects",
            "result_contact_created",
            "result_connection_added",
            "result_attributes",
        ] {
            let v = golden(name);
            assert!(v.is_object(), "{name} loads");
            let mut errs = Vec::new();
            server_frame(&v, &mut errs);
            // The golden contact holds its customer while the agent is
            // connected: the only documented shape the hand checks add to.
            assert!(errs.is_empty(), "{name}: {errs:?}");
        }
    }

    #[test]
    fn a_wrong_type_or_missing_key_is_reported() {
        let mut v = golden("welcome");
        v["version"] = Value::String("1".into());
        let mut errs = Vec::new();
        server_frame(&v, &mut errs);
        assert!(
            errs.iter().any(|e| e.contains("welcome.version")),
            "{errs:?}"
        );

        let mut v = golden("event_contact_updated");
        v["connections"][0]
            .as_object_mut()
            .map(|o| o.remove("media_leg"));
        let mut errs = Vec::new();
        server_frame(&v, &mut errs);
        assert!(errs.iter().any(|e| e.contains("media_leg")), "{errs:?}");

        let mut errs = Vec::new();
        server_frame(
            &serde_json::json!({"type": "response", "id": 1, "error": {"code": "oops", "message": "x"}}),
            &mut errs,
        );
        assert!(errs.iter().any(|e| e.contains("code")), "{errs:?}");
    }

    #[test]
    fn media_headers_are_checked() {
        assert_eq!(
            media_header(&media_frame(1, 0b101, 0, 7, 1, 960, &[0xf8])),
            Ok(7)
        );
        assert!(media_header(&media_frame(2, 0, 0, 7, 1, 960, &[])).is_err());
        assert!(media_header(&media_frame(1, 0x08, 0, 7, 1, 960, &[])).is_err());
        assert!(media_header(&media_frame(1, 0, 1, 7, 1, 960, &[])).is_err());
        assert!(media_header(&media_frame(1, 0, 0, 7, 1, 960, &[0; 1276])).is_err());
        assert!(media_header(&[1, 0, 0]).is_err());
    }
}

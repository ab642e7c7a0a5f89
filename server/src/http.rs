//! The HTTP surface: login, the WebSocket upgrade, contact records, the
//! simulated-caller API, and static files (the CCP with its
//! `frame-ancestors` policy, the customer phone page, the demo CRM origin).
//! JSON errors share the wire's `{code, message}` shape and never carry
//! internals.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::error::{ErrorBody, ErrorCode};
use protocol::Millis;
use serde::Deserialize;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::auth;
use crate::bridge::CallerAudio;
use crate::center::Center;
use crate::config::Config;

/// Largest WebSocket message the transport reads. Far above any valid
/// frame, so oversized frames reach the protocol layer and get a typed
/// `frame_too_large` instead of a dropped connection.
pub const TRANSPORT_MAX_MESSAGE: usize = 16 << 20;

/// Initial read buffer per socket; it grows for larger messages.
const READ_BUFFER: usize = 4 * 1024;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The contact center.
    pub center: Arc<Mutex<Center>>,
    /// The media bridge, when media is on.
    pub bridge: Option<crate::bridge::Bridge>,
    /// The configuration.
    pub cfg: Arc<Config>,
    clock: Arc<dyn Fn() -> Millis + Send + Sync>,
    /// The graceful-stop signal every socket task watches.
    pub shutdown: crate::shutdown::Shutdown,
}

impl AppState {
    /// State on the wall clock.
    pub fn new(center: Center, cfg: Arc<Config>) -> Self {
        AppState {
            center: Arc::new(Mutex::new(center)),
            bridge: None,
            cfg,
            clock: Arc::new(wall_clock),
            shutdown: crate::shutdown::Shutdown::new(),
        }
    }

    /// Now, per this state's clock.
    pub fn now(&self) -> Millis {
        (self.clock)()
    }
}

/// Milliseconds since the epoch from the system clock.
pub fn wall_clock() -> Millis {
    Millis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    )
}

struct ApiError(StatusCode, ErrorBody);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::AuthFailed | ErrorCode::NotAuthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::NotOwner => StatusCode::FORBIDDEN,
        ErrorCode::QueueFull | ErrorCode::QueueClosed | ErrorCode::InvalidState => {
            StatusCode::CONFLICT
        }
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<ErrorBody> for ApiError {
    fn from(e: ErrorBody) -> Self {
        ApiError(status_for(e.code), e)
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    if body.len() > 64 * 1024 {
        return Err(ErrorBody::new(ErrorCode::FrameTooLarge, "request body over 64 KiB").into());
    }
    serde_json::from_slice(body)
        .map_err(|e| ErrorBody::new(ErrorCode::BadRequest, format!("bad JSON body: {e}")).into())
}

fn lock(state: &AppState) -> Result<std::sync::MutexGuard<'_, Center>, ApiError> {
    state
        .center
        .lock()
        .map_err(|_| ErrorBody::new(ErrorCode::Internal, "backend unavailable").into())
}

/// The backend's router. Static directories come from the configuration.
pub fn app(state: AppState) -> Router {
    let cfg = state.cfg.clone();
    let csp = HeaderValue::from_str(&frame_ancestors(&cfg.approved_origins))
        .unwrap_or_else(|_| HeaderValue::from_static("frame-ancestors 'self'"));
    let ccp = Router::new()
        .fallback_service(ServeDir::new(&cfg.ccp_dir).append_index_html_on_directories(true))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            csp,
        ));
    // The SDK is loaded by CRM pages on other origins, as a module script:
    // that needs CORS. It is public code, so any origin may load it.
    let sdk = Router::new()
        .fallback_service(ServeDir::new(cfg.ccp_dir.join("sdk")))
        .layer(SetResponseHeaderLayer::overriding(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ));
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/ccp/") }))
        .route("/v1/embed", get(embed_policy))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/v1/login",
            post(login).layer(login_cors(&cfg.approved_origins)),
        )
        .route("/v1/ws", get(upgrade))
        .route("/v1/contacts/{id}", get(contact_record))
        .route("/v1/sim/calls", post(sim_place))
        .route("/v1/sim/calls/{id}", get(sim_view).delete(sim_hangup))
        .route("/v1/sim/calls/{id}/digits", post(sim_digits))
        .route("/v1/sim/calls/{id}/heard", get(sim_heard))
        .route("/v1/sim/media-stats", get(sim_media_stats))
        .route("/v1/customer/ws", get(customer_upgrade))
        .nest_service("/ccp/sdk", sdk)
        .nest_service("/ccp", ccp)
        .nest_service("/phone", ServeDir::new(cfg.public_dir.join("phone")))
        .nest_service("/public", ServeDir::new(&cfg.public_dir))
        .with_state(state)
}

/// The demo CRM page, served on its own origin. It learns where the CCP
/// is from `/demo-config.json` (the backend's actual address, which differs
/// from the configured one when that names port 0).
pub fn crm_demo_app(cfg: &Config, backend: std::net::SocketAddr) -> Router {
    let ccp_url = format!("http://{backend}/ccp/");
    Router::new()
        .route(
            "/demo-config.json",
            get(move || {
                let ccp_url = ccp_url.clone();
                async move { Json(serde_json::json!({ "ccpUrl": ccp_url })) }
            }),
        )
        .fallback_service(
            ServeDir::new(cfg.public_dir.join("crm")).append_index_html_on_directories(true),
        )
}

/// Pages on approved origins may log in from script (the SDK's direct
/// transport); the browser refuses the answer to any other origin.
fn login_cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::AllowOrigin::list(allowed))
        .allow_methods([axum::http::Method::POST])
        .allow_headers([header::CONTENT_TYPE])
}

/// The origins that may frame the CCP. A framed CCP reads it to decide
/// whose messages to accept; it is the same list the CSP header carries.
async fn embed_policy(State(state): State<AppState>) -> Response {
    Json(serde_json::json!({ "approved_origins": state.cfg.approved_origins })).into_response()
}

/// `frame-ancestors 'self' <approved origins>`.
pub fn frame_ancestors(origins: &[String]) -> String {
    let mut csp = String::from("frame-ancestors 'self'");
    for o in origins {
        csp.push(' ');
        csp.push_str(o);
    }
    csp
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let body: LoginBody = parse_json(&body)?;
    let now = state.now();
    let center = lock(&state)?;
    let login = auth::login(&center, &body.username, &body.password, now)?;
    Ok(Json(login).into_response())
}

async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    // Small buffers: an agent's socket carries small frames, and the 128 KiB
    // defaults cost 256 KiB per connected agent. Writes go out eagerly.
    ws.max_message_size(TRANSPORT_MAX_MESSAGE)
        .max_frame_size(TRANSPORT_MAX_MESSAGE)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| crate::ws::serve_socket(socket, state))
}

fn bearer_agent(
    state: &AppState,
    headers: &HeaderMap,
    center: &Center,
) -> Result<String, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    auth::authenticate(center, token, state.now()).ok_or_else(|| {
        ErrorBody::new(ErrorCode::AuthFailed, "a valid bearer token is required").into()
    })
}

async fn contact_record(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let center = lock(&state)?;
    bearer_agent(&state, &headers, &center)?;
    match center.store().contact(&id) {
        Ok(Some(record)) => Ok(Json(record).into_response()),
        Ok(None) => Err(ErrorBody::new(ErrorCode::NotFound, "no such contact").into()),
        Err(e) => {
            tracing::error!("{e}");
            Err(ErrorBody::new(ErrorCode::Internal, "the record could not be read").into())
        }
    }
}

fn simulator_on(state: &AppState) -> Result<(), ApiError> {
    if state.cfg.simulator {
        Ok(())
    } else {
        Err(ErrorBody::new(
            ErrorCode::NotFound,
            "the simulator is switched off in the configuration",
        )
        .into())
    }
}

#[derive(Deserialize)]
struct PlaceBody {
    from: String,
    queue: String,
    /// A WAV under `public_dir` for the caller to play; "" for silence.
    #[serde(default)]
    play: Option<String>,
}

async fn sim_place(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    simulator_on(&state)?;
    let body: PlaceBody = parse_json(&body)?;
    let now = state.now();
    let mut center = lock(&state)?;
    let play = match body.play.as_deref() {
        None => CallerAudio::Prompt(
            center
                .config()
                .public_dir
                .join(&center.config().caller_prompt),
        ),
        Some("") => CallerAudio::Silence,
        Some("echo") => CallerAudio::Echo,
        Some(p) => {
            let path = std::path::PathBuf::from(p);
            // Only files under public_dir: no absolute paths, no `..`.
            if path
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(ErrorBody::new(
                    ErrorCode::InvalidArgument,
                    "`play` must be a relative path under the public directory, \"echo\" or \"\"",
                )
                .into());
            }
            CallerAudio::Prompt(center.config().public_dir.join(path))
        }
    };
    match center.place_inbound_playing(&body.from, &body.queue, play, now) {
        Ok(id) => Ok((
            StatusCode::CREATED,
            Json(serde_json::json!({ "contact_id": id })),
        )
            .into_response()),
        Err(refused) => {
            let status = status_for(refused.error.code);
            let mut json =
                serde_json::json!({ "code": refused.error.code, "message": refused.error.message });
            if !refused.contact_id.is_empty() {
                json["contact_id"] = refused.contact_id.into();
            }
            Ok((status, Json(json)).into_response())
        }
    }
}

async fn sim_view(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    simulator_on(&state)?;
    let center = lock(&state)?;
    if let Some(view) = center.caller_view(&id) {
        return Ok(Json(view).into_response());
    }
    match center.store().contact(&id) {
        Ok(Some(_)) => Ok(Json(
            serde_json::json!({ "contact_id": id, "state": "ended", "digits_heard": "" }),
        )
        .into_response()),
        _ => Err(ErrorBody::new(ErrorCode::NotFound, "no such call").into()),
    }
}

async fn sim_hangup(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    simulator_on(&state)?;
    let now = state.now();
    lock(&state)?.caller_hangup(&id, now)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct DigitsBody {
    digits: String,
}

async fn sim_digits(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    simulator_on(&state)?;
    let body: DigitsBody = parse_json(&body)?;
    let now = state.now();
    lock(&state)?.caller_digits(&id, &body.digits, now)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn sim_heard(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    simulator_on(&state)?;
    let path = {
        let center = lock(&state)?;
        if center.caller_view(&id).is_some_and(|v| v.state != "ended") {
            return Err(ErrorBody::new(
                ErrorCode::InvalidState,
                "the recording is complete once the call has ended",
            )
            .into());
        }
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ErrorBody::new(ErrorCode::NotFound, "no such call").into());
        }
        center.heard_path(&id)
    };
    // The bridge closes the file a moment after the call ends, when it
    // applies the ended plan. Its header is kept current while the call
    // runs, so a non-zero size alone does not mean finished: a round trip
    // to the bridge, which applies commands in order, does.
    if let Some(bridge) = &state.bridge {
        let _ = bridge.stats().await;
    }
    for _ in 0..20 {
        if let Ok(bytes) = tokio::fs::read(&path).await {
            if bytes.len() >= 44 && bytes[40..44] != [0, 0, 0, 0] {
                return Ok(([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response());
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Err(ErrorBody::new(ErrorCode::NotFound, "no recording for this call").into())
}

async fn sim_media_stats(State(state): State<AppState>) -> Result<Response, ApiError> {
    simulator_on(&state)?;
    let Some(bridge) = &state.bridge else {
        return Err(ErrorBody::new(ErrorCode::NotFound, "media is off").into());
    };
    let s = bridge.stats().await;
    Ok(Json(serde_json::json!({
        "calls": s.calls,
        "frames_sent": s.frames_sent,
        "frames_dropped": s.frames_dropped,
        "frames_received": s.frames_received,
        "late_ticks": s.late_ticks,
        "worst_tick_us": s.worst_tick_us,
        "p99_tick_us": s.p99_tick_us,
    }))
    .into_response())
}

async fn customer_upgrade(
    State(state): State<AppState>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    simulator_on(&state)?;
    Ok(ws
        .max_message_size(64 * 1024)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| crate::customer::serve_customer(socket, state)))
}

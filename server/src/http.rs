//! The HTTP surface: login, the WebSocket upgrade, contact records, the
//! simulated-caller API (behind [`crate::fence`]), and static files: the
//! CCP with its Content-Security-Policy on the backend's origin, and the
//! demo pages (demo CRM, customer phone) on the demo origin only, so no
//! page that takes input from its URL runs where the agent's token lives.
//! JSON errors share the wire's `{code, message}` shape and never carry
//! internals.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
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
    /// The simulator's key, origin and rate checks.
    pub fence: Arc<crate::fence::SimFence>,
    /// Login throttling and the sockets open per login.
    pub auth: Arc<auth::AuthState>,
    clock: Arc<dyn Fn() -> Millis + Send + Sync>,
    /// Every open socket, counted against `[limits]`.
    pub sockets: Arc<crate::limits::Sockets>,
    /// The graceful-stop signal every socket task watches.
    pub shutdown: crate::shutdown::Shutdown,
    /// Media-socket tickets and where each agent's media goes back to.
    pub media_sockets: Arc<crate::media_socket::MediaSockets>,
}

impl AppState {
    /// State on the wall clock.
    pub fn new(center: Center, cfg: Arc<Config>) -> Self {
        AppState {
            center: Arc::new(Mutex::new(center)),
            bridge: None,
            fence: Arc::new(crate::fence::SimFence::new(&cfg)),
            auth: Arc::new(auth::AuthState::new(&cfg)),
            sockets: crate::limits::Sockets::new(&cfg.limits),
            cfg,
            clock: Arc::new(wall_clock),
            shutdown: crate::shutdown::Shutdown::new(),
            media_sockets: Arc::new(crate::media_socket::MediaSockets::new()),
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

pub(crate) struct ApiError(StatusCode, ErrorBody);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::AuthFailed | ErrorCode::NotAuthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::LoginThrottled => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::NotOwner => StatusCode::FORBIDDEN,
        ErrorCode::QueueFull | ErrorCode::QueueClosed | ErrorCode::InvalidState => {
            StatusCode::CONFLICT
        }
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<crate::fence::FenceError> for ApiError {
    fn from(e: crate::fence::FenceError) -> Self {
        ApiError(e.status(), e.body())
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
    let ccp = Router::new()
        .fallback_service(ServeDir::new(&cfg.ccp_dir).append_index_html_on_directories(true))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(CcpPolicy::new(&cfg.approved_origins)),
            ccp_policy,
        ));
    // The flow page: static, on the CCP's origin, under the CCP's policy.
    let flows_page = Router::new()
        .fallback_service(
            ServeDir::new(cfg.public_dir.join("flows")).append_index_html_on_directories(true),
        )
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(CcpPolicy::new(&cfg.approved_origins)),
            ccp_policy,
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
        .route(
            "/v1/logout",
            post(logout).layer(token_cors(&cfg.approved_origins)),
        )
        .route(
            "/v1/token/refresh",
            post(refresh_token).layer(token_cors(&cfg.approved_origins)),
        )
        .route("/v1/ws", get(upgrade))
        .route(crate::media_socket::PATH, get(crate::media_socket::upgrade))
        .route("/v1/contacts/{id}", get(contact_record))
        .route("/v1/flows", get(flows_list))
        .nest_service("/flows", flows_page)
        .route("/v1/contacts/{id}/recording", get(contact_recording))
        .route("/v1/sim/calls", post(sim_place))
        .route("/v1/sim/calls/{id}", get(sim_view).delete(sim_hangup))
        .route("/v1/sim/calls/{id}/digits", post(sim_digits))
        .route("/v1/sim/calls/{id}/heard", get(sim_heard))
        .route("/v1/sim/media-stats", get(sim_media_stats))
        .route("/v1/customer/ws", get(customer_upgrade))
        .nest_service("/ccp/sdk", sdk)
        .nest_service("/ccp", ccp)
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .with_state(state)
}

/// The headers every CCP response carries: a Content-Security-Policy that
/// lets the page run only its own scripts and wasm, talk only to this
/// backend, and be framed only by approved origins; and a
/// Permissions-Policy that keeps the microphone to the CCP (and the CRM
/// frames that delegate it).
pub struct CcpPolicy {
    origins: Vec<String>,
}

impl CcpPolicy {
    /// The policy for these approved origins (validated by the configuration).
    pub fn new(origins: &[String]) -> CcpPolicy {
        CcpPolicy {
            origins: origins.to_vec(),
        }
    }

    /// The CSP for a page served to `host` (the request's `Host`, when it
    /// is a plain `host[:port]`): its WebSocket URL is this backend's.
    pub fn csp(&self, host: Option<&str>) -> String {
        let mut connect = String::from("'self'");
        if let Some(h) = host {
            connect.push_str(&format!(" ws://{h} wss://{h}"));
        }
        let mut media = String::from("'self'");
        for o in &self.origins {
            // An embedding CRM may supply its own ringtone (Streams' ringtoneUrl).
            media.push(' ');
            media.push_str(o);
        }
        format!(
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
             connect-src {connect}; media-src {media}; object-src 'none'; base-uri 'none'; \
             form-action 'self'; {}",
            frame_ancestors(&self.origins)
        )
    }

    /// `microphone=(self "<origin>" ...)`: the CCP and the CRM pages that
    /// frame it may use the microphone; nothing uses the camera or location.
    pub fn permissions(&self) -> String {
        let mut mic = String::from("self");
        for o in &self.origins {
            mic.push_str(&format!(" \"{o}\""));
        }
        format!("microphone=({mic}), camera=(), geolocation=()")
    }
}

/// Whether `host` is a bare `host[:port]` fit to put in a header.
fn plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
}

/// Adds [`CcpPolicy`]'s headers, and serves no HTML under `/ccp/` but the
/// CCP itself: a stray page in the build directory must not run on the
/// CCP's origin.
async fn ccp_policy(
    State(policy): State<Arc<CcpPolicy>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path().to_owned();
    if path.ends_with(".html") && path != "/index.html" {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| plain_host(h))
        .map(str::to_owned);
    let mut res = next.run(req).await;
    let ok = res.status() == StatusCode::OK;
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&policy.csp(host.as_deref())) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    if let Ok(v) = HeaderValue::from_str(&policy.permissions()) {
        headers.insert(HeaderName::from_static("permissions-policy"), v);
    }
    if ok {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_policy(&path)),
        );
    }
    res
}

/// How long a browser may keep a file of the CCP. Trunk names the CCP's
/// module, its loader and its style sheet after a hash of their content, so
/// a changed build has new names: those are kept for a year without asking
/// again (a reload then skips the round trip, and Chromium reuses its
/// compiled code for the module). Everything else (the page, boot.js, the
/// wasm-bindgen snippets, whose directory is named after the crate rather
/// than their content, the SDK and the audio engine) is asked about every
/// time, so a new build is never hidden behind a stale copy.
fn cache_policy(path: &str) -> &'static str {
    let file = path.rsplit('/').next().unwrap_or_default();
    if !path.contains("/snippets/") && has_content_hash(file) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

/// Whether a file name carries Trunk's content hash: `-` then 16 lowercase
/// hex digits, ending the name's stem (`app-0123456789abcdef.js`,
/// `app-0123456789abcdef_bg.wasm`).
fn has_content_hash(file: &str) -> bool {
    file.match_indices('-').any(|(i, _)| {
        let rest = &file[i + 1..];
        rest.len() > 16
            && rest.as_bytes()[..16]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            && matches!(rest.as_bytes()[16], b'.' | b'_')
    })
}

/// The demo origin: the demo CRM page at `/`, the customer phone page at
/// `/phone/` (with the audio engine it needs at `/media/`), never on the
/// CCP's origin. The pages learn where the backend is from
/// `/demo-config.json` (the backend's actual address, which differs from
/// the configured one when that names port 0) and nowhere else, not from
/// their URL. The config also hands the customer phone the simulator key:
/// a development convenience, readable by any page on this origin (and by
/// no other: no CORS here), so a deployment with a real key turns the demo
/// origin off.
pub fn crm_demo_app(cfg: &Config, backend: std::net::SocketAddr) -> Router {
    let config = serde_json::json!({
        "ccpUrl": format!("http://{backend}/ccp/"),
        "backendUrl": format!("http://{backend}"),
        "simulatorKey": cfg.simulator.then(|| cfg.simulator_key.clone()),
    });
    Router::new()
        .route(
            "/demo-config.json",
            get(move || {
                let config = config.clone();
                async move { Json(config) }
            }),
        )
        .nest_service(
            "/phone",
            ServeDir::new(cfg.public_dir.join("phone")).append_index_html_on_directories(true),
        )
        .nest_service("/media", ServeDir::new(cfg.ccp_dir.join("media")))
        .fallback_service(
            ServeDir::new(cfg.public_dir.join("crm")).append_index_html_on_directories(true),
        )
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
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

/// Logout and refresh carry the bearer token from script on approved
/// origins (the SDK's direct transport), so they allow `Authorization`.
fn token_cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    login_cors(origins)
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .expose_headers([header::RETRY_AFTER])
}

/// The client's address as the listener saw it (the backend is meant to
/// face clients directly; behind a proxy every client shares its address).
/// Served without connect info (a test's own `axum::serve`), every client
/// counts as `0.0.0.0`.
fn peer_ip(extensions: &axum::http::Extensions) -> std::net::IpAddr {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| {
            c.0.ip()
        })
}

impl From<auth::AuthError> for ApiError {
    fn from(e: auth::AuthError) -> Self {
        ApiError::from(e.body())
    }
}

async fn login(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: LoginBody = parse_json(&body)?;
    match auth::login(&state, &body.username, &body.password, peer_ip(&extensions)).await {
        Ok(login) => Ok(Json(login).into_response()),
        Err(e @ auth::AuthError::Throttled { retry_after_ms }) => {
            let secs = retry_after_ms.div_ceil(1000).max(1);
            Ok((
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                Json(e.body()),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
}

/// Revokes the presented token's login: it and every token refreshed from
/// it stop working, and sockets open on them are closed (`token_revoked`).
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    auth::logout(&state, bearer(&headers))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A new token for the presented token's login (the presented one keeps
/// working until its own expiry).
async fn refresh_token(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.now();
    let center = lock(&state)?;
    let info =
        auth::authenticate(&center, bearer(&headers), now).ok_or(auth::AuthError::BadToken)?;
    let login = auth::refresh(&center, &info.agent, &info.family, now)?;
    Ok(Json(login).into_response())
}

async fn upgrade(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    ws: WebSocketUpgrade,
) -> Response {
    let ticket = match admit(&state, &extensions) {
        Ok(t) => t,
        Err(refused) => return refused.into_response(),
    };
    limit_transport(ws, &state.cfg.limits)
        .on_upgrade(move |socket| crate::ws::serve_socket(socket, state, ticket))
}

/// A place among the backend's sockets for the peer, or 429 with a typed
/// `rate_limited` body. Without connect info (a router served without
/// it), every peer counts as one unknown address.
pub(crate) fn admit(
    state: &AppState,
    extensions: &axum::http::Extensions,
) -> Result<crate::limits::SocketTicket, ApiError> {
    let ip = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    state.sockets.admit(ip).map_err(|refused| {
        tracing::debug!(%ip, "socket refused: {refused}");
        ErrorBody::new(ErrorCode::RateLimited, refused.to_string()).into()
    })
}

/// The transport's limits: a message or frame over `max_frame_bytes` is
/// refused from its header, before its payload is buffered (close 1009).
/// Small buffers: an agent's socket carries small frames, and the 128 KiB
/// defaults cost 256 KiB per connected agent. Writes go out eagerly.
pub(crate) fn limit_transport(
    ws: WebSocketUpgrade,
    limits: &crate::config::Limits,
) -> WebSocketUpgrade {
    ws.max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
}

fn bearer_agent(
    state: &AppState,
    headers: &HeaderMap,
    center: &Center,
) -> Result<String, ApiError> {
    auth::authenticate(center, bearer(headers), state.now())
        .map(|t| t.agent)
        .ok_or_else(|| auth::AuthError::BadToken.into())
}

async fn contact_record(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let center = lock(&state)?;
    let agent = bearer_agent(&state, &headers, &center)?;
    // Only an agent who took part sees the record (a supervisor sees
    // every one); anyone else gets the same 404 as for a contact that
    // does not exist, which reveals nothing.
    let took_part = is_supervisor(&state, &agent)
        || center.store().took_part(&id, &agent).unwrap_or_else(|e| {
            tracing::error!("{e}");
            false
        });
    if !took_part {
        return Err(ErrorBody::new(ErrorCode::NotFound, "no such contact").into());
    }
    match center.store().contact(&id) {
        Ok(Some(record)) => Ok(Json(record).into_response()),
        Ok(None) => Err(ErrorBody::new(ErrorCode::NotFound, "no such contact").into()),
        Err(e) => {
            tracing::error!("{e}");
            Err(ErrorBody::new(ErrorCode::Internal, "the record could not be read").into())
        }
    }
}

/// `GET /v1/contacts/{id}/recording`: the call's mix as a WAV, made now
/// from the parties' Ogg Opus files (the backend stores no mix). The same
/// authorization as the record: only an agent who took part.
async fn contact_recording(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ErrorBody::new(ErrorCode::NotFound, "no such contact");
    let (dir, live) = {
        let center = lock(&state)?;
        let agent = bearer_agent(&state, &headers, &center)?;
        let took_part = center.store().took_part(&id, &agent).unwrap_or_else(|e| {
            tracing::error!("{e}");
            false
        });
        if !took_part {
            return Err(not_found().into());
        }
        let record = match center.store().contact(&id) {
            Ok(Some(record)) => record,
            Ok(None) => return Err(not_found().into()),
            Err(e) => {
                tracing::error!("{e}");
                return Err(
                    ErrorBody::new(ErrorCode::Internal, "the record could not be read").into(),
                );
            }
        };
        let live = center
            .caller_view(&id)
            .is_some_and(|v| v.state != crate::center::CallerPhase::Ended)
            || record.ended_at.is_none();
        (record.recording, live)
    };
    let Some(dir) = dir else {
        return Err(ErrorBody::new(ErrorCode::NotFound, "this contact was not recorded").into());
    };
    if live {
        return Err(ErrorBody::new(
            ErrorCode::InvalidState,
            "the recording is complete once the call has ended",
        )
        .into());
    }
    if let Some(bridge) = &state.bridge {
        bridge.settle_recordings().await;
    }
    let dir = std::path::PathBuf::from(dir);
    let mixed = tokio::task::spawn_blocking(move || {
        crate::bridge::mixdown::mix_dir(&dir).map(|pcm| crate::bridge::mixdown::wav_bytes(&pcm))
    })
    .await;
    match mixed {
        Ok(Ok(wav)) => Ok(([(header::CONTENT_TYPE, "audio/wav")], wav).into_response()),
        Ok(Err(crate::bridge::mixdown::MixdownError::Read { source, .. }))
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Err(ErrorBody::new(ErrorCode::NotFound, "no recording for this contact").into())
        }
        Ok(Err(e)) => {
            tracing::warn!("recording of {id}: {e}");
            Err(ErrorBody::new(ErrorCode::Internal, "the recording could not be read").into())
        }
        Err(_) => Err(ErrorBody::new(ErrorCode::Internal, "mixing failed").into()),
    }
}

/// Every simulator request: on, from no foreign page, with the key.
fn simulator_on(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    Ok(state.fence.admit(headers)?)
}

/// A simulator POST must say its body is JSON. Browsers send that type
/// cross-origin only after a CORS preflight, which this API never grants.
fn json_body(headers: &HeaderMap) -> Result<(), ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if json {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorBody::new(
                ErrorCode::BadRequest,
                "the body must be sent as Content-Type: application/json",
            ),
        ))
    }
}

/// Whether `agent` has `supervisor = true`.
fn is_supervisor(state: &AppState, agent: &str) -> bool {
    state.cfg.agents.get(agent).is_some_and(|a| a.supervisor)
}

/// `GET /v1/flows`: every configured flow as a graph (supervisors only).
async fn flows_list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let agent = {
        let center = lock(&state)?;
        bearer_agent(&state, &headers, &center)?
    };
    if !is_supervisor(&state, &agent) {
        return Err(ErrorBody::new(
            ErrorCode::NotOwner,
            "only supervisors (supervisor = true) may read the flows",
        )
        .into());
    }
    let flows = &state.cfg.flows;
    let list: Vec<serde_json::Value> = flows
        .order
        .iter()
        .filter_map(|id| flows.flows.get(id))
        .map(|f| {
            let mut blocks: Vec<&crate::flow::Block> = f.blocks.values().collect();
            blocks.sort_by_key(|b| b.line);
            serde_json::json!({
                "id": f.id,
                "name": f.name,
                "type": f.kind,
                "start": f.start,
                "blocks": blocks.iter().map(|b| serde_json::json!({
                    "id": b.id,
                    "type": b.type_name,
                    "label": b.label(),
                    "branches": b.all_branches().into_iter().map(|(name, to)| {
                        serde_json::json!({ "name": name, "to": to })
                    }).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "flows": list })).into_response())
}

/// One step of a simulated caller's digit script.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DigitStep {
    /// Pause before pressing, from the call's start (first step) or the
    /// previous step.
    after_ms: u64,
    keys: String,
}

/// Most steps in a digit script.
const MAX_DIGIT_STEPS: usize = 32;

/// Longest pause in a digit script.
const MAX_DIGIT_PAUSE_MS: u64 = 600_000;

#[derive(Deserialize)]
struct PlaceBody {
    from: String,
    /// A queue to dial (or `to`, an entry point number).
    #[serde(default)]
    queue: Option<String>,
    /// An entry point number: the call runs its flow.
    #[serde(default)]
    to: Option<String>,
    /// Keys to press, with pauses.
    #[serde(default)]
    digits: Vec<DigitStep>,
    /// A WAV under `public_dir` for the caller to play; "" for silence.
    #[serde(default)]
    play: Option<String>,
}

async fn sim_place(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    simulator_on(&state, &headers)?;
    json_body(&headers)?;
    let body: PlaceBody = parse_json(&body)?;
    if body.queue.is_some() == body.to.is_some() {
        return Err(ErrorBody::new(
            ErrorCode::InvalidArgument,
            "give either `queue` or `to` (an entry point number)",
        )
        .into());
    }
    if body.digits.len() > MAX_DIGIT_STEPS
        || body
            .digits
            .iter()
            .any(|d| d.after_ms > MAX_DIGIT_PAUSE_MS || !protocol::endpoint::is_dtmf(&d.keys))
    {
        return Err(ErrorBody::new(
            ErrorCode::InvalidArgument,
            format!(
                "`digits`: at most {MAX_DIGIT_STEPS} steps of {{ after_ms (0-{MAX_DIGIT_PAUSE_MS}), keys (1-64 of 0-9 * # A-D) }}"
            ),
        )
        .into());
    }
    let now = state.now();
    if let Err(e) = state.fence.take_call(now) {
        let retry = match &e {
            crate::fence::FenceError::RateLimited { retry_after_s, .. } => *retry_after_s,
            _ => 60,
        };
        let mut res = ApiError::from(e).into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry));
        return Ok(res);
    }
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
    let placed = match (&body.queue, &body.to) {
        (Some(queue), _) => center.place_inbound_playing(&body.from, queue, play, now),
        (None, Some(to)) => center.place_flow_call(&body.from, to, play, now),
        (None, None) => unreachable_place(),
    };
    drop(center);
    if let (Ok(id), false) = (&placed, body.digits.is_empty()) {
        spawn_digit_script(state.clone(), id.clone(), body.digits);
    }
    match placed {
        Ok(id) => Ok((
            StatusCode::CREATED,
            Json(serde_json::json!({ "contact_id": id })),
        )
            .into_response()),
        Err(refused) => {
            let error = refused.body();
            let status = status_for(error.code);
            let mut json = serde_json::json!({ "code": error.code, "message": error.message });
            if !refused.contact_id.is_empty() {
                json["contact_id"] = refused.contact_id.into();
            }
            Ok((status, Json(json)).into_response())
        }
    }
}

/// Never reached (`sim_place` checked that one of the two is given);
/// an error rather than a panic all the same.
fn unreachable_place() -> Result<String, crate::center::InboundRefused> {
    Err(crate::center::InboundRefused::unrecorded(
        crate::center::QueueError::NoQueue {
            queue: String::new(),
        },
    ))
}

/// Presses a simulated caller's keys on schedule, until the script ends
/// or the call does.
fn spawn_digit_script(state: AppState, contact_id: String, steps: Vec<DigitStep>) {
    tokio::spawn(async move {
        for step in steps {
            tokio::time::sleep(std::time::Duration::from_millis(step.after_ms)).await;
            let now = state.now();
            let pressed = match state.center.lock() {
                Ok(mut c) => c.caller_digits(&contact_id, &step.keys, now),
                Err(_) => return,
            };
            if pressed.is_err() {
                return;
            }
        }
    });
}

async fn sim_view(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    simulator_on(&state, &headers)?;
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
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    simulator_on(&state, &headers)?;
    let now = state.now();
    lock(&state)?
        .caller_hangup(&id, now)
        .map_err(|e| e.body())?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct DigitsBody {
    digits: String,
}

async fn sim_digits(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    simulator_on(&state, &headers)?;
    json_body(&headers)?;
    let body: DigitsBody = parse_json(&body)?;
    let now = state.now();
    lock(&state)?
        .caller_digits(&id, &body.digits, now)
        .map_err(|e| e.body())?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn sim_heard(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    simulator_on(&state, &headers)?;
    let path = {
        let center = lock(&state)?;
        if center
            .caller_view(&id)
            .is_some_and(|v| v.state != crate::center::CallerPhase::Ended)
        {
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
    // applies the ended plan; the file is finished once its end-of-stream
    // page is on disk. What it holds are the packets the caller was sent:
    // decoded here, on a blocking thread, only because someone asked.
    if let Some(bridge) = &state.bridge {
        bridge.settle_recordings().await;
    }
    for _ in 0..20 {
        if let Ok(bytes) = tokio::fs::read(&path).await {
            if crate::bridge::mixdown::finished(&bytes) {
                let shown = path.display().to_string();
                let wav = tokio::task::spawn_blocking(move || {
                    crate::bridge::mixdown::decode(&bytes, &shown)
                        .map(|pcm| crate::bridge::mixdown::wav_bytes(&pcm))
                })
                .await;
                return match wav {
                    Ok(Ok(wav)) => Ok(([(header::CONTENT_TYPE, "audio/wav")], wav).into_response()),
                    Ok(Err(e)) => {
                        tracing::warn!("heard file: {e}");
                        Err(
                            ErrorBody::new(ErrorCode::Internal, "the recording could not be read")
                                .into(),
                        )
                    }
                    Err(_) => Err(ErrorBody::new(ErrorCode::Internal, "decoding failed").into()),
                };
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Err(ErrorBody::new(ErrorCode::NotFound, "no recording for this call").into())
}

async fn sim_media_stats(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    simulator_on(&state, &headers)?;
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
        "input_dropped": s.input_dropped,
        "frames_forwarded": s.frames_forwarded,
        "recording_dropped": s.recording_dropped,
        "calls_idle": s.calls_idle,
        "delay_frames": s.delay.count,
        "delay_p50_us": s.delay.p50_us,
        "delay_p99_us": s.delay.p99_us,
        "delay_max_us": s.delay.max_us,
        "delay_buckets_us": crate::bridge::route::FORWARD_DELAY.buckets(),
        "mixer_delay_buckets_us": crate::bridge::route::MIXER_DELAY.buckets(),
        "mix_encodes": s.mix_encodes,
        "mix_encodes_saved": s.mix_encodes_saved,
        "mixer_wakes": s.wakes,
    }))
    .into_response())
}

async fn customer_upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // A WebSocket cannot carry a header from a page's script: the key
    // comes in the dial message (see customer.rs); the origin is checked here.
    state.fence.admit_origin(&headers)?;
    let ticket = admit(&state, &extensions)?;
    Ok(limit_transport(ws, &state.cfg.limits)
        .on_upgrade(move |socket| crate::customer::serve_customer(socket, state, ticket)))
}

#[cfg(test)]
mod tests {
    use super::cache_policy;

    const KEEP: &str = "public, max-age=31536000, immutable";

    #[test]
    fn trunk_hashed_files_are_kept_and_everything_else_is_revalidated() {
        // Names as `trunk build` writes them into dist/.
        for kept in [
            "/switchboard-app-a2ed7d506c4f65f2_bg.wasm",
            "/switchboard-app-a2ed7d506c4f65f2.js",
            "/style-dc9a5ff6c32a5893.css",
        ] {
            assert_eq!(cache_policy(kept), KEEP, "{kept}");
        }
        for asked in [
            "/",
            "/index.html",
            "/boot.js",
            "/snippets/switchboard-app-a2ed7d506c4f65f2/inline0.js",
            "/media/engine.wasm",
            "/sdk/switchboard.js",
            "/app-a2ed7d506c4f65f.js",
            "/app-a2ed7d506c4f65g2.js",
            "/app-A2ED7D506C4F65F2.js",
            "/app-a2ed7d506c4f65f2",
        ] {
            assert_eq!(cache_policy(asked), "no-cache", "{asked}");
        }
    }
}

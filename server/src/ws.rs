//! One agent's WebSocket: the thin driver between the socket and the
//! center. It authenticates the first `hello`, forwards requests, and
//! writes whatever the center emits, in order, through one writer task.
//!
//! Bad JSON, unknown types and ops, and malformed frames each get a typed
//! error and the session carries on. What the socket may cost is bounded
//! (`[limits]`, see [`crate::limits`]): a frame over the transport limit
//! closes it with 1009, a client that floods gets `rate_limited` and then
//! a close, one that does not read is disconnected, one that sends only
//! errors or no `hello` at all is closed.
//!
//! The login holds on the open socket ([`crate::auth::Grant`]): a
//! configured lead time before the token expires the socket gets
//! `token_expiring`; `refresh_token` moves its expiry to the new token's;
//! at expiry it gets `session_expired` and is closed, and a logout closes
//! it at once with `token_revoked`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use protocol::error::{ErrorBody, ErrorCode};
use protocol::media::decode_media_frame;
use protocol::wire::{
    decode_client_frame, encode, ClientFrame, FrameError, Hello, Op, OpResult, Response,
    ServerFrame, TokenExpiring,
};
use protocol::SUPPORTED_VERSIONS;
use tokio::sync::mpsc;

use crate::auth::{authenticate, Grant, GrantEvent};
use crate::bridge::route::{DirectWrite, MediaOut, SocketSlot, FORWARD_DELAY, MIXER_DELAY};
use crate::center::HEARTBEAT_MS;
use crate::http::AppState;
use crate::limits::{
    CloseReason, FloodGuard, Inbox, Kind, Outbox, PreHelloErrors, Shutdown, SocketTicket, Verdict,
};

/// A session that sends nothing for this long is considered gone.
const IDLE_TIMEOUT: Duration = Duration::from_millis(HEARTBEAT_MS * 3);

fn frame_error(code: ErrorCode, message: impl Into<String>) -> ServerFrame {
    ServerFrame::Error(FrameError {
        id: None,
        error: ErrorBody::new(code, message),
        supported_versions: None,
    })
}

/// What a flooding agent or media socket is told before it closes.
pub(crate) fn flooded() -> String {
    encode(&frame_error(ErrorCode::RateLimited, FLOODED))
}

/// Queues a frame on the socket's outbox (see [`Outbox::push`]).
fn send(tx: &Outbox, frame: ServerFrame) -> bool {
    tx.push(encode(&frame))
}

/// The answer to a message over the rate limit.
pub(crate) const RATE_LIMITED: &str = "too many messages; slow down";

/// Whether a read error is the transport's size limit (then the socket
/// closes with 1009). The error comes from tungstenite through axum.
pub(crate) fn is_too_big(e: axum::Error) -> bool {
    e.into_inner()
        .downcast_ref::<tungstenite::Error>()
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

/// The answer to a client that kept flooding after `rate_limited`.
pub(crate) const FLOODED: &str = "too many messages; closing";

/// One read of a socket, sorted the way every socket's read loop sorts it
/// (the agent's, the customer phone's and the media socket's).
pub(crate) enum Inbound {
    /// A message to handle (never a close frame); `limited` when the flood
    /// guard refuses it (answer `rate_limited` and drop it).
    Message {
        /// What arrived.
        msg: Message,
        /// Over the rate limit.
        limited: bool,
    },
    /// The socket is to close: the client closed it or went away, sent a
    /// frame over the transport limit, or kept flooding (the close reason
    /// is set, and a flooder is told with `flooded()`).
    End,
}

/// Sorts what `stream.next()` gave at `now`: the transport's end and
/// errors, the client's close, and the flood guard's verdict (media and
/// text have their own budgets). `flooded` makes the socket's own error
/// message for a flooder, in its own format.
pub(crate) fn read_one(
    next: Option<Result<Message, axum::Error>>,
    flood: &mut FloodGuard,
    now: Instant,
    tx: &Outbox,
    shutdown: &Shutdown,
    flooded: impl FnOnce() -> String,
) -> Inbound {
    let msg = match next {
        Some(Ok(Message::Close(_))) | None => return Inbound::End,
        Some(Ok(msg)) => msg,
        Some(Err(e)) => {
            tracing::debug!("socket error: {e}");
            if is_too_big(e) {
                shutdown.set_reason(CloseReason::TOO_BIG);
            }
            return Inbound::End;
        }
    };
    let kind = match msg {
        Message::Binary(_) => Kind::Media,
        _ => Kind::Text,
    };
    match flood.check(kind, now) {
        Verdict::Close => {
            tx.push(flooded());
            shutdown.set_reason(CloseReason::FLOOD);
            Inbound::End
        }
        verdict => Inbound::Message {
            msg,
            limited: verdict == Verdict::Refuse,
        },
    }
}

/// At most this many frames go into one write (one syscall): enough to
/// catch a writer up after a stall, small enough that text frames queued
/// meanwhile do not wait behind a long run of media.
pub(crate) const WRITE_BATCH: usize = 32;

/// How a batch write ended.
#[derive(Debug, PartialEq, Eq)]
enum Wrote {
    /// Every frame of the batch is written and flushed.
    All,
    /// The socket failed (the client went away).
    Failed,
    /// The client did not take the batch within the write deadline.
    TooSlow,
}

/// The one task that writes to a socket: text frames in order, media
/// frames as they come (text first when both are ready). Whatever is
/// queued when the writer wakes goes out together, encoded into the
/// socket's buffer and flushed in one write, so a backed-up socket costs
/// one syscall per batch, not per frame.
///
/// Every write has a deadline: a client that stops reading is
/// disconnected (its driver is told through `shutdown`), never waited
/// for. The deadline is armed only when a write cannot complete at once
/// (the client's receive window is full), so the common write that goes
/// straight into the kernel arms no timer. Ends when every [`Outbox`] is
/// dropped, after sending the close frame `shutdown` holds, if any.
pub fn spawn_writer<S>(
    sink: S,
    inbox: Inbox,
    media_rx: mpsc::Receiver<MediaOut>,
    shutdown: Arc<Shutdown>,
    write_timeout: Duration,
) -> tokio::task::JoinHandle<()>
where
    S: futures_util::Sink<Message> + Unpin + Send + 'static,
{
    spawn_direct_writer(sink, inbox, media_rx, shutdown, write_timeout).0
}

/// Like [`spawn_writer`], with the writer's direct lane: the handle that
/// lets a task forwarding a frame to this socket write it itself while
/// the writer is idle (see [`DirectWrite`]), instead of queueing it and
/// waking the writer. Registered with the bridge by
/// [`crate::bridge::Bridge::attach_direct`].
pub fn spawn_direct_writer<S>(
    sink: S,
    inbox: Inbox,
    media_rx: mpsc::Receiver<MediaOut>,
    shutdown: Arc<Shutdown>,
    write_timeout: Duration,
) -> (tokio::task::JoinHandle<()>, Arc<dyn DirectWrite>)
where
    S: futures_util::Sink<Message> + Unpin + Send + 'static,
{
    let lane = Arc::new(Lane {
        state: std::sync::Mutex::new(LaneState {
            sink: Some(sink),
            stalled: false,
            unfinished: None,
        }),
        wake: tokio::sync::Notify::new(),
    });
    let task = tokio::spawn(write_loop(
        lane.clone(),
        inbox,
        media_rx,
        shutdown,
        write_timeout,
    ));
    (task, lane)
}

/// A socket's sink, shared by its writer task and the tasks that forward
/// frames to it: the writer lends it to the lane whenever it has nothing
/// to write, and takes it back to write anything of its own.
struct Lane<S> {
    state: std::sync::Mutex<LaneState<S>>,
    /// Rung when a direct write left bytes the socket did not take: the
    /// writer finishes them under its deadline.
    wake: tokio::sync::Notify,
}

struct LaneState<S> {
    /// The sink, while the writer holds nothing to write (None while it
    /// writes, and after it ended).
    sink: Option<S>,
    /// A direct write did not complete: only the writer may write until
    /// it has finished it.
    stalled: bool,
    /// The read time of the frame that write carried, for the delay
    /// histogram once the writer has flushed it.
    unfinished: Option<(Instant, bool)>,
}

impl<S> std::fmt::Debug for Lane<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lane")
    }
}

impl<S> Lane<S> {
    fn lock(&self) -> std::sync::MutexGuard<'_, LaneState<S>> {
        // Every update leaves the state whole: a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Records a written media frame in the delay histograms.
fn written(since: Instant, from_mixer: bool) {
    FORWARD_DELAY.record(since);
    if from_mixer {
        MIXER_DELAY.record(since);
    }
}

impl<S> DirectWrite for Lane<S>
where
    S: futures_util::Sink<Message> + Unpin + Send + 'static,
{
    fn try_write(&self, frame: MediaOut, queue: &mpsc::Sender<MediaOut>) -> Result<(), MediaOut> {
        use std::task::{Context, Poll, Waker};
        let mut st = self.lock();
        // Frames queued before this one go first (the writer will take
        // them), and so does an unfinished write.
        if st.stalled || queue.capacity() != queue.max_capacity() {
            return Err(frame);
        }
        let Some(sink) = st.sink.as_mut() else {
            return Err(frame);
        };
        // Polled once, never waited on: whatever the socket cannot take
        // now is the writer's to finish (woken below), with its deadline.
        let mut cx = Context::from_waker(Waker::noop());
        let mut sink = std::pin::Pin::new(sink);
        if !matches!(sink.as_mut().poll_ready(&mut cx), Poll::Ready(Ok(()))) {
            st.stalled = true;
            drop(st);
            self.wake.notify_one();
            return Err(frame);
        }
        let MediaOut {
            bytes,
            since,
            from_mixer,
        } = frame;
        let done = sink
            .as_mut()
            .start_send(Message::Binary(bytes.into()))
            .is_ok()
            && matches!(sink.as_mut().poll_flush(&mut cx), Poll::Ready(Ok(())));
        if done {
            drop(st);
            written(since, from_mixer);
        } else {
            // In the socket's buffer (or the socket failed): the writer
            // flushes it, or finds the failure and ends.
            st.stalled = true;
            st.unfinished = Some((since, from_mixer));
            drop(st);
            self.wake.notify_one();
        }
        Ok(())
    }
}

async fn write_loop<S>(
    lane: Arc<Lane<S>>,
    mut inbox: Inbox,
    mut media_rx: mpsc::Receiver<MediaOut>,
    shutdown: Arc<Shutdown>,
    write_timeout: Duration,
) where
    S: futures_util::Sink<Message> + Unpin,
{
    let mut media_open = true;
    let mut batch: Vec<Message> = Vec::with_capacity(WRITE_BATCH);
    // When each media frame of the batch was read, for the
    // forwarding-delay histogram (recorded once the batch is written).
    let mut stamps: Vec<(Instant, bool)> = Vec::with_capacity(WRITE_BATCH);
    // One timer for the writer's life, reset only when a write blocks.
    let deadline = tokio::time::sleep(write_timeout);
    tokio::pin!(deadline);
    // Takes the sink from the lane: from now on every frame comes to
    // this task (through the queue) until the sink is given back.
    let take = |stamps: &mut Vec<(Instant, bool)>| {
        let mut st = lane.lock();
        st.stalled = false;
        if let Some(stamp) = st.unfinished.take() {
            stamps.push(stamp);
        }
        st.sink.take()
    };
    loop {
        // Idle: the sink is in the lane.
        let first = tokio::select! {
            biased;
            text = inbox.recv() => match text {
                Some(text) => Some(Message::Text(text.into())),
                None => break,
            },
            media = media_rx.recv(), if media_open => match media {
                Some(out) => {
                    stamps.push((out.since, out.from_mixer));
                    Some(Message::Binary(out.bytes.into()))
                }
                None => {
                    // The bridge let go of this socket (a newer one took over).
                    media_open = false;
                    continue;
                }
            },
            // A direct write left bytes to finish.
            () = lane.wake.notified() => None,
        };
        let Some(mut sink) = take(&mut stamps) else {
            return;
        };
        batch.extend(first);
        loop {
            // Everything already queued joins the batch: texts before the
            // media frames taken after them.
            while batch.len() < WRITE_BATCH {
                if let Some(text) = inbox.try_recv() {
                    batch.push(Message::Text(text.into()));
                    continue;
                }
                match media_rx.try_recv() {
                    Ok(out) if media_open => {
                        stamps.push((out.since, out.from_mixer));
                        batch.push(Message::Binary(out.bytes.into()));
                    }
                    _ => break,
                }
            }
            match write_batch(&mut sink, &mut batch, deadline.as_mut(), write_timeout).await {
                Wrote::All => {
                    for (since, from_mixer) in stamps.drain(..) {
                        written(since, from_mixer);
                    }
                }
                Wrote::Failed => return,
                Wrote::TooSlow => {
                    shutdown.close(CloseReason::SLOW_READER);
                    return;
                }
            }
            // Give the sink back, unless more came meanwhile: checked
            // under the lane's lock, which every direct write takes, so no
            // frame can be queued between this look and the hand-back
            // and then be passed by a direct write.
            let mut st = lane.lock();
            if let Some(text) = inbox.try_recv() {
                batch.push(Message::Text(text.into()));
                continue;
            }
            if media_open {
                if let Ok(out) = media_rx.try_recv() {
                    stamps.push((out.since, out.from_mixer));
                    batch.push(Message::Binary(out.bytes.into()));
                    continue;
                }
            }
            st.sink = Some(sink);
            break;
        }
    }
    let Some(mut sink) = take(&mut stamps) else {
        return;
    };
    if let Some(why) = shutdown.reason() {
        let close = Message::Close(Some(CloseFrame {
            code: why.code,
            reason: why.reason.into(),
        }));
        batch.push(close);
        if write_batch(&mut sink, &mut batch, deadline.as_mut(), write_timeout).await != Wrote::All
        {
            return;
        }
    }
    let _ = tokio::time::timeout(write_timeout, sink.close()).await;
}

/// Writes `batch` (emptying it) with one flush. Polled once first: when
/// the socket takes it all at once no timer is armed; otherwise
/// `deadline` is reset to `write_timeout` from now and the write must end
/// before it.
async fn write_batch<S>(
    sink: &mut S,
    batch: &mut Vec<Message>,
    mut deadline: std::pin::Pin<&mut tokio::time::Sleep>,
    write_timeout: Duration,
) -> Wrote
where
    S: futures_util::Sink<Message> + Unpin,
{
    use std::future::Future;
    use std::task::Poll;
    let io = async {
        for msg in batch.drain(..) {
            sink.feed(msg).await.map_err(|_| ())?;
        }
        sink.flush().await.map_err(|_| ())
    };
    tokio::pin!(io);
    let at_once = std::future::poll_fn(|cx| match io.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(Some(r)),
        Poll::Pending => Poll::Ready(None),
    })
    .await;
    let done = match at_once {
        Some(r) => r,
        None => {
            deadline
                .as_mut()
                .reset(tokio::time::Instant::now() + write_timeout);
            tokio::select! {
                biased;
                r = &mut io => r,
                () = &mut deadline => return Wrote::TooSlow,
            }
        }
    };
    match done {
        Ok(()) => Wrote::All,
        Err(()) => Wrote::Failed,
    }
}

/// Whether a text frame is a `hello` announcing `media_legs` (read before
/// the frame is handled, since the bridge learns it with the socket).
fn announces_media_legs(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Caps {
        #[serde(default)]
        capabilities: Vec<String>,
    }
    serde_json::from_str::<Caps>(text).is_ok_and(|c| {
        c.capabilities
            .iter()
            .any(|c| c == protocol::wire::CAP_MEDIA_LEGS)
    })
}

/// The codecs besides Opus a text frame that is a `hello` announces
/// (read with `media_legs`, for the same reason).
fn announced_codecs(text: &str) -> Vec<protocol::media::Codec> {
    #[derive(serde::Deserialize)]
    struct Codecs {
        #[serde(default)]
        codecs: Vec<String>,
    }
    serde_json::from_str::<Codecs>(text)
        .map(|c| protocol::wire::choose_codecs(&c.codecs))
        .unwrap_or_default()
}

/// Waits for a socket's writer to finish, within its deadline; a writer
/// stuck on a client that does not read is stopped.
pub async fn finish_writer(writer: &mut tokio::task::JoinHandle<()>, write_timeout: Duration) {
    // The writer may need one deadline for the last queued frame and one
    // for the close frame.
    if tokio::time::timeout(write_timeout * 2 + Duration::from_millis(100), &mut *writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

/// After the backend closes a socket, how long it keeps reading (and
/// discarding) what the client still sends. Closing a TCP socket with
/// unread input resets the connection, and a reset makes the client's
/// kernel drop what it had received but not yet read: the last errors and
/// the close frame would be lost. Reading until the client answers the
/// close (or this passes, or [`LINGER_MESSAGES`] arrive) avoids that.
const LINGER: Duration = Duration::from_secs(1);
/// At most this many messages are read while lingering.
const LINGER_MESSAGES: usize = 1_000;

/// Whether a close for `reason` lingers: not for an oversized frame
/// (reading on would buffer it) nor for a client that does not read.
pub(crate) fn lingers(reason: Option<CloseReason>) -> bool {
    reason.is_some_and(|r| r != CloseReason::TOO_BIG && r != CloseReason::SLOW_READER)
}

/// Reads and discards until the client closes, for at most [`LINGER`].
pub(crate) async fn linger(stream: &mut futures_util::stream::SplitStream<WebSocket>) {
    let deadline = tokio::time::Instant::now() + LINGER;
    for _ in 0..LINGER_MESSAGES {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => return,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// What ended one wait of [`serve_socket`]'s inner read loop.
enum Read {
    /// The socket is to close (asked to, the writer ended, the backend
    /// is stopping, or a media frame's handling closed it).
    Stop,
    /// The login needs acting on.
    Grant(GrantEvent),
    /// Nothing arrived in time (no `hello`, or an idle session).
    TimedOut,
    /// A message other than media (text or control), and whether it is
    /// over the rate limit.
    Other(Message, bool),
}

/// Runs one socket until it closes. `ticket` holds its place among the
/// backend's sockets (see [`crate::limits::Sockets`]).
///
/// Media frames are the hot path (50 a second per leg), so the waits the
/// loop selects on live across frames instead of being made anew for
/// each: the close request, the backend's stop, one deadline timer for
/// `hello` and then idleness (moved on lazily, only when it fires), and
/// the login's next event, which only a text frame can change.
pub async fn serve_socket(socket: WebSocket, state: AppState, mut ticket: SocketTicket) {
    let limits = state.cfg.limits.clone();
    let hello_timeout = Duration::from_millis(limits.hello_timeout_ms);
    let (mut stream, tx, shutdown, mut writer, direct, media_tx) = start_socket(socket, &limits);
    let mut writer_done = false;
    let mut media_tx = Some(media_tx);
    let mut media_slot: Option<Arc<SocketSlot>> = None;
    let mut media_control: Option<u64> = None;
    // Whether the hello announced `media_legs` (the client mixes legs).
    let mut mixes_legs = false;
    let mut codecs = Vec::new();
    let mut flood = FloodGuard::new(&limits, Instant::now());
    let mut pre_hello = PreHelloErrors::new(&limits);

    let mut session: Option<(String, u64)> = None;
    let mut grant: Option<Grant> = None;
    let opened = tokio::time::Instant::now();
    // A graceful stop waits for this socket to send what it has queued.
    let _busy = state.shutdown.busy();
    let stop = state.shutdown.triggered();
    tokio::pin!(stop);
    let requested = shutdown.requested();
    tokio::pin!(requested);
    // The hello deadline, then the idle deadline: re-armed only when it
    // fires early (the socket read something since it was set).
    let idle = tokio::time::sleep_until(opened + hello_timeout);
    tokio::pin!(idle);
    let mut last_read = opened;
    loop {
        let read = {
            // The login's next event, awaited across media frames; a
            // text frame (a `hello` or `refresh_token` changes the
            // login) ends this wait and the next round makes a new one.
            let grant_event = next_grant_event(&mut grant, &state);
            tokio::pin!(grant_event);
            loop {
                let next = tokio::select! {
                    biased;
                    () = &mut requested => break Read::Stop,
                    _ = &mut writer => {
                        writer_done = true;
                        break Read::Stop;
                    }
                    event = &mut grant_event => break Read::Grant(event),
                    // The backend is stopping: the center has already sent this
                    // agent what happened to its contacts; flush and close.
                    () = &mut stop => break Read::Stop,
                    () = &mut idle => {
                        let limit = if session.is_some() {
                            last_read + IDLE_TIMEOUT
                        } else {
                            opened + hello_timeout
                        };
                        if tokio::time::Instant::now() < limit {
                            idle.as_mut().reset(limit);
                            continue;
                        }
                        break Read::TimedOut;
                    }
                    next = stream.next() => next,
                };
                let now = Instant::now();
                last_read = tokio::time::Instant::from_std(now);
                let (bytes, limited) =
                    match read_one(next, &mut flood, now, &tx, &shutdown, flooded) {
                        Inbound::End => break Read::Stop,
                        Inbound::Message {
                            msg: Message::Binary(bytes),
                            limited,
                        } => (bytes, limited),
                        Inbound::Message { msg, limited } => break Read::Other(msg, limited),
                    };
                let errored = on_binary(
                    &bytes,
                    &state,
                    &tx,
                    &session,
                    media_slot.as_deref(),
                    limited,
                    now,
                );
                if errored && session.is_none() && pre_hello.strike(&shutdown) {
                    break Read::Stop;
                }
            }
        };
        let (msg, limited) = match read {
            Read::Stop => break,
            Read::Grant(event) => {
                if on_grant_event(event, &tx) {
                    continue;
                }
                break;
            }
            Read::TimedOut => {
                tracing::debug!(authenticated = session.is_some(), "socket timed out");
                if session.is_none() {
                    shutdown.set_reason(CloseReason::HELLO_TIMEOUT);
                }
                break;
            }
            // Media frames were handled in the read loop: this is text or
            // a control frame.
            Read::Other(msg, limited) => (msg, limited),
        };
        let was_authenticated = session.is_some();
        let errored = match msg {
            Message::Text(text) => {
                if session.is_none() {
                    mixes_legs = announces_media_legs(text.as_str());
                    codecs = announced_codecs(text.as_str());
                }
                on_text(
                    text.as_str(),
                    &state,
                    &tx,
                    &mut session,
                    &mut grant,
                    limited,
                )
            }
            // Control frames: tungstenite answers pings itself.
            _ => false,
        };
        if let (false, Some((agent, _))) = (was_authenticated, &session) {
            ticket.authenticated(agent, shutdown.clone());
            // The bridge learns where this agent's audio goes.
            if let (Some(bridge), Some(media)) = (&state.bridge, media_tx.take()) {
                // Where a media socket gives the agent's media back to.
                media_control = Some(
                    state
                        .media_sockets
                        .control_attached(agent, &media, mixes_legs, &codecs),
                );
                media_slot = Some(bridge.attach_direct(agent, media, mixes_legs, direct.clone()));
                if let Some(slot) = &media_slot {
                    slot.set_codecs(&codecs);
                }
            }
            // From now on the deadline is idleness, not the hello.
            idle.as_mut().reset(last_read + IDLE_TIMEOUT);
        }
        if errored && session.is_none() && pre_hello.strike(&shutdown) {
            break;
        }
    }
    if let (Some((agent, _)), Some(control)) = (&session, media_control) {
        state.media_sockets.control_detached(agent, control);
    }
    if let Some((agent, id)) = session {
        if let Ok(mut center) = state.center.lock() {
            center.detach(&agent, id);
        }
    }
    drop(grant);
    drop(tx);
    wind_down(ticket, &shutdown, writer, writer_done, &mut stream, &limits).await;
}

/// The start of every socket (an agent's, a customer's, a media socket):
/// what the client sends; the bounded outbox for text to it, whose
/// shutdown carries the close reason; the writer task with its direct lane
/// (see [`DirectWrite`]); and the sender of media to it, for the bridge,
/// bounded so a backed-up socket drops stale frames at the bridge instead
/// of queueing delay. All under the configured `[limits]`, so the three
/// drivers differ only in what they read; [`wind_down`] is their end.
/// (Each part has its own type, so a mixed-up order does not compile:
/// a tuple lets each driver bind them in one line.)
#[allow(clippy::type_complexity)]
pub(crate) fn start_socket(
    socket: WebSocket,
    limits: &crate::config::Limits,
) -> (
    futures_util::stream::SplitStream<WebSocket>,
    Outbox,
    Arc<Shutdown>,
    tokio::task::JoinHandle<()>,
    Arc<dyn DirectWrite>,
    mpsc::Sender<MediaOut>,
) {
    let (sink, stream) = socket.split();
    let (tx, inbox) = Outbox::for_socket(limits);
    let shutdown = tx.shutdown().clone();
    let (media_tx, media_rx) = mpsc::channel::<MediaOut>(crate::bridge::AGENT_QUEUE);
    let write_timeout = Duration::from_millis(limits.write_timeout_ms);
    let (writer, direct) =
        spawn_direct_writer(sink, inbox, media_rx, shutdown.clone(), write_timeout);
    (stream, tx, shutdown, writer, direct, media_tx)
}

/// The end of every socket, once its driver has dropped its outbox: an
/// address that abused it is penalised, and the writer gets its deadlines
/// to send what is queued and the close frame, while the socket lingers
/// (reads and discards) when the close reason calls for it.
pub(crate) async fn wind_down(
    ticket: SocketTicket,
    shutdown: &Shutdown,
    mut writer: tokio::task::JoinHandle<()>,
    writer_done: bool,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    limits: &crate::config::Limits,
) {
    let write_timeout = Duration::from_millis(limits.write_timeout_ms);
    if shutdown.reason().is_some_and(CloseReason::is_abuse) {
        ticket.penalize();
    }
    if !writer_done {
        if lingers(shutdown.reason()) {
            tokio::join!(finish_writer(&mut writer, write_timeout), linger(stream));
        } else {
            finish_writer(&mut writer, write_timeout).await;
        }
    }
    drop(ticket);
}

/// The next thing the socket's login needs (never, before `hello`).
async fn next_grant_event(grant: &mut Option<Grant>, state: &AppState) -> GrantEvent {
    match grant {
        Some(g) => g.next(|| state.now()).await,
        None => std::future::pending().await,
    }
}

/// Tells the client; returns whether the socket stays open.
fn on_grant_event(event: GrantEvent, tx: &Outbox) -> bool {
    match event {
        GrantEvent::Expiring(expires_at) => {
            send(tx, ServerFrame::TokenExpiring(TokenExpiring { expires_at }));
            true
        }
        GrantEvent::Expired => {
            tracing::debug!("socket closed: token expired");
            send(
                tx,
                frame_error(
                    ErrorCode::SessionExpired,
                    "your login expired; log in again",
                ),
            );
            false
        }
        GrantEvent::Revoked => {
            tracing::debug!("socket closed: token revoked");
            send(
                tx,
                frame_error(ErrorCode::TokenRevoked, "you logged out; log in again"),
            );
            false
        }
    }
}

/// `refresh_token`: a new token in this socket's login; the socket now
/// lives until the new token expires.
fn refresh(
    state: &AppState,
    agent: &str,
    grant: &mut Option<Grant>,
) -> Result<OpResult, ErrorBody> {
    let now = state.now();
    let Some(g) = grant.as_mut().filter(|g| g.valid(now)) else {
        return Err(ErrorBody::new(
            ErrorCode::SessionExpired,
            "your login expired; log in again",
        ));
    };
    let center = state
        .center
        .lock()
        .map_err(|_| ErrorBody::new(ErrorCode::Internal, "backend unavailable"))?;
    let login = crate::auth::refresh(&center, agent, g.family(), now).map_err(|e| e.body())?;
    drop(center);
    g.extend(login.expires_at);
    Ok(OpResult::Token {
        token: login.token,
        expires_at: login.expires_at,
    })
}

/// Handles a binary (media) frame; true when it was answered with an error.
///
/// A frame on a leg the bridge routes goes straight on (forwarded in this
/// task, copied to the mixer), without the contact center's lock. Only a
/// frame on a leg that has no route asks the center whether the leg is
/// live at all (a leg still connecting, or one that just ended and whose
/// client has not heard yet: dropped quietly; any other: `no_media_leg`).
pub(crate) fn on_binary(
    bytes: &[u8],
    state: &AppState,
    tx: &Outbox,
    session: &Option<(String, u64)>,
    slot: Option<&SocketSlot>,
    limited: bool,
    read_at: Instant,
) -> bool {
    let reply = match decode_media_frame(bytes) {
        _ if limited => frame_error(ErrorCode::RateLimited, RATE_LIMITED),
        Err(e) => ServerFrame::Error(FrameError {
            id: None,
            error: e,
            supported_versions: None,
        }),
        Ok(_) if session.is_none() => frame_error(ErrorCode::NotAuthenticated, "send hello first"),
        Ok(frame) => {
            let leg = frame.header.leg;
            let agent = session
                .as_ref()
                .map(|(a, _)| a.as_str())
                .unwrap_or_default();
            if let (Some(bridge), Some(route)) =
                (&state.bridge, slot.and_then(|s| s.route_shared(leg)))
            {
                bridge.on_frame(agent, &route, bytes, read_at);
                return false;
            }
            let (live, ended) = state.center.lock().map_or((false, false), |c| {
                (
                    c.media_leg_active(agent, leg),
                    c.media_leg_ended(agent, leg),
                )
            });
            match (&state.bridge, live) {
                (Some(_), true) => return false,
                // Sent before the client heard its leg end (leaving a
                // conference): the frames crossed the end, nothing is wrong.
                _ if ended => return false,
                _ => frame_error(
                    ErrorCode::NoMediaLeg,
                    format!("no media leg {leg} on this session"),
                ),
            }
        }
    };
    send(tx, reply);
    true
}

/// Handles a text frame; true when it was answered with an error.
fn on_text(
    text: &str,
    state: &AppState,
    tx: &Outbox,
    session: &mut Option<(String, u64)>,
    grant: &mut Option<Grant>,
    limited: bool,
) -> bool {
    let frame = match decode_client_frame(text) {
        Ok(f) => f,
        Err(mut e) => {
            if limited {
                e.body = ErrorBody::new(ErrorCode::RateLimited, RATE_LIMITED);
            }
            send(tx, e.to_frame());
            return true;
        }
    };
    if limited {
        let body = ErrorBody::new(ErrorCode::RateLimited, RATE_LIMITED);
        let reply = match frame {
            ClientFrame::Request(req) => ServerFrame::Response(Response::err(req.id, body)),
            ClientFrame::Hello(_) => ServerFrame::Error(FrameError {
                id: None,
                error: body,
                supported_versions: None,
            }),
        };
        send(tx, reply);
        return true;
    }
    match frame {
        ClientFrame::Hello(hello) => on_hello(hello, state, tx, session, grant),
        ClientFrame::Request(req) => {
            let Some((agent, _)) = session.as_ref() else {
                let body = ErrorBody::new(
                    ErrorCode::NotAuthenticated,
                    "send hello with your token first",
                );
                send(tx, ServerFrame::Response(Response::err(req.id, body)));
                return true;
            };
            if req.op == Op::MediaSocket {
                // A ticket for a media-only socket (crate::media_socket).
                let issued = state
                    .media_sockets
                    .issue(agent, state.now(), Instant::now());
                let failed = issued.is_err();
                let response = match issued {
                    Ok(result) => Response::ok(req.id, result),
                    Err(e) => Response::err(req.id, e.body()),
                };
                send(tx, ServerFrame::Response(response));
                return failed;
            }
            if req.op == Op::RefreshToken {
                let (response, failed) = match refresh(state, agent, grant) {
                    Ok(result) => (Response::ok(req.id, result), false),
                    Err(e) => (Response::err(req.id, e), true),
                };
                send(tx, ServerFrame::Response(response));
                return failed;
            }
            let now = state.now();
            let Ok(mut center) = state.center.lock() else {
                send(
                    tx,
                    ServerFrame::Response(Response::err(
                        req.id,
                        ErrorBody::new(ErrorCode::Internal, "backend unavailable"),
                    )),
                );
                return true;
            };
            let result = center.handle(agent, req.op, now);
            // The op's events are queued; the response is encoded and
            // queued after them without holding every other agent up.
            drop(center);
            let (response, failed) = match result {
                Ok(result) => (Response::ok(req.id, result), false),
                // The one place a domain error becomes a wire error.
                Err(e) => (Response::err(req.id, e.body()), true),
            };
            send(tx, ServerFrame::Response(response));
            failed
        }
    }
}

/// Handles `hello`; true when it was answered with an error.
fn on_hello(
    hello: Hello,
    state: &AppState,
    tx: &Outbox,
    session: &mut Option<(String, u64)>,
    grant: &mut Option<Grant>,
) -> bool {
    if session.is_some() {
        send(
            tx,
            frame_error(
                ErrorCode::AlreadyAuthenticated,
                "this socket already said hello",
            ),
        );
        return true;
    }
    if !hello
        .versions
        .iter()
        .any(|v| SUPPORTED_VERSIONS.contains(v))
    {
        send(
            tx,
            ServerFrame::Error(FrameError {
                id: None,
                error: ErrorBody::new(
                    ErrorCode::UnsupportedVersion,
                    "none of the offered protocol versions is supported",
                ),
                supported_versions: Some(SUPPORTED_VERSIONS.to_vec()),
            }),
        );
        return true;
    }
    let now = state.now();
    let Ok(mut center) = state.center.lock() else {
        return true;
    };
    let Some(token) = authenticate(&center, &hello.token, now) else {
        send(
            tx,
            frame_error(
                ErrorCode::AuthFailed,
                "the token is unknown or expired; log in again",
            ),
        );
        return true;
    };
    // The first frames go into the channel while the lock is held, so no
    // event can slip in ahead of the welcome and snapshot.
    if let Some((id, mut frames)) = center.attach(&token.agent, hello.resume.as_ref(), tx.clone()) {
        // The bridge forwards, records and mixes 10 and 20 ms packets
        // alike, so the client's first choice is granted.
        if let Some(ServerFrame::Welcome(w)) = frames.first_mut() {
            w.packet_ms = protocol::wire::choose_packet_ms(&hello.packet_ms);
            // G.711 from a trunk is forwarded untouched to a client that
            // plays it (section 8, the codec byte).
            w.codecs = protocol::wire::choose_codecs(&hello.codecs)
                .iter()
                .map(|c| c.name().to_owned())
                .collect();
        }
        for f in frames {
            send(tx, f);
        }
        *session = Some((token.agent, id));
        *grant = Some(state.auth.live.track(
            &token.family,
            token.expires_at,
            state.cfg.token_warning_s.saturating_mul(1000),
        ));
    }
    false
}

#[cfg(test)]
mod writer_tests {
    //! The socket writer against a sink that records what it was given
    //! (RFC 6455 frames are the sink's business; what matters here is the
    //! order, the batching and the deadline).

    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::task::{Context, Poll};

    use super::*;

    /// What the fake socket saw.
    #[derive(Default)]
    struct Seen {
        /// Every message, in the order the writer gave them.
        sent: Mutex<Vec<Message>>,
        /// Completed flushes (one write syscall each on a real socket).
        flushes: AtomicUsize,
    }

    /// A socket that takes everything, or (`stuck`) a client that never
    /// reads: it never becomes ready to take or flush.
    struct FakeSocket {
        seen: Arc<Seen>,
        stuck: bool,
    }

    impl futures_util::Sink<Message> for FakeSocket {
        type Error = std::io::Error;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            if self.stuck {
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        }

        fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
            self.seen.sent.lock().expect("lock").push(item);
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            if self.stuck {
                return Poll::Pending;
            }
            self.seen.flushes.fetch_add(1, Ordering::SeqCst);
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    fn media(n: u8) -> MediaOut {
        MediaOut {
            bytes: vec![n; 20],
            since: Instant::now(),
            from_mixer: false,
        }
    }

    fn texts_and_bytes(seen: &Seen) -> Vec<String> {
        seen.sent
            .lock()
            .expect("lock")
            .iter()
            .map(|m| match m {
                Message::Text(t) => format!("text {}", t.as_str()),
                Message::Binary(b) => format!("media {}", b[0]),
                Message::Close(c) => format!("close {:?}", c.as_ref().map(|c| c.code)),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn fake_socket(stuck: bool) -> (FakeSocket, Arc<Seen>) {
        let seen = Arc::new(Seen::default());
        let socket = FakeSocket {
            seen: seen.clone(),
            stuck,
        };
        (socket, seen)
    }

    /// Waits (bounded) for the writer task to end, as it must by then.
    async fn writer_ends(writer: tokio::task::JoinHandle<()>, why: &str) {
        tokio::time::timeout(Duration::from_secs(10), writer)
            .await
            .expect(why)
            .expect("the writer does not panic");
    }

    #[tokio::test]
    async fn frames_queued_before_the_writer_wakes_go_out_in_order_in_one_flush() {
        let (tx, inbox) = Outbox::new(16, 1 << 20);
        let (media_tx, media_rx) = mpsc::channel(16);
        // Media queued first, texts after: the texts still go first
        // (text before media when both are waiting), each kind in order.
        for n in 1..=3 {
            media_tx.try_send(media(n)).expect("room");
        }
        for t in ["a", "b"] {
            assert!(tx.push(t.to_string()));
        }
        let (socket, seen) = fake_socket(false);
        let before = FORWARD_DELAY.summary().count;
        let writer = spawn_writer(
            socket,
            inbox,
            media_rx,
            tx.shutdown().clone(),
            Duration::from_secs(1),
        );
        drop(tx);
        writer_ends(writer, "the writer ends once its outbox is dropped").await;
        assert_eq!(
            texts_and_bytes(&seen),
            ["text a", "text b", "media 1", "media 2", "media 3"]
        );
        assert_eq!(
            seen.flushes.load(Ordering::SeqCst),
            1,
            "one write for the batch"
        );
        // Every media frame written is in the forwarding-delay histogram
        // (shared with other tests: at least these three).
        assert!(FORWARD_DELAY.summary().count >= before + 3);
    }

    #[tokio::test]
    async fn a_long_backlog_goes_out_whole_and_in_order_a_batch_per_write() {
        let frames = WRITE_BATCH + 8;
        let (tx, inbox) = Outbox::new(4, 1 << 20);
        let (media_tx, media_rx) = mpsc::channel(frames);
        for n in 0..frames {
            media_tx.try_send(media(n as u8)).expect("room");
        }
        let (socket, seen) = fake_socket(false);
        let shutdown = tx.shutdown().clone();
        let writer = spawn_writer(socket, inbox, media_rx, shutdown, Duration::from_secs(1));
        // Wait for the state (every frame written), then end the writer.
        for _ in 0..500 {
            if seen.sent.lock().expect("lock").len() == frames {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(tx);
        writer_ends(writer, "writer ends").await;
        let want: Vec<String> = (0..frames).map(|n| format!("media {n}")).collect();
        assert_eq!(texts_and_bytes(&seen), want);
        assert_eq!(
            seen.flushes.load(Ordering::SeqCst),
            frames.div_ceil(WRITE_BATCH),
            "one write per batch of at most WRITE_BATCH frames"
        );
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_disconnected_at_the_write_deadline() {
        let deadline = Duration::from_millis(200);
        let (tx, inbox) = Outbox::new(16, 1 << 20);
        let (_media_tx, media_rx) = mpsc::channel(4);
        let (socket, _seen) = fake_socket(true);
        let shutdown = tx.shutdown().clone();
        let started = tokio::time::Instant::now();
        let writer = spawn_writer(socket, inbox, media_rx, shutdown.clone(), deadline);
        assert!(tx.push("event".to_string()));
        writer_ends(writer, "the writer gives up on a client that does not read").await;
        let waited = started.elapsed();
        assert!(
            waited >= deadline,
            "gave up after {waited:?}, before the deadline {deadline:?}"
        );
        assert_eq!(shutdown.reason(), Some(CloseReason::SLOW_READER));
        // The outbox is still held: the writer ended on the deadline, not
        // because its queue closed.
        drop(tx);
    }

    #[tokio::test]
    async fn a_write_that_completes_arms_no_deadline_and_the_close_frame_follows() {
        let (tx, inbox) = Outbox::new(16, 1 << 20);
        let (_media_tx, media_rx) = mpsc::channel(4);
        let (socket, seen) = fake_socket(false);
        let shutdown = tx.shutdown().clone();
        let writer = spawn_writer(
            socket,
            inbox,
            media_rx,
            shutdown.clone(),
            Duration::from_millis(100),
        );
        assert!(tx.push("one".to_string()));
        // Well past the deadline, the socket is still open: a write that
        // completed left no timer behind to close it.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(shutdown.reason(), None);
        assert!(tx.push("two".to_string()));
        shutdown.set_reason(CloseReason::FLOOD);
        drop(tx);
        writer_ends(writer, "writer ends").await;
        assert_eq!(
            texts_and_bytes(&seen),
            [
                "text one".to_string(),
                "text two".to_string(),
                format!("close {:?}", Some(CloseReason::FLOOD.code)),
            ]
        );
    }

    /// A socket whose kernel buffer is open or full at the test's say:
    /// frames are always taken into the socket's own buffer (as
    /// tungstenite does), and reach the client only on a flush while the
    /// valve is open.
    struct Valve {
        seen: Arc<Seen>,
        open: Arc<std::sync::atomic::AtomicBool>,
        buffered: Vec<Message>,
    }

    impl futures_util::Sink<Message> for Valve {
        type Error = std::io::Error;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
            self.buffered.push(item);
            Ok(())
        }

        fn poll_flush(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            if !self.open.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
            let out: Vec<Message> = self.buffered.drain(..).collect();
            self.seen.sent.lock().expect("lock").extend(out);
            self.seen.flushes.fetch_add(1, Ordering::SeqCst);
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    fn valve(open: bool) -> (Valve, Arc<Seen>, Arc<std::sync::atomic::AtomicBool>) {
        let seen = Arc::new(Seen::default());
        let open = Arc::new(std::sync::atomic::AtomicBool::new(open));
        let v = Valve {
            seen: seen.clone(),
            open: open.clone(),
            buffered: Vec::new(),
        };
        (v, seen, open)
    }

    /// A writer with its direct lane over a [`Valve`] socket, and a media
    /// queue of 4 frames.
    struct DirectLane {
        tx: Outbox,
        media_tx: mpsc::Sender<MediaOut>,
        seen: Arc<Seen>,
        open: Arc<std::sync::atomic::AtomicBool>,
        writer: tokio::task::JoinHandle<()>,
        direct: Arc<dyn DirectWrite>,
    }

    const LANE_QUEUE: usize = 4;

    fn direct_lane(open: bool, write_timeout: Duration) -> DirectLane {
        let (tx, inbox) = Outbox::new(16, 1 << 20);
        let (media_tx, media_rx) = mpsc::channel(LANE_QUEUE);
        let (socket, seen, open) = valve(open);
        let (writer, direct) = spawn_direct_writer(
            socket,
            inbox,
            media_rx,
            tx.shutdown().clone(),
            write_timeout,
        );
        DirectLane {
            tx,
            media_tx,
            seen,
            open,
            writer,
            direct,
        }
    }

    /// The end of the lane's ordering tests: frames 1 and 2 (one handed to
    /// the writer, one queued) reach the client, then the writer lends the
    /// socket again and frame 3 goes directly, after them.
    async fn frames_1_2_written_then_the_socket_lent_for_3(
        seen: &Seen,
        direct: &dyn DirectWrite,
        media_tx: &mpsc::Sender<MediaOut>,
    ) {
        until("both are written", || {
            seen.sent.lock().expect("lock").len() == 2
        })
        .await;
        until("the socket is lent again", || {
            direct.try_write(media(3), media_tx).is_ok()
        })
        .await;
        assert_eq!(texts_and_bytes(seen), ["media 1", "media 2", "media 3"]);
    }

    /// Lets the writer task run until `done` holds (bounded).
    async fn until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..1_000 {
            if done() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("never: {what}");
    }

    #[tokio::test]
    async fn an_idle_writer_lends_its_socket_to_the_forwarding_task() {
        let lane = direct_lane(true, Duration::from_secs(1));
        // Written by the caller itself, before it returns: no queue, no
        // writer task in between (this runtime has one thread and the
        // writer has not run yet).
        for n in 1..=3 {
            lane.direct
                .try_write(media(n), &lane.media_tx)
                .expect("written at once");
            assert_eq!(lane.seen.sent.lock().expect("lock").len(), usize::from(n));
        }
        assert_eq!(
            lane.seen.flushes.load(Ordering::SeqCst),
            3,
            "one write each"
        );
        // Text still goes through the writer, and the socket comes back to
        // the lane afterwards.
        assert!(lane.tx.push("event".to_string()));
        until("the text is written", || {
            lane.seen.sent.lock().expect("lock").len() == 4
        })
        .await;
        until("the socket is lent again", || {
            lane.direct.try_write(media(4), &lane.media_tx).is_ok()
        })
        .await;
        assert_eq!(
            texts_and_bytes(&lane.seen),
            ["media 1", "media 2", "media 3", "text event", "media 4"]
        );
        drop(lane.tx);
        writer_ends(lane.writer, "the writer ends once its outbox is dropped").await;
    }

    #[tokio::test]
    async fn a_forwarded_frame_never_passes_one_queued_before_it() {
        let lane = direct_lane(true, Duration::from_secs(1));
        // A frame the mixer queued and the writer has not taken yet.
        lane.media_tx.try_send(media(1)).expect("room");
        let back = lane
            .direct
            .try_write(media(2), &lane.media_tx)
            .expect_err("a frame is queued ahead: given back");
        lane.media_tx.try_send(back).expect("room");
        frames_1_2_written_then_the_socket_lent_for_3(&lane.seen, &*lane.direct, &lane.media_tx)
            .await;
        drop(lane.tx);
        writer_ends(lane.writer, "writer ends").await;
    }

    #[tokio::test]
    async fn a_listener_that_stops_reading_gets_a_bounded_queue_then_the_deadline() {
        let lane = direct_lane(false, Duration::from_millis(200));
        let shutdown = lane.tx.shutdown().clone();
        // The first frame goes into the socket's buffer, which the kernel
        // does not take: the write is left to the writer.
        lane.direct
            .try_write(media(0), &lane.media_tx)
            .expect("taken into the socket's buffer");
        // From then on every frame is given back; the queue takes a few
        // and refuses the rest (dropped, as the bridge counts them).
        let mut queued = 0;
        for n in 1..=40 {
            let back = lane
                .direct
                .try_write(media(n), &lane.media_tx)
                .expect_err("the writer has a write to finish");
            if lane.media_tx.try_send(back).is_ok() {
                queued += 1;
            }
        }
        assert_eq!(queued, LANE_QUEUE, "the queue stays bounded");
        writer_ends(
            lane.writer,
            "the writer gives up on a client that does not read",
        )
        .await;
        assert_eq!(shutdown.reason(), Some(CloseReason::SLOW_READER));
        assert!(
            lane.seen.sent.lock().expect("lock").is_empty(),
            "nothing reached the client"
        );
        let late = lane
            .direct
            .try_write(media(99), &lane.media_tx)
            .expect_err("the socket is gone with its writer");
        assert_eq!(late.bytes[0], 99);
        drop(lane.tx);
    }

    #[tokio::test]
    async fn a_direct_write_the_socket_could_not_take_is_finished_by_the_writer_in_order() {
        let lane = direct_lane(false, Duration::from_secs(5));
        lane.direct
            .try_write(media(1), &lane.media_tx)
            .expect("buffered");
        let back = lane
            .direct
            .try_write(media(2), &lane.media_tx)
            .expect_err("stalled");
        lane.media_tx.try_send(back).expect("room");
        // The client reads again: the writer finishes the first frame,
        // then sends the queued one, then lends the socket again.
        lane.open.store(true, Ordering::SeqCst);
        frames_1_2_written_then_the_socket_lent_for_3(&lane.seen, &*lane.direct, &lane.media_tx)
            .await;
        drop(lane.tx);
        writer_ends(lane.writer, "writer ends").await;
    }
}

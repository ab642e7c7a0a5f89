// The engine's network path off the page's main thread: a dedicated
// Worker that owns the media-only WebSocket (docs/protocol.md section 8,
// "Media socket") and talks to the engine's AudioWorklet over a
// MessagePort, so media frames go worklet <-> worker <-> socket and a busy
// page (a long task, layout, garbage collection) delays none of them.
//
//   worker.postMessage({ url, ticket, port, send }, [port, send]);
//
// `send` (optional): the port of the engine's send half when it runs in a
// Worker of its own (send-worker.js): its packets are sent like the
// worklet's, and it is told `open` and `closed` too.
//
// The worker opens `url`, sends the ticket as `media_hello` and, once the
// backend answers `media_welcome`, tells the worklet ({ type: 'open' }):
// from then on the worklet posts each packet (an ArrayBuffer) here and the
// worker sends it, dropping it when the socket has backed up (a WebSocket
// retransmits, so a queue would only add delay); every frame the socket
// receives goes to the worklet as an ArrayBuffer, transferred. When the
// socket closes, for whatever reason, the worklet is told
// ({ type: 'closed' }) and goes back to the page's path; so is the page.

// Bytes the socket may hold unsent before a packet is dropped (as the
// SDK's main-thread path: about one packet).
const MAX_BUFFERED = 1200;

let started = false;

onmessage = (e) => {
  const { url, ticket, port, send } = e.data || {};
  if (e.data && e.data.type === 'stop') {
    close();
    return;
  }
  if (started || !url || !ticket || !port) return;
  started = true;
  let open = false;
  let dropped = 0;
  let ended = false;
  const end = (code, reason) => {
    if (ended) return;
    ended = true;
    open = false;
    port.postMessage({ type: 'closed' });
    if (send) send.postMessage({ type: 'closed' });
    postMessage({ type: 'closed', code, reason, dropped });
  };
  let ws;
  try {
    ws = new WebSocket(url);
  } catch (err) {
    end(0, String(err));
    return;
  }
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => ws.send(JSON.stringify({ type: 'media_hello', ticket }));
  ws.onmessage = (m) => {
    if (typeof m.data !== 'string') {
      port.postMessage(m.data, [m.data]);
      return;
    }
    let msg;
    try { msg = JSON.parse(m.data); } catch { return; }
    if (msg.type === 'media_welcome' && !open) {
      open = true;
      port.postMessage({ type: 'open' });
      if (send) send.postMessage({ type: 'open' });
      postMessage({ type: 'open' });
    } else if (msg.type === 'error') {
      postMessage({ type: 'error', code: msg.code, message: msg.message });
    }
  };
  ws.onclose = (ev) => end(ev.code, ev.reason);
  ws.onerror = () => {};
  const out = (m) => {
    if (!(m.data instanceof ArrayBuffer)) return;
    if (open && ws.readyState === WebSocket.OPEN && ws.bufferedAmount <= MAX_BUFFERED) ws.send(m.data);
    else dropped += 1;
  };
  port.onmessage = out;
  if (send) send.onmessage = out;
};

// Starts the CCP. Trunk's default loader is an inline script, which the
// CCP's Content-Security-Policy (script-src 'self') refuses, so Trunk.toml's
// `pattern_script` emits <script src="boot.js"> with the hashed names of
// the wasm-bindgen loader and the wasm as data attributes, and this file
// does what the inline loader did. Both URLs must be on this origin. The
// loader is already in the module map (a script tag before this one), so
// importing it here fetches nothing.
// Framed by a CRM page, the CCP answers the SDK's `hello`. The page says
// hello as soon as this frame loads, well before the app's module has been
// fetched and compiled, so that hello would be lost and the page would wait
// for its next retry (100 ms later). Keep the first few messages until the
// app's frame transport takes them (`sbListen` in src/embed.rs), and ask
// for the approved origins now rather than after the module has started.
// Bounded: a page that posts more before the app starts loses the rest
// (the SDK repeats its hello).
if (window.parent !== window) {
  // Tell the SDK a CCP is starting in its frame, before the frame's load
  // event: a frame that loads without this is one the browser refused
  // (frame-ancestors) or an error page, and the SDK fails `init` at once
  // instead of after its whole timeout. It carries nothing (any origin may
  // read it); the frame session starts with the SDK's hello.
  window.parent.postMessage('{"kind":"loading"}', '*');
  const early = [];
  const keep = (e) => {
    if (early.length < 16) early.push(e);
  };
  window.addEventListener('message', keep);
  globalThis.__switchboardEarly = {
    messages() {
      window.removeEventListener('message', keep);
      return early.splice(0);
    },
    embed: fetch('/v1/embed').then((r) => r.text()),
  };
}

// Built by `cargo xtask`, this file is bundled with the loader, which is
// then already here (`__switchboardApp`); under `trunk serve` it is a file
// of its own, named by `data-app-js`.
// With a login kept from last time the app's first act is to open its
// socket to the backend; open it now, while the module compiles, and the
// app takes it (`early_socket` in streams-sdk/src/web.rs). Not taken within
// 2 s (this tab follows another, or the login is gone), it is closed, well
// before the backend's `hello_timeout_ms` would count its silence as abuse.
try {
  if (localStorage.getItem('switchboard.token')) {
    const socket = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/v1/ws`);
    globalThis.__switchboardSocket = socket;
    setTimeout(() => {
      if (globalThis.__switchboardSocket === socket) {
        globalThis.__switchboardSocket = undefined;
        socket.close();
      }
    }, 2000);
  }
} catch {
  // Storage refused (a sandboxed frame): the app opens its own socket.
}

const el = document.querySelector('script[data-app-wasm]');
const own = (url) => {
  const u = new URL(url, location.href);
  if (u.origin !== location.origin) throw new Error(`refusing to load ${u.href}`);
  return u.href;
};
const { default: init } = globalThis.__switchboardApp ?? (await import(own(el.dataset.appJs)));
await init({ module_or_path: own(el.dataset.appWasm) });

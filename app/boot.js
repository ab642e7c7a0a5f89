// Starts the CCP. Trunk's default loader is an inline script, which the
// CCP's Content-Security-Policy (script-src 'self') refuses, so Trunk.toml's
// `pattern_script` emits <script src="boot.js"> with the hashed names of
// the wasm-bindgen loader and the wasm as data attributes, and this file
// does what the inline loader did. Both URLs must be on this origin. The
// loader is already in the module map (a script tag before this one), so
// importing it here fetches nothing.
const el = document.querySelector('script[data-app-js][data-app-wasm]');
const own = (url) => {
  const u = new URL(url, location.href);
  if (u.origin !== location.origin) throw new Error(`refusing to load ${u.href}`);
  return u.href;
};
const { default: init } = await import(own(el.dataset.appJs));
await init({ module_or_path: own(el.dataset.appWasm) });

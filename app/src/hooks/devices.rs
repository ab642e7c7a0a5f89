//! Audio devices: the list the browser offers (kept fresh when a headset
//! is plugged in or out), the agent's choices (in localStorage, where the
//! engine, the ringer and the SDK's frame transport read them), and a
//! microphone level for the settings' meter.
//!
//! The meter opens its own microphone stream, separate from the call's
//! engine, only while someone is looking at it; the guard closes the
//! stream and its audio context when the meter goes away.

use leptos::prelude::*;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export async function sbEnumerate() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return [];
  const list = await navigator.mediaDevices.enumerateDevices();
  return list.filter((d) => d.kind === 'audioinput' || d.kind === 'audiooutput')
    // Chromium lists a 'default' and a 'communications' alias of real
    // devices; the panel offers its own "Default" entry instead.
    .filter((d) => d.deviceId && d.deviceId !== 'default' && d.deviceId !== 'communications')
    .map((d) => [d.kind === 'audioinput' ? 'input' : 'output', d.deviceId, d.label]);
}
export function sbOnDeviceChange(cb) {
  const md = navigator.mediaDevices;
  if (!md) return () => {};
  md.addEventListener('devicechange', cb);
  return () => md.removeEventListener('devicechange', cb);
}
export function sbOpenMeter(deviceId, onLevel) {
  let closed = false;
  let stop = () => {};
  const constraints = { audio: deviceId ? { deviceId: { exact: deviceId } } : true };
  navigator.mediaDevices.getUserMedia(constraints)
    .catch((e) => {
      // A remembered device that is gone: show the default one's level.
      if (deviceId && e && e.name === 'OverconstrainedError') return navigator.mediaDevices.getUserMedia({ audio: true });
      throw e;
    })
    .then((stream) => {
      if (closed) { stream.getTracks().forEach((t) => t.stop()); return; }
      const ctx = new AudioContext();
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 2048;
      ctx.createMediaStreamSource(stream).connect(analyser);
      const buf = new Float32Array(analyser.fftSize);
      let level = 0;
      // Peak with a decay, so a short syllable stays visible for a moment.
      const timer = setInterval(() => {
        analyser.getFloatTimeDomainData(buf);
        let peak = 0;
        for (const v of buf) peak = Math.max(peak, Math.abs(v));
        level = Math.max(Math.min(peak, 1), level * 0.8);
        onLevel(level < 0.001 ? 0 : level);
      }, 50);
      ctx.resume().catch(() => {});
      stop = () => {
        clearInterval(timer);
        stream.getTracks().forEach((t) => t.stop());
        ctx.close().catch(() => {});
      };
    })
    .catch((e) => console.warn('[switchboard] microphone level unavailable:', e && e.message));
  return () => { closed = true; stop(); };
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = sbEnumerate, catch)]
    async fn enumerate() -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = sbOnDeviceChange)]
    fn on_device_change(cb: &Closure<dyn FnMut()>) -> js_sys::Function;
    #[wasm_bindgen(js_name = sbOpenMeter)]
    fn open_meter(device_id: &str, on_level: &Closure<dyn FnMut(f64)>) -> js_sys::Function;
}

/// One audio device the browser offers.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// `true` for a microphone, `false` for a speaker.
    pub input: bool,
    /// The browser's id, stable for this origin.
    pub id: String,
    /// Its name; empty until the page may use the microphone.
    pub label: String,
}

/// The chosen device of `kind` (`microphone`, `speaker`, `ringer`); empty
/// for the system default.
pub fn chosen_device(kind: &'static str) -> String {
    crate::store::get(crate::store::Key::Device(kind)).unwrap_or_default()
}

/// Remembers the device of `kind`; empty forgets it (the default).
pub fn set_chosen_device(kind: &'static str, id: &str) {
    crate::store::set(crate::store::Key::Device(kind), id);
}

/// Removes a JS event listener when dropped.
#[must_use]
struct Unlisten {
    remove: js_sys::Function,
    _cb: Closure<dyn FnMut()>,
}

impl Drop for Unlisten {
    fn drop(&mut self) {
        let _ = self.remove.call0(&JsValue::NULL);
    }
}

/// What [`use_media_devices`] returns.
pub struct UseMediaDevicesReturn {
    /// Audio inputs and outputs, as the browser lists them.
    pub devices: ReadSignal<Vec<Device>>,
}

async fn list() -> Vec<Device> {
    let Ok(list) = enumerate().await else {
        return Vec::new();
    };
    js_sys::Array::from(&list)
        .iter()
        .filter_map(|d| {
            let d = js_sys::Array::from(&d);
            Some(Device {
                input: d.get(0).as_string()? == "input",
                id: d.get(1).as_string()?,
                label: d.get(2).as_string().unwrap_or_default(),
            })
        })
        .collect()
}

/// The browser's audio devices, refreshed on `devicechange`.
pub fn use_media_devices() -> UseMediaDevicesReturn {
    let (devices, set_devices) = signal(Vec::new());
    let refresh = move || {
        leptos::task::spawn_local(async move {
            let found = list().await;
            if devices.get_untracked() != found {
                set_devices.set(found);
            }
        })
    };
    refresh();
    let cb = Closure::<dyn FnMut()>::new(refresh);
    let guard = Unlisten {
        remove: on_device_change(&cb),
        _cb: cb,
    };
    // The guard is not Send; keep it in a local-only slot until cleanup.
    let guard = StoredValue::new_local(Some(guard));
    on_cleanup(move || guard.update_value(|g| drop(g.take())));
    UseMediaDevicesReturn { devices }
}

/// Stops a meter's stream when dropped.
#[must_use]
struct Meter {
    close: js_sys::Function,
    _cb: Closure<dyn FnMut(f64)>,
}

impl Drop for Meter {
    fn drop(&mut self) {
        let _ = self.close.call0(&JsValue::NULL);
    }
}

/// The microphone's level (0-1, peak with decay) while `device` is
/// `Some(id)` (empty id: the default microphone); no stream while `None`.
pub fn use_mic_level(device: Signal<Option<String>>) -> ReadSignal<f64> {
    let (level, set_level) = signal(0.0);
    let meter = StoredValue::new_local(None::<Meter>);
    Effect::new(move |_| {
        let wanted = device.get();
        // Close the old stream before opening a new one.
        meter.update_value(|m| drop(m.take()));
        set_level.set(0.0);
        if let Some(id) = wanted {
            let cb = Closure::<dyn FnMut(f64)>::new(move |v: f64| set_level.set(v));
            let close = open_meter(&id, &cb);
            meter.set_value(Some(Meter { close, _cb: cb }));
        }
    });
    on_cleanup(move || meter.update_value(|m| drop(m.take())));
    level
}

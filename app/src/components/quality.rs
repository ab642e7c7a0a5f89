//! The live call-quality indicator, from the audio engine's statistics:
//! an estimated MOS with a word for it, packet loss and jitter.

use leptos::prelude::*;

use crate::format::decimal;

/// One line under the call controls.
#[component]
pub fn CallQuality() -> impl IntoView {
    let quality = expect_context::<crate::Panel>().quality;
    let text = move || {
        quality.get().map(|q| {
            let word = if q.mos >= 4.0 {
                "Good"
            } else if q.mos >= 3.5 {
                "Fair"
            } else {
                "Poor"
            };
            (
                word,
                format!(
                    "{word} · MOS {} · loss {}% · jitter {} ms",
                    decimal(q.mos, 1),
                    decimal(q.loss_percent, 1),
                    decimal(q.jitter_ms, 0)
                ),
            )
        })
    };
    view! {
        <Show when=move || text().is_some()>
            <p class=move || format!("quality quality-{}", text().map(|t| t.0.to_ascii_lowercase()).unwrap_or_default())
                data-testid="call-quality" aria-live="polite">
                {move || text().map(|t| t.1).unwrap_or_default()}
            </p>
        </Show>
    }
}

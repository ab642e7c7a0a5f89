//! `use_call_audio`: the call's audio as an observer of the session. The
//! engine follows the state (prepared while a call rings, started on the
//! agent's media leg, stopped when the call ends or the connection goes),
//! the call quality is read each second while a call has audio, and an
//! engine failure is reported back to the session as a command.

use leptos::prelude::*;
use leptos::reactive::effect::ImmediateEffect;

use crate::audio::{self, Quality};
use crate::ccp::Ccp;

/// Runs the call audio for `ccp`'s state and returns the live quality.
/// The engine stops when the hook's owner goes.
pub fn use_call_audio(ccp: Ccp) -> RwSignal<Option<Quality>> {
    let quality = RwSignal::new(None);
    ImmediateEffect::new_scoped(move || {
        ccp.state.with(|state| match Ccp::client() {
            // Only the leading tab has the connection and plays the call.
            Some(client) => audio::sync(state, &client, move |code, sentence| {
                ccp.audio_failed(code, sentence)
            }),
            None => audio::stop(),
        });
    });
    ImmediateEffect::new_scoped(move || {
        ccp.now.track();
        let q = audio::quality();
        if quality.get_untracked() != q {
            quality.set(q);
        }
    });
    on_cleanup(audio::stop);
    quality
}

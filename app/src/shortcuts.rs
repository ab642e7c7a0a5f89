//! Keyboard shortcuts for the call controls, with Alt so they do not clash
//! with typing: Alt+A accept, Alt+R reject, Alt+H hold/resume, Alt+M
//! mute/unmute, Alt+E end call. They act on the first contact in the
//! matching state, as the buttons do.

use leptos::ev;
use leptos::prelude::*;
use protocol::contact::ContactState;
use protocol::wire::Op;

use crate::ccp::Ccp;

/// Listens on the window for the panel's shortcuts (for the page's life).
pub fn install(ccp: Ccp) {
    let handle = window_event_listener(ev::keydown, move |e| {
        if !e.alt_key() || e.ctrl_key() || e.meta_key() {
            return;
        }
        let contacts = ccp
            .state
            .with_untracked(|s| s.contacts.values().cloned().collect::<Vec<_>>());
        let incoming = contacts
            .iter()
            .find(|c| matches!(c.state, ContactState::Incoming { .. }));
        let connected = contacts
            .iter()
            .find(|c| matches!(c.state, ContactState::Connected { .. }));
        let op = match e.code().as_str() {
            "KeyA" => incoming.map(|c| Op::Accept {
                contact_id: c.contact_id.clone(),
            }),
            "KeyR" => incoming.map(|c| Op::Reject {
                contact_id: c.contact_id.clone(),
            }),
            "KeyH" => connected.and_then(crate::components::hold_toggle),
            "KeyM" => {
                let muted = ccp
                    .state
                    .with_untracked(|s| s.agent.as_ref().is_some_and(|a| a.muted));
                Some(if muted { Op::Unmute } else { Op::Mute })
            }
            "KeyE" => connected.and_then(|c| {
                let own = c.agent_connection()?.connection_id.clone();
                Some(Op::EndConnection {
                    contact_id: c.contact_id.clone(),
                    connection_id: own,
                })
            }),
            _ => None,
        };
        if let Some(op) = op {
            e.prevent_default();
            ccp.run(op);
        }
    });
    // The panel lives as long as the page: keep the listener.
    std::mem::forget(handle);
}

//! The media domain, as far as the center goes: what each call's audio
//! should be (a plan sent to the bridge whenever a call changes), DTMF to
//! play, which media legs are live, and where recordings go. The center
//! never waits on media: plans and digits are fire-and-forget messages.

use protocol::contact::{ConnectionState, ContactState};

use super::Center;

impl Center {
    /// Connects the media bridge: from now on every call change is sent
    /// to it as a plan.
    pub fn set_bridge(&mut self, bridge: crate::bridge::Bridge) {
        self.bridge = Some(bridge);
    }

    /// Where a contact's recording goes, when recording is on: a
    /// directory of one Ogg Opus file per party and a manifest (the mix is
    /// made when the recording is fetched, see `bridge::mixdown`).
    pub fn recording_path(&self, contact_id: &str) -> Option<std::path::PathBuf> {
        self.cfg
            .recording
            .then(|| self.cfg.data_dir.join("recordings").join(contact_id))
    }

    /// Opens a new contact's record in the store, with where its
    /// recording goes when recording is on.
    pub(super) fn open_contact_record(
        &self,
        id: &str,
        initiation: &str,
        queue: Option<&str>,
        number: &str,
        attributes: &std::collections::BTreeMap<String, String>,
        now: protocol::Millis,
    ) -> Result<(), crate::store::StoreError> {
        self.store
            .create_contact(id, initiation, queue, number, attributes, now)?;
        match self.recording_path(id) {
            Some(path) => self.store.set_recording(id, &path.display().to_string()),
            None => Ok(()),
        }
    }

    /// Where a simulated caller's recording of what it heard goes: the
    /// packets it was sent, as Ogg Opus (decoded when fetched).
    pub fn heard_path(&self, contact_id: &str) -> std::path::PathBuf {
        self.cfg
            .data_dir
            .join("recordings")
            .join(format!("{contact_id}-caller-heard.opus"))
    }

    /// Whether `leg` is a live media leg of `agent` (frames for anything
    /// else are refused with `no_media_leg`).
    pub fn media_leg_active(&self, agent: &str, leg: u32) -> bool {
        self.agents.get(agent).is_some_and(|e| {
            e.contacts.iter().any(|id| {
                self.calls
                    .get(id)
                    .and_then(|c| c.participant(agent))
                    .is_some_and(|p| p.media_leg == leg && p.state.is_live())
            })
        })
    }

    /// Whether `leg` was a media leg of `agent` on a contact the agent still
    /// has but no longer talks on (it left a conference, the call ended).
    /// The agent's client sends until it hears of the end, so a few frames
    /// always cross it: they are expected, and dropped without an error.
    pub fn media_leg_ended(&self, agent: &str, leg: u32) -> bool {
        self.agents.get(agent).is_some_and(|e| {
            e.contacts.iter().any(|id| {
                self.calls
                    .get(id)
                    .and_then(|c| c.participant(agent))
                    .is_some_and(|p| p.media_leg == leg && !p.state.is_live())
            })
        })
    }

    /// Sends the bridge the media this call should have now.
    pub(super) fn plan_media(&self, call_id: &str) {
        use crate::bridge::{Audio, CallPlan, Command, PartyKind, PlannedParty};
        let Some(bridge) = &self.bridge else { return };
        let Some(call) = self.calls.get(call_id) else {
            self.end_side_plan(bridge, call_id);
            bridge.send(Command::Plan(CallPlan {
                call: call_id.to_owned(),
                parties: Vec::new(),
                ended: true,
                recording: None,
            }));
            return;
        };
        let mut parties = Vec::new();
        // Early media (a trunk's 183): the dialing agent already hears the
        // far end (ringback, announcements) before it answers.
        let early = self.has_early_media(call_id);
        let on_call = |s: &ContactState| {
            matches!(s, ContactState::Connected { .. })
                || early && matches!(s, ContactState::Connecting { .. })
        };
        let live_agents = call.live_agents().filter(|p| on_call(&p.state)).count();
        if !call.ended && live_agents > 0 {
            let customer_audio = match call.customer.state {
                ConnectionState::Connected { .. } => Some(Audio::Talking),
                ConnectionState::Hold { .. } => Some(Audio::Held),
                ConnectionState::Connecting { .. } if early => Some(Audio::Talking),
                _ => None,
            };
            if let Some(audio) = customer_audio {
                parties.push(PlannedParty {
                    id: call.customer.connection_id.clone(),
                    kind: PartyKind::Caller {
                        play: call.caller_play.clone(),
                        heard: Some(self.heard_path(call_id)),
                    },
                    audio,
                });
            }
            for p in call.participants.iter().filter(|p| on_call(&p.state)) {
                let muted = self.agents.get(&p.agent).is_some_and(|e| e.muted);
                let audio = match p.conn {
                    ConnectionState::Hold { .. } => Audio::Held,
                    _ if muted => Audio::Muted,
                    _ => Audio::Talking,
                };
                parties.push(PlannedParty {
                    id: p.connection_id.clone(),
                    kind: PartyKind::Agent {
                        agent: p.agent.clone(),
                        leg: p.media_leg,
                    },
                    audio,
                });
            }
        }
        // The agents move first: what the flows leave of the call's plan
        // is the customer's side.
        let side = self.side_parties(call, &mut parties);
        self.plan_flow_media(call, live_agents, &mut parties);
        self.plan_trunk_parties(call, live_agents, &mut parties);
        if side.is_empty() {
            // The agents rejoin the call's plan after their side plan ended.
            self.end_side_plan(bridge, call_id);
        }
        bridge.send(Command::Plan(CallPlan {
            call: call_id.to_owned(),
            parties,
            ended: call.ended,
            recording: self.recording_path(call_id),
        }));
        if !side.is_empty() {
            // After the call's plan let go of the agents' legs.
            self.agent_lanes.set_side(call_id, true);
            bridge.send(Command::Plan(CallPlan {
                call: super::flow::side_plan_id(call_id),
                parties: side,
                ended: false,
                recording: None,
            }));
        }
    }

    /// Ends the side plan of `call_id` if it has one.
    fn end_side_plan(&self, bridge: &crate::bridge::Bridge, call_id: &str) {
        if self.agent_lanes.set_side(call_id, false) {
            bridge.send(crate::bridge::Command::Plan(crate::bridge::CallPlan {
                call: super::flow::side_plan_id(call_id),
                parties: Vec::new(),
                ended: true,
                recording: None,
            }));
        }
    }

    /// Moves the agents to a side plan while each side hears its own flow
    /// (see [`super::flow::AgentLanes`]): during the whispers (the call is
    /// not connected until both are over), and while a held caller hears
    /// the customer hold flow or the agent hears the agent hold flow. The
    /// agent lane's prompt plays on the side plan. Empty: no side plan.
    fn side_parties(
        &self,
        call: &super::Call,
        parties: &mut Vec<crate::bridge::PlannedParty>,
    ) -> Vec<crate::bridge::PlannedParty> {
        use super::FlowRole;
        use crate::bridge::{Audio, CallerAudio, PartyKind, PlannedParty};
        if call.ended {
            return Vec::new();
        }
        let agent_run = self.agent_lanes.get(&call.id);
        let customer_role = call.flow.as_ref().map(|f| &f.role);
        let apart = agent_run.is_some()
            || matches!(
                customer_role,
                Some(
                    FlowRole::CustomerWhisper { .. }
                        | FlowRole::CustomerHold { .. }
                        | FlowRole::Transfer { .. }
                )
            );
        if !apart {
            return Vec::new();
        }
        let mut side = Vec::new();
        parties.retain(|p| {
            let agent = matches!(p.kind, PartyKind::Agent { .. });
            if agent {
                side.push(p.clone());
            }
            !agent
        });
        if side.is_empty() {
            return side;
        }
        if let Some((seq, path)) = agent_run.and_then(|f| f.playing_path()) {
            side.push(PlannedParty {
                id: format!("flow-agent-prompt-{seq}"),
                kind: PartyKind::Caller {
                    play: CallerAudio::Prompt(path.clone()),
                    heard: None,
                },
                audio: Audio::Talking,
            });
        }
        side
    }

    /// A flow's media: a call that came in through a flow keeps its
    /// caller's media from the start, and a prompt playing is one more
    /// party (a canned source, encoded once) heard by the caller, or, for
    /// an agent whisper, by the agent alone.
    fn plan_flow_media(
        &self,
        call: &super::Call,
        live_agents: usize,
        parties: &mut Vec<crate::bridge::PlannedParty>,
    ) {
        use crate::bridge::{Audio, CallerAudio, PartyKind, PlannedParty};
        if call.ended {
            return;
        }
        let role = call.flow.as_ref().map(|f| &f.role);
        let held = matches!(call.customer.state, ConnectionState::Hold { .. });
        if matches!(role, Some(super::FlowRole::CustomerWhisper { .. })) {
            // The caller hears its whisper before the agent is connected
            // (the agent is on the side plan, see `side_parties`).
            parties.retain(|p| p.id == call.customer.connection_id);
        } else if matches!(
            role,
            Some(super::FlowRole::CustomerHold { .. } | super::FlowRole::Transfer { .. })
        ) && held
        {
            // The held caller hears the hold flow instead of the hold
            // tone, and nobody else: the agents are on the side plan, and
            // other parties (a conference's third party) leave the plan
            // while the caller is held.
            parties.retain(|p| p.id == call.customer.connection_id);
            for p in parties.iter_mut() {
                p.audio = Audio::Muted;
            }
        } else if call.via_flow && live_agents == 0 && !call.customer.state.is_disconnected() {
            parties.push(PlannedParty {
                id: call.customer.connection_id.clone(),
                kind: PartyKind::Caller {
                    play: call.caller_play.clone(),
                    heard: Some(self.heard_path(&call.id)),
                },
                audio: Audio::Talking,
            });
        }
        if let Some((seq, path)) = call.flow.as_ref().and_then(|f| f.playing_path()) {
            if !parties.is_empty() {
                parties.push(PlannedParty {
                    id: format!("flow-prompt-{seq}"),
                    kind: PartyKind::Caller {
                        play: CallerAudio::Prompt(path.clone()),
                        heard: None,
                    },
                    audio: Audio::Talking,
                });
            }
        }
    }

    /// Re-plans every call `agent` is on (after a mute change).
    pub(super) fn plan_agent_calls(&self, agent: &str) {
        if let Some(e) = self.agents.get(agent) {
            for id in &e.contacts {
                self.plan_media(id);
            }
        }
    }

    /// Queues DTMF tones for the party on `connection_id`.
    pub(super) fn play_digits(&self, call_id: &str, connection_id: &str, digits: &str) {
        if let Some(b) = &self.bridge {
            b.send(crate::bridge::Command::Dtmf {
                call: call_id.to_owned(),
                to: connection_id.to_owned(),
                digits: digits.to_owned(),
            });
        }
    }
}

// Amazon Connect Streams compatibility facade for the Switchboard SDK.
//
// A page written against the documented Streams API (amazon-connect-streams
// 2.28: Documentation.md and cheat-sheet.md) runs against a Switchboard
// backend by swapping its script tag for this one:
//
//   <script src="http://127.0.0.1:8480/ccp/sdk/connect-streams.js"></script>
//   connect.core.initCCP(div, { ccpUrl: 'http://127.0.0.1:8480/ccp/' });
//   connect.contact((contact) => contact.onConnecting(() => contact.accept()));
//
// How it works, in Streams' own terms: every state push from the CCP is
// turned into Streams-shaped agent data (a snapshot whose contacts carry
// Streams' state types), the previous and new data are diffed, and events
// fire from a transition table with Streams' documented semantics (a
// ringing voice call is CONNECTING, onEnded fires once per contact, ACW is
// the ENDED contact state, the agent's MissedCallAgent is an ERROR state).
// Subscriptions go through one event bus (`connect.core.getEventBus()`)
// and every subscription returns `{unsubscribe()}`, as in Streams.
//
// Where Streams' behaviour is a known bug its users complain about, this
// facade still behaves like Streams by default; docs/embedding.md lists
// each difference and its opt-in.
//
// It is a classic script (integrations load it with a script tag) that
// defines the global `connect` and loads the SDK module beside it when
// initCCP is called. `connect-streams.mjs` is the ES module entry for
// bundlers; it hands the statically imported SDK to this script.
(function (global) {
  'use strict';
  if (global.connect && global.connect.__switchboard) return;

  var doc = global.document;
  var script = doc && doc.currentScript;
  var sdkUrl = script && script.src ? new URL('switchboard.js', script.src).href : null;
  /** @type {Promise<any> | null} */
  var sdkModule = null;
  function loadSdk() {
    if (!sdkModule) {
      sdkModule = sdkUrl
        ? import(sdkUrl)
        : Promise.reject(new Error('connect-streams: cannot tell where switchboard.js is; load this file with a script tag or through connect-streams.mjs'));
    }
    return sdkModule;
  }

  // ---- small utilities ---------------------------------------------------------

  // Streams names enum keys after their values: 'not_routable' ->
  // NOT_ROUTABLE, 'AfterCallWork' -> AFTER_CALL_WORK.
  function makeEnum(values, prefix) {
    var out = {};
    values.forEach(function (v) {
      var key = v.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/[^A-Za-z0-9]+/g, '_').toUpperCase();
      out[key] = prefix ? prefix + '::' + v : v;
    });
    return Object.freeze(out);
  }
  function values(o) { return Object.keys(o).map(function (k) { return o[k]; }); }
  function contains(list, v) { return list.indexOf(v) !== -1; }
  function isFunction(f) { return typeof f === 'function'; }

  // A deep copy of plain data (Dates stay Dates); drops the SDK's objects.
  function clone(v) {
    if (v instanceof Date) return new Date(v.getTime());
    if (Array.isArray(v)) return v.map(clone);
    if (v && typeof v === 'object') {
      var out = {};
      Object.keys(v).forEach(function (k) { if (k !== '_switchboard') out[k] = clone(v[k]); });
      return out;
    }
    return v;
  }

  function StateError(message) {
    var e = new Error(message);
    e.name = 'StateError';
    return e;
  }

  function notSupported(what) {
    var e = new Error(what + ' is not supported by Switchboard (voice only: no chat, task, email, video or supervisor features)');
    e.name = 'NotSupportedError';
    e.code = 'not_supported';
    return e;
  }

  // ---- enumerations (Streams 2.28 values) ------------------------------------

  var AgentStateType = makeEnum(['init', 'routable', 'not_routable', 'offline', 'system', 'error']);
  var AgentAvailStates = makeEnum(['Init', 'Busy', 'AfterCallWork', 'CallingCustomer', 'Dialing', 'Joining', 'PendingAvailable', 'PendingBusy']);
  var AgentErrorStates = makeEnum([
    'Error', 'AgentHungUp', 'BadAddressAgent', 'BadAddressCustomer', 'Default', 'FailedConnectAgent',
    'FailedConnectCustomer', 'InvalidLocale', 'LineEngagedAgent', 'LineEngagedCustomer', 'MissedCallAgent',
    'MissedCallCustomer', 'MultipleCcpWindows', 'RealtimeCommunicationError',
  ]);
  var ContactStateType = makeEnum(['init', 'incoming', 'pending', 'connecting', 'connected', 'missed', 'error', 'ended', 'rejected', 'paused']);
  var CONTACT_ACTIVE_STATES = ['paused', 'incoming', 'pending', 'connecting', 'connected'];
  var ConnectionStateType = makeEnum(['init', 'connecting', 'connected', 'hold', 'disconnected', 'silent_monitor', 'barge']);
  var CONNECTION_ACTIVE_STATES = ['connecting', 'connected', 'hold', 'silent_monitor', 'barge'];
  var ConnectionType = makeEnum(['agent', 'inbound', 'outbound', 'monitoring']);
  var ContactType = makeEnum(['voice', 'queue_callback', 'chat', 'task', 'email']);
  var EndpointType = makeEnum(['phone_number', 'agent', 'queue']);
  var ContactInitiationMethod = makeEnum([
    'inbound', 'outbound', 'transfer', 'queue_transfer', 'callback', 'api', 'disconnect', 'webrtc_api',
    'agent_reply', 'campaign_preview', 'external_outbound', 'monitor', 'flow',
    'callback_customer_first_queued', 'callback_customer_first_dialed',
  ]);
  var ChannelType = makeEnum(['VOICE', 'CHAT', 'TASK']);
  var MediaType = makeEnum(['softphone', 'chat', 'task', 'email']);
  var MonitoringMode = makeEnum(['SILENT_MONITOR', 'BARGE']);
  var MonitoringErrorTypes = makeEnum(['invalid_target_state']);
  var SoftphoneCallType = makeEnum(['audio_video', 'video_only', 'audio_only', 'none']);
  var SoftphoneErrorTypes = makeEnum([
    'unsupported_browser', 'microphone_not_shared', 'signalling_handshake_failure', 'signalling_connection_failure',
    'ice_collection_timeout', 'user_busy_error', 'webrtc_error', 'realtime_communication_error',
    'vdi_strategy_not_supported', 'vdi_redir_not_supported', 'other',
  ]);
  var NetworkConnectionStatus = Object.freeze({ CONNECTED: 'connected', CONNECTING: 'connecting', DISCONNECTED: 'disconnected', FAILED: 'failed' });
  var LogLevel = Object.freeze({ TEST: 'TEST', TRACE: 'TRACE', DEBUG: 'DEBUG', INFO: 'INFO', LOG: 'LOG', WARN: 'WARN', ERROR: 'ERROR', CRITICAL: 'CRITICAL' });
  var LOG_RANK = { TEST: 0, TRACE: 10, DEBUG: 20, INFO: 30, LOG: 40, WARN: 50, ERROR: 100, CRITICAL: 200 };
  var ClickType = makeEnum(['Accept', 'Reject', 'Hangup']);
  var EventType = makeEnum([
    'acknowledge', 'ack_timeout', 'init', 'api_request', 'api_response', 'auth_fail', 'access_denied', 'close',
    'configure', 'log', 'download_log_from_ccp', 'master_request', 'master_response', 'synchronize', 'terminate',
    'terminated', 'send_logs', 'reload_agent_configuration', 'broadcast', 'api_metric', 'client_metric',
    'softphone_stats', 'softphone_report', 'client_side_logs', 'server_bound_internal_log', 'mute', 'iframe_style',
    'iframe_retries_exhausted', 'update_connected_ccps', 'outer_context_info', 'media_device_request',
    'media_device_response', 'tab_id', 'authorize_success', 'authorize_retries_exhausted',
    'cti_authorize_retries_exhausted', 'click_stream_data', 'set_quick_get_agent_snapshot_flag',
    'api_proxy_request', 'api_proxy_response', 'request_configure', 'cross_region_csm_config',
  ]);
  var AgentEvents = makeEnum([
    'init', 'update', 'refresh', 'routable', 'not_routable', 'pending', 'contact_pending', 'offline', 'error',
    'softphone_error', 'websocket_connection_lost', 'websocket_connection_gained', 'state_change', 'acw',
    'mute_toggle', 'local_media_stream_created', 'enqueued_next_state', 'cleared_next_state',
    'fetch_agent_data_from_ccp',
  ], 'agent');
  var ContactEvents = makeEnum([
    'init', 'refresh', 'destroyed', 'incoming', 'pending', 'connecting', 'connected', 'missed', 'acw', 'view',
    'ended', 'error', 'accepted', 'invalid_state_transition', 'screen_sharing_started', 'screen_sharing_stopped',
    'screen_sharing_error',
  ], 'contact');
  var WebSocketEvents = makeEnum([
    'init_failure', 'connection_open', 'connection_close', 'connection_error', 'connection_gain', 'connection_lost',
    'subscription_update', 'subscription_failure', 'all_message', 'send', 'subscribe',
  ], 'webSocket');
  var ConfigurationEvents = makeEnum(['configure', 'set_speaker_device', 'set_microphone_device', 'set_ringer_device', 'speaker_device_changed', 'microphone_device_changed', 'ringer_device_changed'], 'configuration');
  var VoiceEnhancementEvents = makeEnum(['voice_enhancement_mode_changed'], 'voiceEnhancement');
  var ContactEventNames = values(ContactEvents);

  function contactEventName(event, contactId) {
    if (!contains(ContactEventNames, event)) throw new Error(event + ' is not a valid contact event');
    if (typeof contactId !== 'string' || !contactId) throw new Error('contactId must be a non-empty string');
    return event + '::' + contactId;
  }

  // ---- logging: connect.getLog() ----------------------------------------------

  // A bounded ring of entries (integrations log through it all day).
  var LOG_KEEP = 2000;
  var logger = {
    entries: [],
    level: 'INFO',
    echoLevel: 'WARN',
  };
  function LogEntry(level, text) {
    this.level = level;
    this.text = text;
    this.time = new Date();
    this.objects = [];
    this.exception = null;
  }
  LogEntry.prototype.withObject = function (o) { this.objects.push(o); return this; };
  LogEntry.prototype.withCrossOriginEventObject = LogEntry.prototype.withObject;
  LogEntry.prototype.withException = function (e) { this.exception = e; return this; };
  LogEntry.prototype.sendInternalLogToServer = function () { return this; };
  LogEntry.prototype.toString = function () { return this.time.toISOString() + ' [' + this.level + '] ' + this.text; };
  function format(args) {
    var text = String(args[0] === undefined ? '' : args[0]);
    var i = 1;
    text = text.replace(/%[sdjo]/g, function () { return i < args.length ? String(args[i++]) : ''; });
    return text;
  }
  function writeLog(level, args) {
    var entry = new LogEntry(level, format(args));
    if (LOG_RANK[level] >= LOG_RANK[logger.level]) {
      logger.entries.push(entry);
      if (logger.entries.length > LOG_KEEP) logger.entries.splice(0, logger.entries.length - LOG_KEEP);
    }
    if (LOG_RANK[level] >= LOG_RANK[logger.echoLevel] && global.console) {
      (LOG_RANK[level] >= LOG_RANK.ERROR ? console.error : console.warn).call(console, '[connect-streams] ' + entry.text);
    }
    return entry;
  }
  var Log = {
    test: function () { return writeLog('TEST', arguments); },
    trace: function () { return writeLog('TRACE', arguments); },
    debug: function () { return writeLog('DEBUG', arguments); },
    info: function () { return writeLog('INFO', arguments); },
    log: function () { return writeLog('LOG', arguments); },
    warn: function () { return writeLog('WARN', arguments); },
    error: function () { return writeLog('ERROR', arguments); },
    critical: function () { return writeLog('CRITICAL', arguments); },
    setLogLevel: function (level) { if (level in LOG_RANK) logger.level = level; },
    setEchoLevel: function (level) { if (level in LOG_RANK) logger.echoLevel = level; },
    getLogLevel: function () { return logger.level; },
    getEchoLevel: function () { return logger.echoLevel; },
    scheduleUpstreamLogPush: function () {},
    scheduleDownstreamClientSideLogsPush: function () {},
    scheduleUpstreamOuterContextCCPserverBoundLogsPush: function () {},
    scheduleUpstreamOuterContextCCPLogsPush: function () {},
    setLogRollInterval: function () {},
    getLoggedEntries: function () { return logger.entries.slice(); },
    // Saves the log as a text file, as Streams' download() does.
    download: function (options) {
      var name = (options && options.logName) || 'agent-log';
      var text = logger.entries.map(String).join('\n');
      if (!doc) return text;
      var a = doc.createElement('a');
      a.href = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
      a.download = name + '.txt';
      doc.body.appendChild(a);
      a.click();
      a.remove();
      return text;
    },
  };

  // ---- the event bus -----------------------------------------------------------

  function Subscription(bus, name, f) { this.bus = bus; this.eventName = name; this.f = f; this.id = ++bus.nextId; }
  Subscription.prototype.unsubscribe = function () { this.bus._remove(this); };

  function EventBus() { this.subs = {}; this.all = []; this.nextId = 0; }
  EventBus.prototype.subscribe = function (name, f) {
    if (typeof name !== 'string' || !name) throw new Error('eventName must be a non-empty string');
    if (!isFunction(f)) throw new Error('callback must be a function');
    var sub = new Subscription(this, name, f);
    (this.subs[name] = this.subs[name] || []).push(sub);
    return sub;
  };
  EventBus.prototype.subscribeAll = function (f) {
    if (!isFunction(f)) throw new Error('callback must be a function');
    var sub = new Subscription(this, null, f);
    this.all.push(sub);
    return sub;
  };
  EventBus.prototype.getSubscriptions = function (name) { return (this.subs[name] || []).slice(); };
  EventBus.prototype._remove = function (sub) {
    if (sub.eventName === null) this.all = this.all.filter(function (s) { return s !== sub; });
    else if (this.subs[sub.eventName]) {
      this.subs[sub.eventName] = this.subs[sub.eventName].filter(function (s) { return s !== sub; });
      if (!this.subs[sub.eventName].length) delete this.subs[sub.eventName];
    }
  };
  EventBus.prototype.trigger = function (name, data) {
    var subs = (this.subs[name] || []).concat(this.all);
    for (var i = 0; i < subs.length; i++) {
      try {
        if (subs[i].eventName === null) subs[i].f(data, name);
        else subs[i].f(data);
      } catch (err) {
        // One integration callback's bug must not stop the others.
        Log.error('a callback for %s threw: %s', name, err && err.message).withException(err);
      }
    }
  };
  EventBus.prototype.unsubscribeAll = function () { this.subs = {}; this.all = []; };

  var bus = new EventBus();

  // ---- the model: Streams-shaped agent data from the SDK's state -----------------

  var state = {
    session: null,
    options: null,
    agentData: null, // the latest Streams-shaped data
    endedFired: {}, // contactId -> true once onEnded fired for it
    acceptPending: {}, // contactId -> true while the page's accept is unanswered
    lastLink: null,
    terminated: false,
    initialized: false,
    lastContacts: {}, // contactId -> last contact data (getters on a destroyed contact)
  };

  function agentStateType(status) {
    if (contains(values(AgentErrorStates), status.name)) return AgentStateType.ERROR;
    return status.kind;
  }

  // Streams reports a ringing inbound voice call as CONNECTING (INCOMING is
  // for queued callbacks, which ring as INCOMING and fire onIncoming); every
  // other state has the same name.
  function contactStateType(c) {
    if (c.state === 'incoming' && c.initiation !== 'callback') return ContactStateType.CONNECTING;
    return c.state;
  }

  function endpointData(e) {
    return {
      endpointARN: e.id, endpointId: e.id, type: e.kind, name: e.name,
      phoneNumber: e.phone_number || null, agentLogin: e.agent || null, queue: e.queue || null,
    };
  }

  function connectionData(k, agentMuted) {
    var endpoint = endpointData(k.endpoint);
    return {
      connectionId: k.id,
      endpoint: endpoint,
      address: endpoint,
      state: { type: k.state, timestamp: k.since ? new Date(k.since) : null },
      type: k.kind === 'third_party' ? ConnectionType.OUTBOUND : k.kind,
      initial: k.isInitial,
      mute: k.kind === 'agent' ? !!agentMuted : false,
      forcedMute: false,
      monitoringInfo: null,
      softphoneMediaInfo: k.kind === 'agent' ? { callType: SoftphoneCallType.AUDIO_ONLY, autoAccept: false } : null,
    };
  }

  function contactData(c, agentMuted) {
    var attributes = {};
    Object.keys(c.attributes).forEach(function (k) { attributes[k] = { name: k, value: c.attributes[k] }; });
    return {
      contactId: c.id,
      initialContactId: c.id,
      type: c.initiation === 'callback' ? ContactType.QUEUE_CALLBACK : ContactType.VOICE,
      contactSubtype: 'connect:Telephony',
      state: { type: contactStateType(c), timestamp: c.since ? new Date(c.since) : null },
      queue: c.queue ? { queueARN: c.queue.id, queueId: c.queue.id, name: c.queue.name } : null,
      queueTimestamp: c.createdAt ? new Date(c.createdAt) : null,
      createdAt: c.createdAt,
      attributes: attributes,
      segmentAttributes: {},
      initiationMethod: c.initiation,
      connections: c.connections.map(function (k) { return connectionData(k, agentMuted); }),
      _switchboard: c,
    };
  }

  function buildAgentData(session) {
    var raw = session._agent;
    if (!raw) return null;
    var status = session.agent.state;
    var conf = raw.configuration;
    var profile = conf.routing_profile;
    var queues = profile.queues.map(function (q) { return { queueARN: q.queue.id, queueId: q.queue.id, name: q.queue.name }; });
    var states = raw.states.map(function (s) { return { type: s.kind, name: s.name, agentStateARN: s.name }; });
    var routingProfile = {
      name: profile.name, routingProfileARN: profile.id, routingProfileId: profile.id,
      queues: queues, defaultOutboundQueue: queues[0] || null, channelConcurrencyMap: { VOICE: 1, CHAT: 0, TASK: 0 },
    };
    return {
      snapshot: {
        state: { type: agentStateType(status), name: status.name, startTimestamp: new Date(status.since), agentStateARN: status.name },
        nextState: status.next ? { type: status.next.kind, name: status.next.name, agentStateARN: status.next.name } : null,
        agentAvailabilityState: null,
        contacts: session.contacts.map(function (c) { return contactData(c, raw.muted); }),
        muted: !!raw.muted,
        snapshotTimestamp: new Date(),
      },
      configuration: {
        name: conf.name,
        username: conf.username,
        agentARN: conf.username,
        softphoneEnabled: conf.softphone_enabled,
        softphoneAutoAccept: false,
        extension: null,
        dialableCountries: [],
        permissions: ['outboundCall'],
        agentStates: states,
        routingProfile: routingProfile,
        agentPreferences: {},
      },
      states: states,
      _routableName: (raw.states.filter(function (s) { return s.kind === 'routable'; })[0] || {}).name,
    };
  }

  function findContactData(id) {
    var data = state.agentData;
    var found = data && data.snapshot.contacts.filter(function (c) { return c.contactId === id; })[0];
    if (found) state.lastContacts[id] = found;
    return found || state.lastContacts[id] || null;
  }

  function liveContact(id) {
    var c = state.session && state.session.contact(id);
    if (!c) throw StateError('Contact ' + id + ' no longer exists.');
    return c;
  }

  // ---- transition tables (Streams' documented event semantics) ----------------

  // Events for an agent routing-type change (to -> event).
  function agentRoutingEvents(from, to) {
    if (from === to) return [];
    if (to === AgentStateType.ROUTABLE) return [AgentEvents.ROUTABLE];
    if (to === AgentStateType.NOT_ROUTABLE) return [AgentEvents.NOT_ROUTABLE];
    if (to === AgentStateType.OFFLINE) return [AgentEvents.OFFLINE];
    return [];
  }

  // Events for an agent state-name change, after STATE_CHANGE.
  function agentStateEvents(to) {
    var out = [];
    if (contains(values(AgentErrorStates), to)) out.push(AgentEvents.ERROR);
    if (to === AgentAvailStates.AFTER_CALL_WORK) out.push(AgentEvents.ACW);
    return out;
  }

  // Events for a contact state change, in Streams' order: those that hold
  // from any state first, then those that depend on where it came from.
  function contactEvents(from, to) {
    if (from === to) return [];
    var out = [];
    var T = ContactStateType;
    if (to === T.INCOMING) out.push(ContactEvents.INCOMING);
    if (to === T.PENDING) out.push(ContactEvents.PENDING);
    if (to === T.CONNECTING) out.push(ContactEvents.CONNECTING);
    if (to === T.CONNECTED) out.push(ContactEvents.CONNECTED);
    if (to === T.ENDED) out.push(ContactEvents.ACW);
    if (to === T.ERROR) out.push(ContactEvents.ERROR);
    var ringing = from === T.CONNECTING || from === T.INCOMING;
    if (ringing && to === T.ERROR) out.push(ContactEvents.MISSED);
    if (contains(CONTACT_ACTIVE_STATES, from) && !contains(CONTACT_ACTIVE_STATES, to)) out.push(ContactEvents.ENDED);
    if (ringing && (to === T.MISSED || to === T.REJECTED)) out.push(ContactEvents.MISSED);
    return out;
  }

  function fireContact(event, contactId, payload) {
    bus.trigger(event, payload);
    bus.trigger(contactEventName(event, contactId), payload);
  }

  function fireContactTransition(id, from, to) {
    // The page's accept was answered after the push that connected the
    // call: ACCEPTED still comes first, as it does in Streams.
    if (to === ContactStateType.CONNECTED && state.acceptPending[id]) {
      delete state.acceptPending[id];
      fireContact(ContactEvents.ACCEPTED, id, new Contact(id));
    }
    contactEvents(from, to).forEach(function (event) {
      if (event === ContactEvents.ENDED) {
        if (state.endedFired[id]) return;
        state.endedFired[id] = true;
      }
      fireContact(event, id, new Contact(id));
    });
    fireContact(ContactEvents.REFRESH, id, new Contact(id));
  }

  function unsubscribeContact(id) {
    ContactEventNames.forEach(function (event) {
      bus.getSubscriptions(event + '::' + id).forEach(function (sub) { sub.unsubscribe(); });
    });
  }

  // Diffs the previous Streams-shaped data against the new and fires what
  // Streams fires for that change, in Streams' order.
  function update() {
    var session = state.session;
    if (!session || state.terminated) return;
    var next = buildAgentData(session);
    if (!next) return;
    var prev = state.agentData;
    state.agentData = next;
    if (!connect.agent.initialized) {
      connect.agent.initialized = true;
      bus.trigger(AgentEvents.INIT, new Agent());
    }
    bus.trigger(AgentEvents.REFRESH, new Agent());
    var oldState = prev ? prev.snapshot.state : { type: AgentStateType.INIT, name: AgentAvailStates.INIT };
    var newState = next.snapshot.state;
    agentRoutingEvents(oldState.type, newState.type).forEach(function (e) { bus.trigger(e, new Agent()); });
    if (oldState.name !== newState.name) {
      bus.trigger(AgentEvents.STATE_CHANGE, { agent: new Agent(), oldState: oldState.name, newState: newState.name });
      agentStateEvents(newState.name).forEach(function (e) { bus.trigger(e, new Agent()); });
    }
    var oldNext = prev && prev.snapshot.nextState ? prev.snapshot.nextState.name : null;
    var newNext = next.snapshot.nextState ? next.snapshot.nextState.name : null;
    if (oldNext !== newNext) bus.trigger(newNext ? AgentEvents.ENQUEUED_NEXT_STATE : AgentEvents.CLEARED_NEXT_STATE, new Agent());
    if (prev && prev.snapshot.muted !== next.snapshot.muted) {
      bus.trigger(AgentEvents.MUTE_TOGGLE, { muted: next.snapshot.muted });
    }

    var before = {};
    (prev ? prev.snapshot.contacts : []).forEach(function (c) { before[c.contactId] = c; });
    var now = {};
    next.snapshot.contacts.forEach(function (c) { now[c.contactId] = c; state.lastContacts[c.contactId] = c; });
    next.snapshot.contacts.forEach(function (c) {
      var id = c.contactId;
      if (!before[id]) {
        bus.trigger(ContactEvents.INIT, new Contact(id));
        fireContactTransition(id, ContactStateType.INIT, c.state.type);
      }
    });
    Object.keys(before).forEach(function (id) {
      if (now[id]) return;
      var snap = new ContactSnapshot(before[id]);
      if (!state.endedFired[id]) fireContact(ContactEvents.ENDED, id, snap);
      fireContact(ContactEvents.DESTROYED, id, snap);
      unsubscribeContact(id);
      delete state.endedFired[id];
      delete state.acceptPending[id];
      delete state.lastContacts[id];
    });
    next.snapshot.contacts.forEach(function (c) {
      var id = c.contactId;
      if (before[id]) fireContactTransition(id, before[id].state.type, c.state.type);
    });
  }

  // The SDK emits several events for one state push; the facade diffs once
  // per push, after them.
  var updateQueued = false;
  function queueUpdate() {
    if (updateQueued) return;
    updateQueued = true;
    Promise.resolve().then(function () { updateQueued = false; update(); });
  }

  // ---- callbacks: Streams' {success, failure} ------------------------------------

  // The SDK's ERROR_CODES (generated from the Rust core's list), once the
  // SDK is loaded: the facade reports the same codes as the SDK and core.
  var errorCodes = null;
  function errorCode(err) {
    var code = err && typeof err.code === 'string' ? err.code : 'unknown';
    return errorCodes && errorCodes.indexOf(code) < 0 ? 'unknown' : code;
  }

  // Streams hands `failure` an error object {type, message, stack,
  // retryStatus}: that shape, with our stable code as `type` (and as a
  // non-enumerable `code`, as on SwitchboardError); it also prints
  // readably ("[object Object]" is a common complaint about Streams' errors).
  function streamsError(err) {
    var type = errorCode(err);
    var message = (err && err.message) || String(err);
    var e = { type: type, message: message, stack: [], retryStatus: 'NONE' };
    Object.defineProperty(e, 'code', { value: type });
    Object.defineProperty(e, 'toString', { value: function () { return JSON.stringify({ type: type, message: message }); } });
    return e;
  }

  function withCallbacks(run, callbacks, map) {
    var cbs = callbacks && typeof callbacks === 'object' ? callbacks : {};
    var p;
    try { p = Promise.resolve(run()); } catch (err) { p = Promise.reject(err); }
    return p.then(function (v) {
      var data = map ? map(v) : v;
      if (isFunction(cbs.success)) {
        try { cbs.success(data); } catch (err) { Log.error('a success callback threw: %s', err && err.message).withException(err); }
      }
      return data;
    }, function (err) {
      var e = streamsError(err);
      if (isFunction(cbs.failure)) {
        try { cbs.failure(e, { message: e.message, error: err }); } catch (x) { Log.error('a failure callback threw: %s', x && x.message).withException(x); }
      } else {
        Log.warn('action failed: %s', String(e));
      }
    });
  }

  function failWith(error, callbacks) {
    return withCallbacks(function () { throw error; }, callbacks);
  }

  function needSession() {
    if (!state.session) throw Object.assign(new Error('the CCP is not initialized (call connect.core.initCCP first)'), { code: 'not_initialized' });
    return state.session;
  }

  // ---- Endpoint ----------------------------------------------------------------

  function Endpoint(params) {
    var p = params || {};
    this.endpointARN = p.endpointARN || p.endpointId || null;
    this.endpointId = p.endpointId || p.endpointARN || null;
    this.type = p.type || EndpointType.PHONE_NUMBER;
    this.name = p.name || null;
    this.phoneNumber = p.phoneNumber || null;
    this.agentLogin = p.agentLogin || null;
    this.queue = p.queue || null;
  }
  // Connect's phone numbers are often SIP URIs ("sip:+15555550100@host");
  // integrations strip them to the number.
  Endpoint.prototype.stripPhoneNumber = function () {
    return this.phoneNumber ? this.phoneNumber.replace(/^sip:/, '').replace(/@.*$/, '') : '';
  };
  Endpoint.byPhoneNumber = function (number, name) {
    return new Endpoint({
      endpointARN: 'phone:' + number, endpointId: 'phone:' + number, type: EndpointType.PHONE_NUMBER,
      name: name || number, phoneNumber: number,
    });
  };
  function toSwitchboardEndpoint(e) {
    if (!e || typeof e !== 'object') throw Object.assign(new Error('endpoint must be a connect.Endpoint'), { code: 'invalid_argument' });
    if (e.type === EndpointType.PHONE_NUMBER && e.phoneNumber) {
      var number = String(e.phoneNumber).replace(/^sip:/, '').replace(/@.*$/, '');
      return { id: 'phone:' + number, kind: 'phone_number', name: e.name || number, phone_number: number };
    }
    var id = e.endpointId || e.endpointARN;
    if (typeof id !== 'string') throw Object.assign(new Error('endpoint has no endpointARN'), { code: 'invalid_argument' });
    var out = { id: id, kind: e.type, name: e.name || id };
    if (e.agentLogin) out.agent = e.agentLogin;
    if (e.queue) out.queue = e.queue;
    return out;
  }

  // ---- Connection ----------------------------------------------------------------

  // `owner` (internal): the contact snapshot a connection was read from.
  function Connection(contactId, connectionId, owner) {
    this.contactId = contactId;
    this.connectionId = connectionId;
    if (owner) Object.defineProperty(this, '_owner', { value: owner });
  }
  Connection.prototype._getData = function () {
    var c = this._owner ? this._owner._getData() : findContactData(this.contactId);
    var id = this.connectionId;
    var k = c && c.connections.filter(function (x) { return x.connectionId === id; })[0];
    if (!k) throw StateError('Connection ' + id + ' for contact ' + this.contactId + ' no longer exists.');
    return k;
  };
  Connection.prototype._live = function () {
    var id = this.connectionId;
    var k = liveContact(this.contactId).connections.filter(function (x) { return x.id === id; })[0];
    if (!k) throw Object.assign(new Error('connection ' + id + ' is gone'), { code: 'not_found' });
    return k;
  };
  Connection.prototype.getContactId = function () { return this.contactId; };
  Connection.prototype.getConnectionId = function () { return this.connectionId; };
  Connection.prototype.getEndpoint = function () { return new Endpoint(this._getData().endpoint); };
  Connection.prototype.getAddress = Connection.prototype.getEndpoint;
  Connection.prototype.getState = function () { return this._getData().state; };
  Connection.prototype.getStatus = Connection.prototype.getState;
  Connection.prototype.getStateDuration = function () {
    var t = this._getData().state.timestamp;
    return t ? Math.max(0, Date.now() - t.getTime()) : 0;
  };
  Connection.prototype.getStatusDuration = Connection.prototype.getStateDuration;
  Connection.prototype.getType = function () { return this._getData().type; };
  Connection.prototype.isInitialConnection = function () { return !!this._getData().initial; };
  Connection.prototype.isActive = function () { return contains(CONNECTION_ACTIVE_STATES, this.getState().type); };
  Connection.prototype.isConnected = function () { return this.getState().type === ConnectionStateType.CONNECTED; };
  Connection.prototype.isConnecting = function () { return this.getState().type === ConnectionStateType.CONNECTING; };
  Connection.prototype.isOnHold = function () { return this.getState().type === ConnectionStateType.HOLD; };
  Connection.prototype.getMonitorInfo = function () { return this._getData().monitoringInfo; };
  Connection.prototype.getMonitorStatus = function () { return undefined; };
  Connection.prototype.getMonitorCapabilities = function () { return []; };
  Connection.prototype.isSilentMonitor = function () { return false; };
  Connection.prototype.isBarge = function () { return false; };
  Connection.prototype.isSilentMonitorEnabled = function () { return false; };
  Connection.prototype.isBargeEnabled = function () { return false; };
  Connection.prototype.getMediaType = function () { return MediaType.SOFTPHONE; };
  Connection.prototype.getMediaInfo = function () { return this._getData().softphoneMediaInfo; };
  Connection.prototype.getSoftphoneMediaInfo = Connection.prototype.getMediaInfo;
  Connection.prototype.getMediaController = function () { return Promise.resolve(null); };
  Connection.prototype.getQuickConnectName = function () {
    var e = this._getData().endpoint;
    return e.type === EndpointType.PHONE_NUMBER ? null : e.name;
  };
  Connection.prototype.isMute = function () { return !!this._getData().mute; };
  Connection.prototype.isForcedMute = function () { return false; };
  Connection.prototype.canResumeParticipant = function () { return this.isOnHold(); };
  Connection.prototype._act = function (method, args, callbacks) {
    var self = this;
    return withCallbacks(function () { var k = self._live(); return k[method].apply(k, args); }, callbacks);
  };
  Connection.prototype.hold = function (cb) { return this._act('hold', [], cb); };
  Connection.prototype.resume = function (cb) { return this._act('resume', [], cb); };
  Connection.prototype.sendDigits = function (digits, cb) { return this._act('sendDigits', [digits], cb); };
  Connection.prototype.destroy = function (cb) { return this._act('end', [], cb); };
  Connection.prototype.muteParticipant = function (cb) { return failWith(notSupported('muting another participant'), cb); };
  Connection.prototype.unmuteParticipant = function (cb) { return failWith(notSupported('muting another participant'), cb); };
  Connection.prototype.toSnapshot = function () { return clone(this._getData()); };
  ['onParticipantHold', 'onParticipantResume', 'onCanResumeParticipantUpdated'].forEach(function (name) {
    // Multiparty hold notices: Switchboard tells them through contact refreshes.
    Connection.prototype[name] = function (f) { return bus.subscribe(contactEventName(ContactEvents.REFRESH, this.contactId), f); };
  });
  ['getVoiceIdSpeakerStatus', 'enrollSpeakerInVoiceId', 'evaluateSpeakerWithVoiceId', 'optOutVoiceIdSpeaker',
    'getVoiceIdSpeakerId', 'deleteVoiceIdSpeaker', 'updateVoiceIdSpeakerId'].forEach(function (name) {
    Connection.prototype[name] = function () { return Promise.reject(notSupported('Voice ID (' + name + ')')); };
  });
  var VoiceConnection = Connection;

  // ---- Contact -------------------------------------------------------------------

  function Contact(contactId) { this.contactId = contactId; }
  Contact.prototype._getData = function () {
    var c = findContactData(this.contactId);
    if (!c) throw StateError('Contact ' + this.contactId + ' no longer exists.');
    return c;
  };
  Contact.prototype.getEventName = function (event) { return contactEventName(event, this.contactId); };
  [['Refresh', 'REFRESH'], ['Incoming', 'INCOMING'], ['Connecting', 'CONNECTING'], ['Pending', 'PENDING'],
    ['Accepted', 'ACCEPTED'], ['Connected', 'CONNECTED'], ['Missed', 'MISSED'], ['Ended', 'ENDED'],
    ['Destroy', 'DESTROYED'], ['ACW', 'ACW'], ['Error', 'ERROR']].forEach(function (pair) {
    Contact.prototype['on' + pair[0]] = function (f) { return bus.subscribe(this.getEventName(ContactEvents[pair[1]]), f); };
  });
  Contact.prototype.getContactId = function () { return this.contactId; };
  Contact.prototype.getOriginalContactId = function () { return this._getData().initialContactId; };
  Contact.prototype.getInitialContactId = Contact.prototype.getOriginalContactId;
  Contact.prototype.getType = function () { return this._getData().type; };
  Contact.prototype.getContactSubtype = function () { return this._getData().contactSubtype; };
  Contact.prototype.getSegmentAttributes = function () { return this._getData().segmentAttributes; };
  Contact.prototype.getState = function () { return this._getData().state; };
  Contact.prototype.getStatus = Contact.prototype.getState;
  Contact.prototype.getStateDuration = function () {
    var t = this._getData().state.timestamp;
    return t ? Math.max(0, Date.now() - t.getTime()) : 0;
  };
  Contact.prototype.getStatusDuration = Contact.prototype.getStateDuration;
  Contact.prototype.getContactDuration = function () {
    var t = this._getData().createdAt;
    return t ? Math.max(0, Date.now() - t) : 0;
  };
  Contact.prototype.getQueue = function () { return this._getData().queue; };
  Contact.prototype.getQueueTimestamp = function () { return this._getData().queueTimestamp; };
  Contact.prototype.getInitiationMethod = function () { return this._getData().initiationMethod; };
  Contact.prototype.getAttributes = function () { return this._getData().attributes; };
  Contact.prototype.getConnections = function () {
    var id = this.contactId;
    var owner = this instanceof ContactSnapshot ? this : null;
    return this._getData().connections.map(function (k) { return new Connection(id, k.connectionId, owner); });
  };
  Contact.prototype.getInitialConnection = function () {
    return this.getConnections().filter(function (k) { return k.isInitialConnection(); })[0] || null;
  };
  Contact.prototype.getActiveInitialConnection = function () {
    var k = this.getInitialConnection();
    return k && k.isActive() ? k : null;
  };
  Contact.prototype.getAgentConnection = function () {
    return this.getConnections().filter(function (k) { return k.getType() === ConnectionType.AGENT; })[0] || null;
  };
  Contact.prototype.getThirdPartyConnections = function () {
    return this.getConnections().filter(function (k) { return !k.isInitialConnection() && k.getType() !== ConnectionType.AGENT; });
  };
  Contact.prototype.getSingleActiveThirdPartyConnection = function () {
    return this.getThirdPartyConnections().filter(function (k) { return k.isActive(); })[0] || null;
  };
  Contact.prototype.getActiveConnections = function () {
    return this.getConnections().filter(function (k) { return k.isActive(); });
  };
  Contact.prototype.hasTwoActiveParticipants = function () { return this.getActiveConnections().length === 2; };
  Contact.prototype.getCustomerEndpoint = function () {
    var k = this.getInitialConnection();
    return k ? k.getEndpoint() : null;
  };
  Contact.prototype.getConnectSystemEndpoint = function () {
    var q = this.getQueue();
    return new Endpoint({ type: EndpointType.QUEUE, name: q ? q.name : 'Switchboard', endpointARN: q ? q.queueARN : 'system' });
  };
  Contact.prototype.isInbound = function () {
    var k = this.getInitialConnection();
    return !!k && k.getType() === ConnectionType.INBOUND;
  };
  Contact.prototype.isConnected = function () { return this.getState().type === ContactStateType.CONNECTED; };
  Contact.prototype.isSoftphoneCall = function () { return this.getAgentConnection() !== null; };
  Contact.prototype.isAutoAcceptEnabled = function () { return false; };
  Contact.prototype.isMultiPartyConferenceEnabled = function () { return false; };
  Contact.prototype.isUnderSupervision = function () { return false; };
  Contact.prototype._act = function (run, callbacks, map) {
    var id = this.contactId;
    return withCallbacks(function () { return run(liveContact(id)); }, callbacks, map);
  };
  // ACCEPTED is the page's own event: it fires once its accept succeeds,
  // or with the push that connects the call if that comes first.
  Contact.prototype.accept = function (cb) {
    var id = this.contactId;
    var cbs = cb && typeof cb === 'object' ? cb : {};
    state.acceptPending[id] = true;
    return this._act(function (c) { return c.accept(); }, {
      success: function (data) {
        if (state.acceptPending[id]) {
          delete state.acceptPending[id];
          fireContact(ContactEvents.ACCEPTED, id, new Contact(id));
        }
        if (isFunction(cbs.success)) cbs.success(data);
      },
      failure: function (err, data) {
        delete state.acceptPending[id];
        if (isFunction(cbs.failure)) cbs.failure(err, data);
      },
    });
  };
  Contact.prototype.reject = function (cb) { return this._act(function (c) { return c.reject(); }, cb); };
  Contact.prototype.clear = function (cb) { return this._act(function (c) { return c.clear(); }, cb); };
  // The pre-2020 name of clear().
  Contact.prototype.complete = Contact.prototype.clear;
  // Streams' deprecated destroy(): hangs up a live call, clears a finished one.
  Contact.prototype.destroy = function (cb) {
    return this._act(function (c) {
      var mine = c.agentConnection;
      return c.state === 'connected' && mine ? mine.end() : c.clear();
    }, cb);
  };
  Contact.prototype.notifyIssue = function (issueCode, description, cb) {
    Log.warn('contact %s: issue %s: %s', this.contactId, issueCode, description);
    return withCallbacks(function () { return undefined; }, cb);
  };
  Contact.prototype.addConnection = function (endpoint, cb) {
    return this._act(function (c) { return c.addConnection(toSwitchboardEndpoint(endpoint)); }, cb);
  };
  Contact.prototype.conferenceConnections = function (cb) { return this._act(function (c) { return c.conference(); }, cb); };
  Contact.prototype.toggleActiveConnections = function (cb) { return this._act(function (c) { return c.toggle(); }, cb); };
  Contact.prototype.updateContactAttributes = function (attrs, cb) {
    return this._act(function (c) { return c.updateAttributes(attrs); }, cb);
  };
  Contact.prototype.toSnapshot = function () { return new ContactSnapshot(this._getData()); };
  ['silentMonitor', 'bargeIn', 'updateMonitorParticipantState'].forEach(function (name) {
    Contact.prototype[name] = function (cb) { return failWith(notSupported('supervisor monitoring (' + name + ')'), cb); };
  });
  ['pause', 'resume', 'getName', 'getDescription', 'getReferences', 'getChannelContext'].forEach(function (name) {
    // Task-contact APIs.
    Contact.prototype[name] = function (cb) {
      if (cb && typeof cb === 'object') return failWith(notSupported('task contacts (' + name + ')'), cb);
      throw notSupported('task contacts (' + name + ')');
    };
  });

  // A frozen copy: what onEnded/onDestroy get for a contact that is gone.
  function ContactSnapshot(data) {
    Contact.call(this, data.contactId);
    this.contactData = clone(data);
  }
  ContactSnapshot.prototype = Object.create(Contact.prototype);
  ContactSnapshot.prototype.constructor = ContactSnapshot;
  ContactSnapshot.prototype._getData = function () { return this.contactData; };
  ContactSnapshot.prototype.toSnapshot = function () { return this; };

  // ---- Agent ---------------------------------------------------------------------

  function Agent() {
    if (!connect.agent.initialized) throw StateError('The agent is not yet initialized!');
  }
  function agentData() {
    if (!state.agentData) throw StateError('No agent data is available yet!');
    return state.agentData;
  }
  Agent.prototype._data = function () { return this.agentData || agentData(); };
  [['Refresh', 'REFRESH'], ['StateChange', 'STATE_CHANGE'], ['Routable', 'ROUTABLE'], ['NotRoutable', 'NOT_ROUTABLE'],
    ['Offline', 'OFFLINE'], ['Error', 'ERROR'], ['SoftphoneError', 'SOFTPHONE_ERROR'], ['AfterCallWork', 'ACW'],
    ['ContactPending', 'CONTACT_PENDING'], ['MuteToggle', 'MUTE_TOGGLE'], ['WebSocketConnectionLost', 'WEBSOCKET_CONNECTION_LOST'],
    ['WebSocketConnectionGained', 'WEBSOCKET_CONNECTION_GAINED'], ['EnqueuedNextState', 'ENQUEUED_NEXT_STATE'],
    ['ClearedNextState', 'CLEARED_NEXT_STATE'], ['LocalMediaStreamCreated', 'LOCAL_MEDIA_STREAM_CREATED']].forEach(function (pair) {
    Agent.prototype['on' + pair[0]] = function (f) { return bus.subscribe(AgentEvents[pair[1]], f); };
  });
  Agent.prototype.onNetworkConnectionStatusChanged = function (f) { return bus.subscribe('agent::network_connection_status_changed', f); };
  Agent.prototype.onSpeakerDeviceChanged = function (f) { return bus.subscribe(ConfigurationEvents.SPEAKER_DEVICE_CHANGED, f); };
  Agent.prototype.onMicrophoneDeviceChanged = function (f) { return bus.subscribe(ConfigurationEvents.MICROPHONE_DEVICE_CHANGED, f); };
  Agent.prototype.onRingerDeviceChanged = function (f) { return bus.subscribe(ConfigurationEvents.RINGER_DEVICE_CHANGED, f); };
  Agent.prototype.onVoiceEnhancementModeChanged = function (f) { return bus.subscribe(VoiceEnhancementEvents.VOICE_ENHANCEMENT_MODE_CHANGED, f); };
  Agent.prototype.getState = function () { return this._data().snapshot.state; };
  Agent.prototype.getStatus = Agent.prototype.getState;
  // The state the agent chose (not a system state such as Busy).
  Agent.prototype.getAvailabilityState = function () {
    var s = this._data().snapshot.state;
    var chosen = contains([AgentStateType.SYSTEM, AgentStateType.ERROR], s.type) ? null : s;
    return chosen ? { state: chosen.name, timeStamp: chosen.startTimestamp } : null;
  };
  Agent.prototype.getNextState = function () { return this._data().snapshot.nextState; };
  Agent.prototype.getStateDuration = function () { return Math.max(0, Date.now() - this._data().snapshot.state.startTimestamp.getTime()); };
  Agent.prototype.getStatusDuration = Agent.prototype.getStateDuration;
  Agent.prototype.getAgentStates = function () { return this._data().states; };
  Agent.prototype.getPermissions = function () { return this._data().configuration.permissions; };
  Agent.prototype.getConfiguration = function () { return this._data().configuration; };
  Agent.prototype.getRoutingProfile = function () { return this._data().configuration.routingProfile; };
  Agent.prototype.getChannelConcurrency = function (channel) {
    var map = this.getRoutingProfile().channelConcurrencyMap;
    return channel ? (map[channel] || 0) : map;
  };
  Agent.prototype.getName = function () { return this._data().configuration.name; };
  Agent.prototype.getAgentARN = function () { return this._data().configuration.agentARN; };
  Agent.prototype.getExtension = function () { return this._data().configuration.extension; };
  Agent.prototype.getDialableCountries = function () { return this._data().configuration.dialableCountries; };
  Agent.prototype.isSoftphoneEnabled = function () { return this._data().configuration.softphoneEnabled; };
  Agent.prototype.getContacts = function (type) {
    return this._data().snapshot.contacts
      .filter(function (c) { return !type || c.type === type; })
      .map(function (c) { return new Contact(c.contactId); });
  };
  Agent.prototype.getAllQueueARNs = function () { return this.getRoutingProfile().queues.map(function (q) { return q.queueARN; }); };
  Agent.prototype.toSnapshot = function () {
    // A copy whose getters read the copy, not the live data.
    var frozen = clone(this._data());
    var snap = Object.create(Agent.prototype);
    snap.agentData = frozen;
    return snap;
  };
  Agent.prototype.isMute = function () { return this._data().snapshot.muted; };
  // Connect ends after-call work when the agent picks a state (#952: custom
  // softphones leave ACW this way); a state chosen during a live call, or
  // with {enqueueNextState: true}, is applied when the contacts end.
  Agent.prototype.setState = function (st, callbacks, options) {
    var name = typeof st === 'string' ? st : st && st.name;
    return withCallbacks(function () {
      var session = needSession();
      if (typeof name !== 'string' || !name) throw Object.assign(new Error('setState needs an agent state from getAgentStates()'), { code: 'invalid_argument' });
      var contacts = session.contacts;
      var live = contacts.filter(function (c) { return contains(['incoming', 'connecting', 'connected'], c.state); });
      var finished = contacts.filter(function (c) { return contains(['ended', 'missed', 'rejected', 'error'], c.state); });
      var enqueue = !!(options && options.enqueueNextState);
      if (live.length || enqueue || !finished.length) return session.agent.setState(name);
      return Promise.all(finished.map(function (c) { return c.clear(); })).then(function () { return session.agent.setState(name); });
    }, callbacks);
  };
  Agent.prototype.setStatus = Agent.prototype.setState;
  Agent.prototype.connect = function (endpoint, params) {
    return withCallbacks(function () { return needSession().agent.connect(toSwitchboardEndpoint(endpoint)); }, params);
  };
  Agent.prototype.getEndpoints = function (_queueARNs, callbacks) {
    return withCallbacks(function () { return needSession().agent.quickConnects(); }, callbacks, function (list) {
      var endpoints = list.map(function (e) { return new Endpoint(endpointData(e)); });
      return { endpoints: endpoints, addresses: endpoints };
    });
  };
  Agent.prototype.getAddresses = Agent.prototype.getEndpoints;
  Agent.prototype.mute = function () { return withCallbacks(function () { return needSession().agent.mute(); }); };
  Agent.prototype.unmute = function () { return withCallbacks(function () { return needSession().agent.unmute(); }); };
  function setDevice(kind, event) {
    return function (deviceId) {
      return withCallbacks(function () { return needSession().agent.setDevice(kind, String(deviceId || '')); }).then(function () {
        bus.trigger(event, { deviceId: deviceId });
      });
    };
  }
  Agent.prototype.setSpeakerDevice = setDevice('speaker', ConfigurationEvents.SPEAKER_DEVICE_CHANGED);
  Agent.prototype.setMicrophoneDevice = setDevice('microphone', ConfigurationEvents.MICROPHONE_DEVICE_CHANGED);
  Agent.prototype.setRingerDevice = setDevice('ringer', ConfigurationEvents.RINGER_DEVICE_CHANGED);
  Agent.prototype.setConfiguration = function (config, callbacks) {
    var current = this._data().configuration;
    var wantsDeskphone = config && config.softphoneEnabled === false;
    if (wantsDeskphone) return failWith(notSupported('deskphone mode (softphoneEnabled: false)'), callbacks);
    if (config && config.extension && config.extension !== current.extension) return failWith(notSupported('deskphone extensions'), callbacks);
    // Locale and preferences are the CCP's own settings; nothing to change.
    return withCallbacks(function () { return undefined; }, callbacks);
  };
  Agent.prototype.getVoiceEnhancementMode = function () { return null; };
  Agent.prototype.setVoiceEnhancementMode = function (_mode, callbacks) { return failWith(notSupported('voice enhancement modes'), callbacks); };
  Agent.prototype.getNetworkConnectionStatus = function () { return networkStatus(state.lastLink); };

  // ---- wiring the SDK session ------------------------------------------------------

  function networkStatus(link) {
    if (link === 'open') return NetworkConnectionStatus.CONNECTED;
    if (link === 'connecting' || link === 'reconnecting') return NetworkConnectionStatus.CONNECTING;
    return NetworkConnectionStatus.DISCONNECTED;
  }

  var STATE_EVENTS = ['agentRefresh', 'stateChange', 'incoming', 'connecting', 'accepted', 'connected', 'missed',
    'ended', 'destroyed', 'contactRefresh', 'afterCallWork', 'loggedIn'];

  function wire(session) {
    STATE_EVENTS.forEach(function (name) { session.on(name, queueUpdate); });
    // Streams fires AUTHORIZE_SUCCESS when the CCP renews its authorization;
    // a revoked login (logged out elsewhere) is access denied. An expired
    // one reaches onAuthFail through loginRequired, as a logged-out CCP does.
    session.on('tokenRefreshed', function () { bus.trigger(EventType.AUTHORIZE_SUCCESS); });
    session.on('sessionExpired', function (err) {
      if (err && err.code === 'token_revoked') bus.trigger(EventType.ACCESS_DENIED);
    });
    session.on('loginRequired', function () {
      bus.trigger(EventType.AUTH_FAIL);
      if (state.agentData) bus.trigger(EventType.TERMINATED);
    });
    session.on('link', function (link) {
      var before = state.lastLink;
      state.lastLink = link;
      if (before === 'open' && link !== 'open' && link !== 'logged_out') bus.trigger(AgentEvents.WEBSOCKET_CONNECTION_LOST, { link: link });
      if (before && before !== 'open' && link === 'open') bus.trigger(AgentEvents.WEBSOCKET_CONNECTION_GAINED, { link: link });
      if (networkStatus(before) !== networkStatus(link)) {
        bus.trigger('agent::network_connection_status_changed', { status: networkStatus(link), previousStatus: networkStatus(before) });
      }
    });
    // The CCP frame loaded again (moved in the page, reloaded) and the SDK
    // opened a new frame session with it. Streams reports a reloaded CCP by
    // the new document's ACKNOWLEDGE on the event bus; subscriptions and
    // the agent's data carry on, and the next diff fires what changed.
    session.on('frameReloaded', function (info) {
      Log.info('the CCP frame reloaded (load %s); new frame session', info && info.loads);
      bus.trigger(EventType.ACKNOWLEDGE, { id: 'switchboard-frame-' + (info && info.loads) });
      queueUpdate();
    });
    session.on('error', function (err) {
      // A CCP frame that stopped answering: Streams' retries-exhausted signal.
      if (err && err.code === 'frame_lost') bus.trigger(EventType.IFRAME_RETRIES_EXHAUSTED);
    });
    session.on('softphoneError', function (err) {
      var code = err && err.code;
      var type = code === 'microphone_denied' || code === 'microphone_not_shared' ? SoftphoneErrorTypes.MICROPHONE_NOT_SHARED
        : contains(values(SoftphoneErrorTypes), code) ? code : SoftphoneErrorTypes.OTHER;
      bus.trigger(AgentEvents.SOFTPHONE_ERROR, { errorType: type, errorMessage: err && err.message, endPointUrl: null, switchboardCode: code });
    });
  }

  function markInitialized() {
    if (state.initialized) return;
    state.initialized = true;
    connect.core.initialized = true;
    bus.trigger(EventType.ACKNOWLEDGE);
    bus.trigger(EventType.AUTHORIZE_SUCCESS);
    bus.trigger(EventType.INIT);
  }

  // ---- connect.core --------------------------------------------------------------

  function initCCP(container, options) {
    if (state.options) { Log.warn('initCCP was already called; ignoring the second call (as Streams does)'); return; }
    if (!options || typeof options.ccpUrl !== 'string') throw new Error('initCCP needs { ccpUrl }');
    state.options = options;
    state.terminated = false;
    var soft = options.softphone || {};
    var url = new URL(options.ccpUrl, global.location ? global.location.href : undefined);
    if (soft.disableRingtone) url.searchParams.set('ringtone', 'off');
    else if (soft.ringtoneUrl) url.searchParams.set('ringtone', new URL(soft.ringtoneUrl, url.href).href);
    // Streams integrations hide the CCP with CSS on its container. A frame
    // inside a display:none container is not rendered (and may be
    // throttled), so such a CCP goes to the SDK's hidden mode instead: a
    // rendered, invisible frame on the page's body.
    var hidden = !!(container && global.getComputedStyle && global.getComputedStyle(container).display === 'none');
    if (hidden && doc) container = doc.body;
    var initTimeout = options.ccpLoadTimeout || options.ccpAckTimeout || 5000;
    loadSdk().then(function (sdk) {
      if (sdk && Array.isArray(sdk.ERROR_CODES)) errorCodes = sdk.ERROR_CODES;
      return sdk.init({ ccpUrl: url.href, container: container || (doc && doc.body), hidden: hidden, timeoutMs: initTimeout });
    }).then(function (session) {
      if (state.terminated) { session.terminate(); return; }
      state.session = session;
      state.lastLink = session.link;
      wire(session);
      if (session.loggedIn) {
        markInitialized();
        update();
      } else {
        bus.trigger(EventType.AUTH_FAIL);
        if (options.loginPopup !== false) {
          session.login().catch(function (err) { Log.warn('login popup: %s', err && err.message); });
        }
        var off = session.on('loggedIn', function () { off(); markInitialized(); });
      }
    }).catch(function (err) {
      Log.error('initCCP failed: %s', err && err.message).withException(err);
      bus.trigger(EventType.ACK_TIMEOUT);
      bus.trigger(EventType.IFRAME_RETRIES_EXHAUSTED);
    });
  }

  function terminate() {
    var session = state.session;
    state.terminated = true;
    if (session) session.terminate();
    state.session = null;
    state.options = null;
    state.agentData = null;
    state.initialized = false;
    state.lastContacts = {};
    state.endedFired = {};
    state.acceptPending = {};
    connect.core.initialized = false;
    connect.agent.initialized = false;
    bus.trigger(EventType.TERMINATED);
    // Subscriptions die with the session, so a re-init starts clean
    // (duplicated subscriptions after re-init are a Streams complaint).
    bus.unsubscribeAll();
  }

  // The documented logout recipe sends TERMINATE upstream.
  var upstream = {
    sendUpstream: function (event, data) {
      if (event === EventType.TERMINATE) {
        var session = state.session;
        (session ? session.logout() : Promise.resolve()).catch(function (err) {
          Log.warn('logout: %s', err && err.message);
        }).then(function () { bus.trigger(EventType.TERMINATED); });
      } else {
        bus.trigger(event, data);
      }
    },
    onUpstream: function (event, f) { return bus.subscribe(event, f); },
  };

  function onBus(event) { return function (f) { return bus.subscribe(event, f); }; }

  function unsupportedNamespace(what) {
    return new Proxy({}, {
      get: function (_t, prop) {
        if (prop === 'then' || typeof prop === 'symbol') return undefined;
        return function () { throw notSupported(what + '.' + String(prop)); };
      },
    });
  }

  var connect = global.connect = {
    __switchboard: {
      // The ES module entry (and tests) hand the SDK module over instead of
      // letting initCCP import it from beside this script.
      useSdk: function (module) { sdkModule = Promise.resolve(module); },
      // The SDK session behind the facade, for pages that mix both APIs.
      session: function () { return state.session; },
      transitions: { contact: contactEvents, agentRouting: agentRoutingEvents, agentState: agentStateEvents },
    },
    core: {
      initialized: false,
      initCCP: initCCP,
      onInitialized: function (f) {
        var sub = bus.subscribe(EventType.INIT, f);
        if (state.initialized) { try { f(); } catch (err) { Log.error('onInitialized callback threw').withException(err); } }
        return sub;
      },
      onAuthFail: onBus(EventType.AUTH_FAIL),
      onAccessDenied: onBus(EventType.ACCESS_DENIED),
      onAuthorizeSuccess: onBus(EventType.AUTHORIZE_SUCCESS),
      onAuthorizeRetriesExhausted: onBus(EventType.AUTHORIZE_RETRIES_EXHAUSTED),
      onCTIAuthorizeRetriesExhausted: onBus(EventType.CTI_AUTHORIZE_RETRIES_EXHAUSTED),
      onIframeRetriesExhausted: onBus(EventType.IFRAME_RETRIES_EXHAUSTED),
      onSoftphoneSessionInit: onBus('connection::session_init'),
      onViewContact: onBus(ContactEvents.VIEW),
      viewContact: function (contactId) { bus.trigger(ContactEvents.VIEW, { contactId: contactId }); },
      getEventBus: function () { return bus; },
      getUpstream: function () { return upstream; },
      terminate: terminate,
      // The framed CCP always owns the softphone (its own audio engine), so
      // there is no separate softphone manager to start in the page.
      initSoftphoneManager: function () { Log.info('initSoftphoneManager: the Switchboard CCP frame owns the softphone'); },
      getSoftphoneManager: function () { return null; },
      getFrameMediaDevices: function () {
        return Promise.resolve().then(function () { return needSession().agent.devices(); }).then(function (list) {
          return list.map(function (d) {
            return { deviceId: d.id, kind: d.kind === 'speaker' ? 'audiooutput' : 'audioinput', label: d.label, groupId: '' };
          });
        });
      },
      reauthenticateAfterLogout: function () {
        var session = state.session;
        if (session) session.login().catch(function (err) { Log.warn('login popup: %s', err && err.message); });
      },
      getPopupManager: function () { return { clear: function () {}, open: function () {} }; },
      loginWindow: null,
      getSDKClientConfig: function () { throw notSupported('AmazonConnectSDK clients (getSDKClientConfig)'); },
      getWebSocketManager: function () { throw notSupported('the chat WebSocket manager'); },
      getAgentDataProvider: function () {
        return { getAgentData: function () { return agentData(); } };
      },
      // Switchboard extra: the SDK session behind the facade.
      getSession: function () { return state.session; },
    },
    agent: function (f) {
      var sub = bus.subscribe(AgentEvents.INIT, f);
      if (connect.agent.initialized) { try { f(new Agent()); } catch (err) { Log.error('connect.agent callback threw').withException(err); } }
      return sub;
    },
    contact: function (f) { return bus.subscribe(ContactEvents.INIT, f); },
    onWebsocketInitFailure: onBus(WebSocketEvents.INIT_FAILURE),
    onWebSocketInitFailure: onBus(WebSocketEvents.INIT_FAILURE),
    sendActivity: function () {},
    getLog: function () { return Log; },
    hitch: function (scope, f) {
      var bound = Array.prototype.slice.call(arguments, 2);
      if (!isFunction(f)) throw new Error('hitch needs a function');
      return function () { return f.apply(scope, bound.concat(Array.prototype.slice.call(arguments))); };
    },
    Agent: Agent,
    Contact: Contact,
    ContactSnapshot: ContactSnapshot,
    Connection: Connection,
    VoiceConnection: VoiceConnection,
    Endpoint: Endpoint,
    Address: Endpoint,
    SoftphoneError: function SoftphoneError(errorType, errorMessage, endPointUrl) {
      this.errorType = errorType; this.errorMessage = errorMessage; this.endPointUrl = endPointUrl;
    },
    StateError: StateError,
    EventBus: EventBus,
    agentApp: unsupportedNamespace('connect.agentApp'),
    ChatSession: unsupportedNamespace('connect.ChatSession'),
    AgentStateType: AgentStateType,
    AgentStatusType: AgentStateType,
    AgentAvailStates: AgentAvailStates,
    AgentErrorStates: AgentErrorStates,
    ContactStateType: ContactStateType,
    ContactStatusType: ContactStateType,
    CONTACT_ACTIVE_STATES: Object.freeze(CONTACT_ACTIVE_STATES.slice()),
    CONNECTION_ACTIVE_STATES: Object.freeze(CONNECTION_ACTIVE_STATES.slice()),
    ConnectionStateType: ConnectionStateType,
    ConnectionStatusType: ConnectionStateType,
    ConnectionType: ConnectionType,
    ContactType: ContactType,
    EndpointType: EndpointType,
    AddressType: EndpointType,
    ContactInitiationMethod: ContactInitiationMethod,
    ChannelType: ChannelType,
    MediaType: MediaType,
    MonitoringMode: MonitoringMode,
    MonitoringErrorTypes: MonitoringErrorTypes,
    SoftphoneCallType: SoftphoneCallType,
    SoftphoneErrorTypes: SoftphoneErrorTypes,
    NetworkConnectionStatus: NetworkConnectionStatus,
    LogLevel: LogLevel,
    ClickType: ClickType,
    EventType: EventType,
    AgentEvents: AgentEvents,
    ContactEvents: ContactEvents,
    WebSocketEvents: WebSocketEvents,
    ConfigurationEvents: ConfigurationEvents,
    VoiceEnhancementEvents: VoiceEnhancementEvents,
  };
  connect.agent.initialized = false;
  connect.core.getContactEventName = contactEventName;
})(typeof globalThis !== 'undefined' ? globalThis : window);

// Amazon Connect Streams compatibility facade for the Switchboard SDK.
//
// A page written against the documented Streams API runs against a
// Switchboard backend by swapping its script tag for this one:
//
//   <script src="http://127.0.0.1:8480/ccp/sdk/connect-streams.js"></script>
//   connect.core.initCCP(div, { ccpUrl: 'http://127.0.0.1:8480/ccp/', loginPopup: true });
//   connect.agent((agent) => agent.onStateChange(({ newState }) => ...));
//   connect.contact((contact) => contact.onIncoming(() => contact.accept()));
//
// It is a classic script (Streams integrations load it that way) that
// defines the global `connect` and loads the SDK module it sits beside.
// Objects are live views like Streams': each getter reads the latest state.
// Callback-style actions take `{ success, failure }`; `failure` receives a
// JSON string `{"type": code, "message": ...}` and the SwitchboardError.
(function () {
  'use strict';
  if (window.connect && window.connect.__switchboard) return;

  var script = document.currentScript;
  var sdkUrl = new URL('switchboard.js', script ? script.src : location.href).href;
  var sdkPromise = null;
  function loadSdk() {
    if (!sdkPromise) sdkPromise = import(sdkUrl);
    return sdkPromise;
  }

  var AgentStateType = Object.freeze({ INIT: 'init', ROUTABLE: 'routable', NOT_ROUTABLE: 'not_routable', OFFLINE: 'offline', SYSTEM: 'system' });
  var ContactStateType = Object.freeze({
    INIT: 'init', INCOMING: 'incoming', PENDING: 'pending', CONNECTING: 'connecting',
    CONNECTED: 'connected', MISSED: 'missed', ERROR: 'error', ENDED: 'ended', REJECTED: 'rejected',
  });
  var ConnectionStateType = Object.freeze({ INIT: 'init', CONNECTING: 'connecting', CONNECTED: 'connected', HOLD: 'hold', DISCONNECTED: 'disconnected' });
  var ConnectionType = Object.freeze({ AGENT: 'agent', INBOUND: 'inbound', OUTBOUND: 'outbound', MONITORING: 'monitoring' });
  var ContactType = Object.freeze({ VOICE: 'voice', QUEUE_CALLBACK: 'queue_callback', CHAT: 'chat', TASK: 'task' });
  var EndpointType = Object.freeze({ PHONE_NUMBER: 'phone_number', AGENT: 'agent', QUEUE: 'queue' });

  var state = {
    session: null,
    initialized: false,
    options: null,
    agentCallbacks: [],
    contactCallbacks: [],
    initCallbacks: [],
    authFailCallbacks: [],
    accessDeniedCallbacks: [],
    authorizeSuccessCallbacks: [],
    agentHandlers: {},       // event -> [cb]
    contactHandlers: {},     // contactId -> event -> [cb]
    contacts: {},            // contactId -> CompatContact
    agent: null,
  };

  function log(msg, err) { console.warn('[connect-streams] ' + msg, err || ''); }

  function call(cb, arg) {
    try { cb(arg); } catch (err) { log('a callback threw', err); }
  }

  // Runs a promise-returning action with Streams-style callbacks.
  function withCallbacks(run, callbacks, map) {
    var cbs = callbacks || {};
    var p;
    try { p = Promise.resolve(run()); } catch (err) { p = Promise.reject(err); }
    return p.then(function (v) {
      var data = map ? map(v) : v;
      if (typeof cbs.success === 'function') call(cbs.success, data);
      return data;
    }, function (err) {
      var text = JSON.stringify({ type: (err && err.code) || 'unknown', message: (err && err.message) || String(err) });
      if (typeof cbs.failure === 'function') { try { cbs.failure(text, err); } catch (e) { log('a failure callback threw', e); } }
      else log('action failed: ' + text);
    });
  }

  function on(table, key, cb) {
    if (typeof cb !== 'function') return function () {};
    (table[key] = table[key] || []).push(cb);
    return function () { table[key] = (table[key] || []).filter(function (f) { return f !== cb; }); };
  }

  function fire(table, key, arg) { (table[key] || []).slice().forEach(function (cb) { call(cb, arg); }); }

  // ---- endpoints -----------------------------------------------------------

  function toCompatEndpoint(e) {
    return {
      endpointARN: e.id, endpointId: e.id, type: e.kind, name: e.name,
      phoneNumber: e.phone_number || null, agentLogin: e.agent || null, queue: e.queue || null,
      _switchboard: e,
    };
  }
  function fromCompatEndpoint(e) {
    if (!e || typeof e !== 'object') return e;
    if (e._switchboard) return e._switchboard;
    if (e.type === EndpointType.PHONE_NUMBER && e.phoneNumber) {
      return { id: 'phone:' + e.phoneNumber, kind: 'phone_number', name: e.name || e.phoneNumber, phone_number: e.phoneNumber };
    }
    return e;
  }
  function Endpoint(raw) { Object.assign(this, raw); }
  Endpoint.byPhoneNumber = function (number, name) {
    return new Endpoint({
      endpointARN: 'phone:' + number, endpointId: 'phone:' + number, type: EndpointType.PHONE_NUMBER,
      name: name || number, phoneNumber: number, agentLogin: null, queue: null,
    });
  };

  // ---- connections --------------------------------------------------------

  function CompatConnection(contact, id) { this._contact = contact; this.connectionId = id; }
  CompatConnection.prototype._raw = function () {
    var c = this._contact._raw();
    var id = this.connectionId;
    return c && c.connections.find(function (k) { return k.id === id; });
  };
  CompatConnection.prototype.getConnectionId = function () { return this.connectionId; };
  CompatConnection.prototype.getContactId = function () { return this._contact.contactId; };
  CompatConnection.prototype.getEndpoint = function () { var k = this._raw(); return k ? toCompatEndpoint(k.endpoint) : null; };
  CompatConnection.prototype.getAddress = CompatConnection.prototype.getEndpoint;
  CompatConnection.prototype.getState = function () {
    var k = this._raw();
    return { type: k ? k.state : ConnectionStateType.DISCONNECTED, timestamp: k && k.since ? new Date(k.since) : null };
  };
  CompatConnection.prototype.getStatus = CompatConnection.prototype.getState;
  CompatConnection.prototype.getStateDuration = function () { var k = this._raw(); return k && k.since ? Date.now() - k.since : 0; };
  CompatConnection.prototype.getType = function () { var k = this._raw(); return k ? k.kind : null; };
  CompatConnection.prototype.isInitialConnection = function () { var k = this._raw(); return !!k && k.isInitial; };
  CompatConnection.prototype.isActive = function () { var k = this._raw(); return !!k && k.isActive; };
  CompatConnection.prototype.isConnected = function () { var k = this._raw(); return !!k && k.state === 'connected'; };
  CompatConnection.prototype.isConnecting = function () { var k = this._raw(); return !!k && k.state === 'connecting'; };
  CompatConnection.prototype.isOnHold = function () { var k = this._raw(); return !!k && k.isOnHold; };
  CompatConnection.prototype._act = function (name, args, callbacks) {
    var self = this;
    return withCallbacks(function () {
      var k = self._raw();
      if (!k) throw Object.assign(new Error('connection ' + self.connectionId + ' is gone'), { code: 'not_found' });
      return k[name].apply(k, args);
    }, callbacks);
  };
  CompatConnection.prototype.hold = function (cb) { return this._act('hold', [], cb); };
  CompatConnection.prototype.resume = function (cb) { return this._act('resume', [], cb); };
  CompatConnection.prototype.sendDigits = function (digits, cb) { return this._act('sendDigits', [digits], cb); };
  CompatConnection.prototype.destroy = function (cb) { return this._act('end', [], cb); };

  // ---- contacts -----------------------------------------------------------

  function CompatContact(id) { this.contactId = id; this._last = null; }
  CompatContact.prototype._raw = function () {
    var c = state.session && state.session.contact(this.contactId);
    if (c) this._last = c;
    return c || this._last;
  };
  CompatContact.prototype._on = function (event, cb) {
    var table = state.contactHandlers[this.contactId] = state.contactHandlers[this.contactId] || {};
    return on(table, event, cb);
  };
  ['Refresh', 'Incoming', 'Connecting', 'Pending', 'Accepted', 'Connected', 'Missed', 'Ended', 'Destroy', 'ACW', 'Error']
    .forEach(function (name) {
      CompatContact.prototype['on' + name] = function (cb) { return this._on(name, cb); };
    });
  CompatContact.prototype.getContactId = function () { return this.contactId; };
  CompatContact.prototype.getInitialContactId = function () { return this.contactId; };
  CompatContact.prototype.getType = function () { return ContactType.VOICE; };
  CompatContact.prototype.getStatus = function () {
    var c = this._raw();
    return { type: c ? c.state : ContactStateType.ENDED, timestamp: c && c.since ? new Date(c.since) : null };
  };
  CompatContact.prototype.getState = CompatContact.prototype.getStatus;
  CompatContact.prototype.getStatusDuration = function () { var c = this._raw(); return c && c.since ? Date.now() - c.since : 0; };
  CompatContact.prototype.getQueue = function () {
    var c = this._raw();
    return c && c.queue ? { name: c.queue.name, queueARN: c.queue.id, queueId: c.queue.id } : null;
  };
  CompatContact.prototype.getQueueTimestamp = function () { var c = this._raw(); return c ? new Date(c.createdAt) : null; };
  CompatContact.prototype.getAttributes = function () {
    var c = this._raw();
    var out = {};
    if (c) Object.keys(c.attributes).forEach(function (k) { out[k] = { name: k, value: c.attributes[k] }; });
    return out;
  };
  CompatContact.prototype.isInbound = function () { var c = this._raw(); return !!c && c.initiation !== 'outbound'; };
  CompatContact.prototype.isConnected = function () { var c = this._raw(); return !!c && c.state === 'connected'; };
  CompatContact.prototype.isSoftphoneCall = function () { return true; };
  CompatContact.prototype.getConnections = function () {
    var self = this;
    var c = this._raw();
    return c ? c.connections.map(function (k) { return new CompatConnection(self, k.id); }) : [];
  };
  CompatContact.prototype.getInitialConnection = function () {
    var c = this._raw();
    var k = c && c.initialConnection;
    return k ? new CompatConnection(this, k.id) : null;
  };
  CompatContact.prototype.getActiveInitialConnection = function () {
    var k = this.getInitialConnection();
    return k && k.isActive() ? k : null;
  };
  CompatContact.prototype.getAgentConnection = function () {
    var c = this._raw();
    var k = c && c.agentConnection;
    return k ? new CompatConnection(this, k.id) : null;
  };
  CompatContact.prototype.getThirdPartyConnections = function () {
    var self = this;
    var c = this._raw();
    return c ? c.thirdPartyConnections.map(function (k) { return new CompatConnection(self, k.id); }) : [];
  };
  CompatContact.prototype.getSingleActiveThirdPartyConnection = function () {
    return this.getThirdPartyConnections().filter(function (k) { return k.isActive(); })[0] || null;
  };
  CompatContact.prototype._act = function (run, callbacks, map) {
    var self = this;
    return withCallbacks(function () {
      var c = state.session && state.session.contact(self.contactId);
      if (!c) throw Object.assign(new Error('contact ' + self.contactId + ' is gone'), { code: 'not_found' });
      return run(c);
    }, callbacks, map);
  };
  CompatContact.prototype.accept = function (cb) { return this._act(function (c) { return c.accept(); }, cb); };
  CompatContact.prototype.reject = function (cb) { return this._act(function (c) { return c.reject(); }, cb); };
  CompatContact.prototype.clear = function (cb) { return this._act(function (c) { return c.clear(); }, cb); };
  // Streams' destroy() hangs up a live call and clears a finished one.
  CompatContact.prototype.destroy = function (cb) {
    return this._act(function (c) {
      var mine = c.agentConnection;
      return c.state === 'connected' && mine ? mine.end() : c.clear();
    }, cb);
  };
  CompatContact.prototype.addConnection = function (endpoint, cb) {
    return this._act(function (c) { return c.addConnection(fromCompatEndpoint(endpoint)); }, cb);
  };
  CompatContact.prototype.conferenceConnections = function (cb) { return this._act(function (c) { return c.conference(); }, cb); };
  CompatContact.prototype.toggleActiveConnections = function (cb) { return this._act(function (c) { return c.toggle(); }, cb); };
  CompatContact.prototype.updateContactAttributes = function (attrs, cb) {
    return this._act(function (c) { return c.updateAttributes(attrs); }, cb);
  };

  function compatContact(id) {
    return state.contacts[id] = state.contacts[id] || new CompatContact(id);
  }

  // ---- the agent ----------------------------------------------------------

  function CompatAgent() {}
  ['Refresh', 'StateChange', 'Routable', 'NotRoutable', 'Offline', 'Error', 'SoftphoneError', 'AfterCallWork', 'ContactPending', 'MuteToggle']
    .forEach(function (name) {
      CompatAgent.prototype['on' + name] = function (cb) { return on(state.agentHandlers, name, cb); };
    });
  CompatAgent.prototype._a = function () { return state.session.agent; };
  CompatAgent.prototype.getState = function () {
    var s = this._a().state;
    return { type: s.kind, name: s.name, startTimestamp: new Date(s.since), agentStateARN: s.name };
  };
  CompatAgent.prototype.getStatus = CompatAgent.prototype.getState;
  CompatAgent.prototype.getAvailabilityState = CompatAgent.prototype.getState;
  CompatAgent.prototype.getNextState = function () {
    var n = this._a().state.next;
    return n ? { type: n.kind, name: n.name, agentStateARN: n.name } : null;
  };
  CompatAgent.prototype.getStateDuration = function () { return Date.now() - this._a().state.since; };
  CompatAgent.prototype.getAgentStates = function () {
    return this._a().states.map(function (s) { return { type: s.kind, name: s.name, agentStateARN: s.name }; });
  };
  CompatAgent.prototype.setState = function (st, cb) {
    var self = this;
    return withCallbacks(function () { return self._a().setState(typeof st === 'string' ? st : st && st.name); }, cb);
  };
  CompatAgent.prototype.getConfiguration = function () {
    var c = this._a().configuration;
    return {
      name: c.name, username: c.username, softphoneEnabled: c.softphone_enabled,
      routingProfile: this.getRoutingProfile(), extension: null, agentPreferences: {},
    };
  };
  CompatAgent.prototype.getRoutingProfile = function () {
    var p = this._a().routingProfile;
    var queues = p.queues.map(function (q) { return { queueARN: q.queue.id, queueId: q.queue.id, name: q.queue.name }; });
    return { name: p.name, routingProfileARN: p.id, routingProfileId: p.id, queues: queues, defaultOutboundQueue: queues[0] || null };
  };
  CompatAgent.prototype.getName = function () { return this._a().name; };
  CompatAgent.prototype.isSoftphoneEnabled = function () { return this._a().configuration.softphone_enabled; };
  CompatAgent.prototype.getContacts = function (type) {
    return state.session.contacts
      .filter(function () { return !type || type === ContactType.VOICE; })
      .map(function (c) { return compatContact(c.id); });
  };
  CompatAgent.prototype.getEndpoints = function (_queueARNs, cb) {
    var self = this;
    return withCallbacks(function () { return self._a().quickConnects(); }, cb, function (list) {
      var endpoints = list.map(toCompatEndpoint);
      return { endpoints: endpoints, addresses: endpoints };
    });
  };
  CompatAgent.prototype.getAllQueueARNs = function () {
    return this.getRoutingProfile().queues.map(function (q) { return q.queueARN; });
  };
  CompatAgent.prototype.connect = function (endpoint, cb) {
    var self = this;
    return withCallbacks(function () { return self._a().connect(fromCompatEndpoint(endpoint)); }, cb);
  };
  CompatAgent.prototype.mute = function () { return withCallbacks(function () { return state.session.agent.mute(); }); };
  CompatAgent.prototype.unmute = function () { return withCallbacks(function () { return state.session.agent.unmute(); }); };
  CompatAgent.prototype.toSnapshot = function () { return this; };

  // ---- wiring the session's events -----------------------------------------

  function announceAgent() {
    if (state.agent || !state.session || !state.session.loggedIn) return;
    try { state.session.agent.state; } catch (_) { return; }
    state.agent = new CompatAgent();
    state.agentCallbacks.forEach(function (cb) { call(cb, state.agent); });
  }

  function ensureContact(id) {
    var known = !!state.contacts[id];
    var c = compatContact(id);
    if (!known) state.contactCallbacks.forEach(function (cb) { call(cb, c); });
    return c;
  }

  function contactEvent(streamsName) {
    return function (contact) {
      var c = ensureContact(contact.id);
      fire(state.contactHandlers[contact.id] || {}, streamsName, c);
      fire(state.contactHandlers[contact.id] || {}, 'Refresh', c);
    };
  }

  function wire(session) {
    session.on('loggedIn', function () { announceAgent(); markInitialized(); });
    session.on('loginRequired', function () { state.authFailCallbacks.forEach(function (cb) { call(cb); }); });
    // Streams fires AUTHORIZE_SUCCESS when the CCP renews its authorization;
    // a revoked login (logged out elsewhere) is access denied. An expired
    // one reaches onAuthFail through loginRequired, as a logged-out CCP does.
    session.on('tokenRefreshed', function () { state.authorizeSuccessCallbacks.forEach(function (cb) { call(cb); }); });
    session.on('sessionExpired', function (err) {
      if (err.code === 'token_revoked') state.accessDeniedCallbacks.forEach(function (cb) { call(cb); });
    });
    session.on('agentRefresh', function () {
      announceAgent();
      if (state.agent) fire(state.agentHandlers, 'Refresh', state.agent);
    });
    session.on('stateChange', function (e) {
      announceAgent();
      if (!state.agent) return;
      fire(state.agentHandlers, 'StateChange', {
        agent: state.agent, oldState: e.previous ? e.previous.name : null, newState: e.state.name,
      });
    });
    session.on('routable', function () { if (state.agent) fire(state.agentHandlers, 'Routable', state.agent); });
    session.on('notRoutable', function () { if (state.agent) fire(state.agentHandlers, 'NotRoutable', state.agent); });
    session.on('offline', function () { if (state.agent) fire(state.agentHandlers, 'Offline', state.agent); });
    session.on('error', function () { if (state.agent) fire(state.agentHandlers, 'Error', state.agent); });
    session.on('softphoneError', function (err) { fire(state.agentHandlers, 'SoftphoneError', { errorType: err.code, errorMessage: err.message }); });
    session.on('afterCallWork', function (contact) {
      if (state.agent) fire(state.agentHandlers, 'AfterCallWork', state.agent);
      var c = ensureContact(contact.id);
      fire(state.contactHandlers[contact.id] || {}, 'ACW', c);
    });
    session.on('incoming', contactEvent('Incoming'));
    session.on('connecting', contactEvent('Connecting'));
    session.on('accepted', contactEvent('Accepted'));
    session.on('connected', contactEvent('Connected'));
    session.on('missed', contactEvent('Missed'));
    session.on('ended', contactEvent('Ended'));
    session.on('contactRefresh', contactEvent('Refresh'));
    session.on('destroyed', function (e) {
      var c = state.contacts[e.id];
      if (!c) return;
      fire(state.contactHandlers[e.id] || {}, 'Destroy', c);
      delete state.contactHandlers[e.id];
      delete state.contacts[e.id];
    });
  }

  function markInitialized() {
    if (state.initialized || !state.session || !state.session.loggedIn) return;
    state.initialized = true;
    state.initCallbacks.forEach(function (cb) { call(cb); });
    // Contacts that existed before the page subscribed (e.g. after a reload).
    state.session.contacts.forEach(function (c) { ensureContact(c.id); });
  }

  // ---- connect.core -------------------------------------------------------

  function initCCP(container, options) {
    if (state.options) { log('initCCP was already called'); return; }
    if (!options || typeof options.ccpUrl !== 'string') throw new Error('initCCP needs { ccpUrl }');
    state.options = options;
    var soft = options.softphone || {};
    var url = new URL(options.ccpUrl, location.href);
    if (soft.disableRingtone) url.searchParams.set('ringtone', 'off');
    else if (soft.ringtoneUrl) url.searchParams.set('ringtone', new URL(soft.ringtoneUrl, location.href).href);
    var hidden = !!(container && container.style && container.style.display === 'none');
    loadSdk().then(function (sdk) {
      state.sdk = sdk;
      return sdk.init({
        ccpUrl: url.href,
        container: container || document.body,
        hidden: hidden,
        timeoutMs: options.ccpLoadTimeout || 5000,
      });
    }).then(function (session) {
      state.session = session;
      wire(session);
      if (session.loggedIn) {
        announceAgent();
        markInitialized();
      } else {
        state.authFailCallbacks.forEach(function (cb) { call(cb); });
        if (options.loginPopup !== false) {
          session.login().catch(function (err) { log('login popup: ' + err.message); });
        }
      }
    }).catch(function (err) {
      log('initCCP failed: ' + (err && err.message), err);
    });
  }

  window.connect = {
    __switchboard: true,
    core: {
      initCCP: initCCP,
      onInitialized: function (cb) {
        if (state.initialized) call(cb); else state.initCallbacks.push(cb);
      },
      onAuthFail: function (cb) { state.authFailCallbacks.push(cb); },
      onAccessDenied: function (cb) { if (typeof cb === 'function') state.accessDeniedCallbacks.push(cb); },
      onAuthorizeSuccess: function (cb) { if (typeof cb === 'function') state.authorizeSuccessCallbacks.push(cb); },
      loginWindow: null,
      getPopupManager: function () { return { clear: function () {} }; },
      terminate: function () {
        if (state.session) state.session.terminate();
        state.session = null;
        state.options = null;
        state.initialized = false;
        state.agent = null;
        state.contacts = {};
        state.contactHandlers = {};
        state.agentHandlers = {};
      },
      // Switchboard extra: the SDK session behind the facade.
      getSession: function () { return state.session; },
    },
    agent: function (cb) {
      if (typeof cb !== 'function') return;
      state.agentCallbacks.push(cb);
      if (state.agent) call(cb, state.agent);
    },
    contact: function (cb) {
      if (typeof cb !== 'function') return;
      state.contactCallbacks.push(cb);
    },
    Endpoint: Endpoint,
    AgentStateType: AgentStateType,
    ContactStateType: ContactStateType,
    ConnectionStateType: ConnectionStateType,
    ConnectionType: ConnectionType,
    ContactType: ContactType,
    EndpointType: EndpointType,
  };
})();

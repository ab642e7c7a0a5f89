// Switchboard SDK: embed the Switchboard CCP in a page and script it.
//
//   import { init } from 'http://127.0.0.1:8480/ccp/sdk/switchboard.js';
//   const session = await init({ ccpUrl: 'http://127.0.0.1:8480/ccp/', hidden: true });
//   session.on('incoming', (contact) => contact.accept());
//   await session.agent.setState('Available');
//
// Two transports, one API (docs/embedding.md):
// - frame (`init`): the CCP runs in an iframe on the backend's origin and
//   owns the backend connection and the audio; this module talks to it with
//   postMessage. Every message is a JSON string carrying the session's
//   nonce. Messages are accepted only from the iframe's own window and the
//   CCP's origin, and are posted only to that origin. Messages of the wrong
//   shape are dropped and logged, never acted on.
// - direct (`initDirect`): the client core (Rust, as wasm, loaded from
//   ./direct/) runs in this page with a WebSocket to the backend. It speaks
//   the same messages, so everything below is shared. No audio: a direct
//   session scripts an agent, it is not a softphone.
//
// Every action returns a Promise that resolves with the result or rejects
// with a SwitchboardError (a stable `code` and a message), and times out.
// Events are subscribed with `on(name, callback)`, which returns the
// function that unsubscribes. Payloads are frozen snapshots.

/** The frame protocol version this SDK speaks. */
export const FRAME_VERSION = 1;

// BEGIN ERROR_CODES: generated from protocol/src/error.rs and streams-sdk/src/errors.rs by `cargo xtask sdk-types`; do not edit.
/** Every error code the SDK reports (anything else becomes `unknown`). @type {ReadonlyArray<string>} */
export const ERROR_CODES = Object.freeze([
  'bad_json', 'bad_media_frame', 'unknown_type', 'unknown_op', 'bad_request', 'unsupported_version',
  'not_authenticated', 'auth_failed', 'already_authenticated', 'frame_too_large', 'not_found', 'not_owner',
  'invalid_state', 'invalid_argument', 'unsupported_endpoint', 'queue_full', 'queue_closed', 'no_media_leg',
  'login_throttled', 'session_expired', 'token_revoked', 'session_replaced', 'internal', 'rate_limited',
  'timeout', 'unknown', 'init_timeout', 'version_mismatch', 'not_logged_in', 'popup_blocked',
  'login_cancelled', 'terminated', 'frame_lost', 'not_initialized', 'not_supported', 'microphone_denied',
  'microphone_missing', 'microphone_removed', 'engine_failed',
]);
// END ERROR_CODES

const DEFAULT_INIT_TIMEOUT_MS = 5000;
// The CCP's core answers `timeout` itself 5 s after it sent a request to
// the backend, a follower tab 6 s after it relayed one to the leader tab
// (streams-sdk/src/deadlines.rs): the page waits for that verdict, and
// gives up on its own only after this backstop, for a CCP that stopped
// answering at all. So a page is not told `timeout` for an op the CCP then
// completes.
const DEFAULT_REQUEST_TIMEOUT_MS = 8000;
const HELLO_RETRY_MS = 100;
const PING_MS = 5000;
const FRAME_LOST_MS = 15000;
// A frame whose first load brought no word from a CCP document within
// this long is not the CCP: the browser refused it (frame-ancestors: this
// page's origin is not approved) or showed an error page. The CCP's
// loader says `loading` before the frame's load event (boot.js), however
// slowly its module then starts, so a slow CCP is not mistaken for one.
const BLOCKED_FRAME_MS = 1500;
/** What the CCP's loader posts to its parent as it starts (before the app has a frame session). */
const LOADING = '{"kind":"loading"}';

/**
 * Every failure the SDK reports. `code` is stable, one of `ERROR_CODES`
 * (generated from the Rust core's list): the backend's error codes
 * (`not_found`, `invalid_state`, `auth_failed`...), the core's `timeout`,
 * or one of the SDK's own: `init_timeout`, `version_mismatch`,
 * `not_logged_in`, `popup_blocked`, `login_cancelled`, `terminated`,
 * `frame_lost`. A code outside the list (from a newer CCP) is `unknown`.
 */
export class SwitchboardError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'SwitchboardError';
    /** @readonly @type {string} */
    this.code = ERROR_CODES.includes(code) ? code : 'unknown';
  }
}

/**
 * @typedef {object} AgentState
 * @property {string} name
 * @property {'routable'|'not_routable'|'offline'|'system'} kind
 */

/**
 * @typedef {object} AgentStatus
 * @property {string} name the current state's name
 * @property {'routable'|'not_routable'|'offline'|'system'} kind
 * @property {number} since when it was entered (ms since the epoch)
 * @property {AgentState | null} next a state chosen during a contact, applied after it
 */

/**
 * @typedef {object} QueueRef
 * @property {string} id
 * @property {string} name
 */

/**
 * @typedef {object} RoutingProfile
 * @property {string} id
 * @property {string} name
 * @property {ReadonlyArray<{queue: QueueRef, priority: number, delay_s: number}>} queues
 */

/**
 * @typedef {object} AgentConfiguration
 * @property {string} username
 * @property {string} name
 * @property {RoutingProfile} routing_profile
 * @property {boolean} softphone_enabled
 * @property {ReadonlyArray<string>} wrap_up_codes
 */

/**
 * A destination: a quick connect from `agent.quickConnects()`, or a number
 * from `Endpoint.phoneNumber()`.
 * @typedef {object} EndpointInfo
 * @property {string} id
 * @property {'phone_number'|'agent'|'queue'} kind
 * @property {string} name
 * @property {string} [phone_number]
 * @property {string} [agent]
 * @property {string} [queue]
 */

/**
 * @typedef {object} AudioDevice
 * @property {'microphone'|'speaker'} kind
 * @property {string} device_id
 * @property {string} label
 */

/**
 * @typedef {object} DirectOptions
 * @property {string} backendUrl the backend, e.g. `http://127.0.0.1:8480`
 * @property {string} [username] with `password`, to log in
 * @property {string} [password]
 * @property {string} [token] a token from an earlier login instead
 * @property {number} [timeoutMs] how long `initDirect` waits for the backend (default 5000)
 * @property {number} [requestTimeoutMs] the backstop for an action the core never answers (default 8000; the core itself answers `timeout` after 5000)
 */

/**
 * The core's side of the direct transport (`direct/core.js`).
 * @typedef {object} DirectCoreLike
 * @property {(text: string) => void} post
 * @property {() => void} close
 */

/**
 * @typedef {object} InitOptions
 * @property {string} ccpUrl where the CCP is, e.g. `http://127.0.0.1:8480/ccp/`
 * @property {HTMLElement} [container] where the iframe goes (default: `document.body`)
 * @property {boolean} [hidden] keep the CCP invisible; audio still plays
 * @property {number} [timeoutMs] how long `init` waits for the CCP (default 5000)
 * @property {number} [requestTimeoutMs] the backstop for an action the CCP never answers (default 8000; the CCP itself answers `timeout` after 5000, or 6000 in a follower tab, and a smaller backstop may report `timeout` for an action the CCP then completes)
 */

/** Ways to name a destination. */
export const Endpoint = Object.freeze({
  /**
   * An external phone number in E.164 form.
   * @param {string} number
   * @returns {EndpointInfo}
   */
  phoneNumber(number) {
    if (typeof number !== 'string' || !/^\+?[0-9]{3,20}$/.test(number)) {
      throw new SwitchboardError('invalid_argument', `not a phone number: ${String(number)}`);
    }
    return Object.freeze({ id: `phone:${number}`, kind: 'phone_number', name: number, phone_number: number });
  },
});

/**
 * @template T
 * @param {T} value
 * @returns {T}
 */
function deepFreeze(value) {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** @param {unknown} v @param {string} what */
function needString(v, what) {
  if (typeof v !== 'string' || v.length === 0) {
    throw new SwitchboardError('invalid_argument', `${what} must be a non-empty string`);
  }
}

/** One leg of a contact, as of the snapshot it came with. */
export class Connection {
  /**
   * @param {Session} session
   * @param {string} contactId
   * @param {any} raw
   */
  constructor(session, contactId, raw) {
    /** @readonly @type {string} */
    this.id = raw.connection_id;
    /** @readonly @type {string} */
    this.contactId = contactId;
    /** @readonly @type {'agent'|'inbound'|'outbound'|'third_party'} */
    this.kind = raw.kind;
    /** @readonly @type {EndpointInfo} */
    this.endpoint = deepFreeze({ ...raw.endpoint });
    /** @readonly @type {'init'|'connecting'|'connected'|'hold'|'disconnected'} */
    this.state = raw.state.name;
    /** @readonly @type {number | null} */
    this.since = raw.state.since ?? null;
    /** @type {Session} */
    this.#session = session;
    Object.freeze(this);
  }

  /** @type {Session} */
  #session;

  /** Whether this is the customer's leg. */
  get isInitial() { return this.kind === 'inbound' || this.kind === 'outbound'; }
  /** Whether it is talking or held. */
  get isActive() { return this.state === 'connected' || this.state === 'hold'; }
  /** Whether it is on hold. */
  get isOnHold() { return this.state === 'hold'; }

  /** @returns {Promise<void>} */
  hold() { return this.#session._ack({ op: 'hold', contact_id: this.contactId, connection_id: this.id }); }
  /** @returns {Promise<void>} */
  resume() { return this.#session._ack({ op: 'resume', contact_id: this.contactId, connection_id: this.id }); }
  /**
   * Sends DTMF digits (`0-9 * # A-D ,`).
   * @param {string} digits
   * @returns {Promise<void>}
   */
  sendDigits(digits) {
    needString(digits, 'digits');
    return this.#session._ack({ op: 'send_digits', contact_id: this.contactId, connection_id: this.id, digits });
  }
  /** Hangs this leg up. @returns {Promise<void>} */
  end() { return this.#session._ack({ op: 'end_connection', contact_id: this.contactId, connection_id: this.id }); }
}

/** A contact (a call), as of the snapshot it came with. */
export class Contact {
  /**
   * @param {Session} session
   * @param {any} raw
   */
  constructor(session, raw) {
    /** @readonly @type {string} */
    this.id = raw.contact_id;
    /** Streams' contact type: a queued callback is `queue_callback`. @readonly @type {'voice'|'queue_callback'} */
    this.type = raw.initiation === 'callback' ? 'queue_callback' : 'voice';
    /** @readonly @type {'init'|'incoming'|'connecting'|'connected'|'ended'|'missed'|'rejected'|'error'} */
    this.state = raw.state.name;
    /** @readonly @type {number | null} */
    this.since = raw.state.since ?? null;
    /** @readonly @type {'inbound'|'outbound'|'transfer'|'callback'} */
    this.initiation = raw.initiation;
    /** @readonly @type {QueueRef | null} */
    this.queue = raw.queue ? deepFreeze({ ...raw.queue }) : null;
    /** @readonly @type {Readonly<Record<string, string>>} */
    this.attributes = deepFreeze({ ...raw.attributes });
    /** @readonly @type {ReadonlyArray<Connection>} */
    this.connections = Object.freeze(raw.connections.map((/** @type {any} */ k) => new Connection(session, this.id, k)));
    /** @readonly @type {number} */
    this.createdAt = raw.created_at;
    /** @type {Session} */
    this.#session = session;
    Object.freeze(this);
  }

  /** @type {Session} */
  #session;

  /** The customer's connection. @returns {Connection | undefined} */
  get initialConnection() { return this.connections.find((k) => k.isInitial); }
  /** The agent's own connection. @returns {Connection | undefined} */
  get agentConnection() { return this.connections.find((k) => k.kind === 'agent'); }
  /** Other agents or numbers added to the contact. @returns {Connection[]} */
  get thirdPartyConnections() { return this.connections.filter((k) => k.kind === 'third_party'); }

  /** @returns {Promise<void>} */
  accept() { return this.#session._ack({ op: 'accept', contact_id: this.id }); }
  /** @returns {Promise<void>} */
  reject() { return this.#session._ack({ op: 'reject', contact_id: this.id }); }
  /**
   * Ends after-call work (or dismisses a missed contact).
   * @param {string} [wrapUpCode] one of the agent configuration's codes
   * @returns {Promise<void>}
   */
  clear(wrapUpCode) {
    /** @type {any} */
    const op = { op: 'clear', contact_id: this.id };
    if (wrapUpCode !== undefined) { needString(wrapUpCode, 'wrapUpCode'); op.wrap_up_code = wrapUpCode; }
    return this.#session._ack(op);
  }
  /**
   * Adds a third party (consult or transfer); the customer goes on hold.
   * @param {EndpointInfo} endpoint
   * @returns {Promise<string>} the new connection's id
   */
  async addConnection(endpoint) {
    if (!endpoint || typeof endpoint !== 'object' || typeof endpoint.id !== 'string') {
      throw new SwitchboardError('invalid_argument', 'endpoint must come from quickConnects() or Endpoint.phoneNumber()');
    }
    const r = await this.#session._op({ op: 'add_connection', contact_id: this.id, endpoint });
    return r.connection_id;
  }
  /** Joins every active connection. @returns {Promise<void>} */
  conference() { return this.#session._ack({ op: 'conference', contact_id: this.id }); }
  /** Swaps which of two connections is on hold. @returns {Promise<void>} */
  toggle() { return this.#session._ack({ op: 'toggle', contact_id: this.id }); }
  /**
   * Sets contact attributes.
   * @param {Record<string, string>} attributes
   * @returns {Promise<void>}
   */
  updateAttributes(attributes) {
    if (!attributes || typeof attributes !== 'object' || Object.values(attributes).some((v) => typeof v !== 'string')) {
      throw new SwitchboardError('invalid_argument', 'attributes must map names to strings');
    }
    return this.#session._ack({ op: 'update_attributes', contact_id: this.id, attributes: { ...attributes } });
  }
}

/** The logged-in agent. Getters read the latest snapshot. */
export class Agent {
  /** @param {Session} session */
  constructor(session) {
    this.#session = session;
    Object.freeze(this);
  }

  /** @type {Session} */
  #session;

  /** @returns {any} */
  get #raw() {
    const a = this.#session._agent;
    if (!a) throw new SwitchboardError('not_logged_in', 'no agent is logged in to the CCP');
    return a;
  }

  /** @returns {AgentStatus} */
  get state() { return this.#session._status; }
  /** The states the agent may choose. @returns {ReadonlyArray<AgentState>} */
  get states() { return this.#raw.states; }
  /** @returns {AgentConfiguration} */
  get configuration() { return this.#raw.configuration; }
  /** @returns {RoutingProfile} */
  get routingProfile() { return this.#raw.configuration.routing_profile; }
  /** @returns {string} */
  get name() { return this.#raw.configuration.name; }
  /** @returns {boolean} */
  get muted() { return this.#raw.muted; }

  /**
   * Chooses a state by name; during a contact it becomes the next state.
   * @param {string} name
   * @returns {Promise<void>}
   */
  setState(name) {
    needString(name, 'state name');
    return this.#session._ack({ op: 'set_agent_state', state: name });
  }
  /** Agents, queues and numbers to transfer or call. @returns {Promise<ReadonlyArray<EndpointInfo>>} */
  async quickConnects() {
    const r = await this.#session._op({ op: 'list_quick_connects' });
    return deepFreeze(r.endpoints);
  }
  /**
   * Places an outbound call.
   * @param {EndpointInfo} endpoint
   * @returns {Promise<string>} the new contact's id
   */
  async connect(endpoint) {
    if (!endpoint || typeof endpoint !== 'object' || typeof endpoint.id !== 'string') {
      throw new SwitchboardError('invalid_argument', 'endpoint must come from quickConnects() or Endpoint.phoneNumber()');
    }
    const r = await this.#session._op({ op: 'connect', endpoint });
    return r.contact_id;
  }
  /** @returns {Promise<void>} */
  mute() { return this.#session._ack({ op: 'mute' }); }
  /** @returns {Promise<void>} */
  unmute() { return this.#session._ack({ op: 'unmute' }); }
  /** The browser's audio devices, as the CCP sees them. @returns {Promise<ReadonlyArray<AudioDevice>>} */
  async devices() { return deepFreeze(await this.#session._action({ action: 'list_devices' })); }
  /**
   * Chooses a device (empty id: the default). Applies from the next call.
   * @param {'microphone'|'speaker'|'ringer'} device
   * @param {string} deviceId
   * @returns {Promise<void>}
   */
  async setDevice(device, deviceId) {
    if (!['microphone', 'speaker', 'ringer'].includes(device) || typeof deviceId !== 'string') {
      throw new SwitchboardError('invalid_argument', 'setDevice(microphone|speaker|ringer, deviceId)');
    }
    await this.#session._action({ action: 'set_device', device, device_id: deviceId });
  }
}

/**
 * The events a session emits and what each callback receives.
 * @typedef {object} SessionEvents
 * @property {{state: AgentStatus, previous: AgentStatus | null}} stateChange the agent's state changed
 * @property {AgentStatus} routable the agent became routable (e.g. Available)
 * @property {AgentStatus} notRoutable the agent chose a not-routable state
 * @property {AgentStatus} offline the agent went offline
 * @property {Contact} afterCallWork a contact entered after-call work
 * @property {Agent} agentRefresh anything about the agent changed
 * @property {Contact} incoming a contact is ringing
 * @property {Contact} connecting an outbound contact is dialing
 * @property {Contact} accepted the agent accepted a ringing contact
 * @property {Contact} connected the contact is connected
 * @property {Contact} missed it rang out
 * @property {Contact} ended the call ended for this agent
 * @property {{id: string}} destroyed the contact is gone (cleared, rejected)
 * @property {Contact} contactRefresh any other contact change (hold, attributes)
 * @property {void} loginRequired the CCP is not logged in; call `login()`
 * @property {void} loggedIn the CCP logged in
 * @property {string} link the CCP's backend link: `open`, `connecting`, `reconnecting`, `closed`, `logged_out`
 * @property {boolean} leader whether this tab's CCP owns the softphone
 * @property {SwitchboardError} error something failed outside an action (lost frame)
 * @property {{loads: number}} frameReloaded the CCP frame loaded again (moved in the page, reloaded) and a new frame session is up; subscriptions carry on, actions in flight at the reload failed with `frame_lost`
 * @property {SwitchboardError} softphoneError the audio could not start
 * @property {{expiresAt: number}} tokenWillExpire the login's token expires at `expiresAt` (ms since the epoch); the CCP is already refreshing it (Twilio's `tokenWillExpire`)
 * @property {{expiresAt: number}} tokenRefreshed the CCP got a new token, valid until `expiresAt`; the token itself stays in the CCP
 * @property {SwitchboardError} sessionExpired the backend ended the login: `session_expired` (not refreshed in time) or `token_revoked` (logged out elsewhere); `loginRequired` follows
 */

/** A live link to one embedded CCP. */
export class Session {
  /**
   * Use `init()` or `initDirect()`.
   * @param {{iframe?: HTMLIFrameElement, ccpUrl?: string, core?: DirectCoreLike, requestTimeoutMs: number}} link
   */
  constructor(link) {
    const url = link.ccpUrl ? new URL(link.ccpUrl) : null;
    /** @readonly @type {'frame'|'direct'} */
    this.transport = link.core ? 'direct' : 'frame';
    /** The CCP's iframe (frame transport). @readonly @type {HTMLIFrameElement | null} */
    this.iframe = link.iframe ?? null;
    /** The CCP's origin, the only one messages are exchanged with (frame transport). @readonly @type {string | null} */
    this.ccpOrigin = url ? url.origin : null;
    this.#ccpUrl = url ? url.href : '';
    this.#core = link.core ?? null;
    this.#requestTimeoutMs = link.requestTimeoutMs;
    this.#nonce = randomNonce();
    /** The agent. */
    this.agent = new Agent(this);
    /** How many messages were dropped (wrong window, origin, shape or nonce). */
    this.dropped = 0;
    this.#onMessage = (/** @type {MessageEvent} */ e) => this.#receive(e);
    this.#onLoad = () => this.#frameLoaded();
    if (this.iframe) {
      window.addEventListener('message', this.#onMessage);
      // Every load of the frame is a new CCP document (the page moved the
      // frame, the browser or the CCP reloaded it): each gets its own
      // handshake and frame session, not just the first.
      this.iframe.addEventListener('load', this.#onLoad);
    }
  }

  #ccpUrl;
  /** @type {DirectCoreLike | null} */
  #core;
  #requestTimeoutMs;
  #nonce;
  /** @type {(e: MessageEvent) => void} */
  #onMessage;
  /** @type {() => void} */
  #onLoad;
  /** How many times the frame has loaded a CCP document. */
  #loads = 0;
  /** Whether a CCP document in the frame has said anything (its loader's `loading`, or any message). */
  #heard = false;
  /** Fails `init` when the first load brought no CCP. @type {ReturnType<typeof setTimeout> | undefined} */
  #blockedCheck;
  /** Says hello to the frame's current document until it answers. @type {ReturnType<typeof setInterval> | undefined} */
  #helloRetry;
  /** How long a hello is repeated after a load (the init timeout). */
  #helloWindowMs = DEFAULT_INIT_TIMEOUT_MS;
  /** Requests made while a reloaded frame was not ready yet, sent once it is. @type {Array<{id: number, action: any}>} */
  #queued = [];
  /** Set by a reload until the new document's first usable state. */
  #reconnecting = false;
  #nextId = 1;
  /** @type {Map<number, {resolve: (v: any) => void, reject: (e: SwitchboardError) => void, timer: ReturnType<typeof setTimeout>}>} */
  #pending = new Map();
  /** @type {Map<string, Set<(payload: any) => void>>} */
  #listeners = new Map();
  /** @type {any} */
  #agentRaw = null;
  /** @type {Map<string, Contact>} */
  #contacts = new Map();
  #link = 'logged_out';
  #leader = false;
  #lastHeard = Date.now();
  /** @type {ReturnType<typeof setInterval> | null} */
  #pinger = null;
  /** @type {((ok: boolean, err?: SwitchboardError) => void) | null} */
  #handshake = null;
  #open = false;
  #terminated = false;

  /** @internal @returns {any} */
  get _agent() { return this.#agentRaw; }

  /** @internal @returns {AgentStatus} */
  get _status() {
    const a = this.#agentRaw;
    if (!a) throw new SwitchboardError('not_logged_in', 'no agent is logged in to the CCP');
    return statusOf(a);
  }

  /** Every contact, oldest first. @returns {ReadonlyArray<Contact>} */
  get contacts() { return Object.freeze([...this.#contacts.values()]); }

  /**
   * One contact by id.
   * @param {string} id
   * @returns {Contact | undefined}
   */
  contact(id) { return this.#contacts.get(id); }

  /** Whether the agent's data has arrived (`agent`'s getters work). */
  get hasAgent() { return this.#agentRaw !== null; }

  /** Whether the CCP has a logged-in agent. */
  get loggedIn() { return this.#link !== 'logged_out' && this.#link !== 'closed'; }

  /** The CCP's backend link. */
  get link() { return this.#link; }

  /** Whether this tab's CCP owns the softphone (rings, plays audio). */
  get leader() { return this.#leader; }

  /**
   * Subscribes to an event; returns the function that unsubscribes.
   * @template {keyof SessionEvents} K
   * @param {K} name
   * @param {(payload: SessionEvents[K]) => void} callback
   * @returns {() => void}
   */
  on(name, callback) {
    if (typeof callback !== 'function') throw new SwitchboardError('invalid_argument', 'callback must be a function');
    let set = this.#listeners.get(name);
    if (!set) { set = new Set(); this.#listeners.set(name, set); }
    set.add(callback);
    return () => { set.delete(callback); };
  }

  /**
   * Opens the CCP's login page in a popup; resolves once the CCP is logged
   * in. Call it from a click (popups need a user gesture).
   * @param {{timeoutMs?: number}} [options]
   * @returns {Promise<void>}
   */
  login(options = {}) {
    if (this.loggedIn) return Promise.resolve();
    if (!this.iframe) {
      return Promise.reject(new SwitchboardError('invalid_argument', 'a direct session logs in through initDirect'));
    }
    const url = new URL(this.#ccpUrl);
    url.searchParams.set('popup', '1');
    const popup = window.open(url.href, 'switchboard-login', 'popup,width=420,height=600');
    if (!popup) return Promise.reject(new SwitchboardError('popup_blocked', 'the browser blocked the login popup'));
    const timeoutMs = options.timeoutMs ?? 300000;
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const done = this.on('loggedIn', () => { finish(); resolve(); });
      const poll = setInterval(() => {
        if (this.loggedIn) { finish(); resolve(); }
        else if (popup.closed && Date.now() - started > 1000) {
          // The popup closes itself after handing over; give the CCP a moment.
          setTimeout(() => {
            if (this.loggedIn) { finish(); resolve(); }
            else { finish(); reject(new SwitchboardError('login_cancelled', 'the login window was closed')); }
          }, 1500);
          clearInterval(poll);
        } else if (Date.now() - started > timeoutMs) {
          finish(); reject(new SwitchboardError('timeout', 'login did not finish in time'));
        }
      }, 250);
      const finish = () => { clearInterval(poll); done(); };
    });
  }

  /** Logs the agent out of the CCP (every tab). @returns {Promise<void>} */
  async logout() { await this.#request({ action: 'logout' }); }

  /** Removes the CCP and stops listening; pending actions reject. */
  terminate() {
    if (this.#terminated) return;
    this.#terminated = true;
    window.removeEventListener('message', this.#onMessage);
    this.iframe?.removeEventListener('load', this.#onLoad);
    clearInterval(this.#helloRetry);
    clearTimeout(this.#blockedCheck);
    this.#queued = [];
    if (this.#pinger) clearInterval(this.#pinger);
    for (const [, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new SwitchboardError('terminated', 'the session was terminated'));
    }
    this.#pending.clear();
    this.#listeners.clear();
    this.iframe?.remove();
    this.#core?.close();
  }

  /** @internal @param {any} op @returns {Promise<any>} */
  _op(op) { return this.#request({ action: 'op', op }); }

  /** @internal @param {any} op @returns {Promise<void>} */
  async _ack(op) { await this._op(op); }

  /** @internal @param {any} action @returns {Promise<any>} */
  _action(action) { return this.#request(action); }

  /**
   * Says hello until the CCP answers, then waits for its first state.
   * @internal
   * @param {number} timeoutMs
   * @returns {Promise<void>}
   */
  _handshake(timeoutMs) {
    return new Promise((resolve, reject) => {
      const hello = JSON.stringify({ kind: 'hello', version: FRAME_VERSION, nonce: this.#nonce });
      // Said from the frame's load on (before it, the frame is about:blank)
      // and repeated until the CCP's listener is up and answers.
      const timer = setTimeout(() => {
        settle(false, new SwitchboardError('init_timeout', this.#core
          ? `the backend did not send the agent's state within ${timeoutMs} ms`
          : `the CCP at ${this.#ccpUrl} did not answer within ${timeoutMs} ms ` +
            '(is it running, and is this page\'s origin approved to frame it?)'));
      }, timeoutMs);
      const settle = (/** @type {boolean} */ ok, /** @type {SwitchboardError | undefined} */ err) => {
        clearTimeout(timer);
        clearTimeout(this.#blockedCheck);
        this.#handshake = null;
        if (ok) {
          this.#pinger = setInterval(() => this.#ping(), PING_MS);
          resolve();
        } else {
          reject(err);
        }
      };
      this.#handshake = settle;
      if (this.#core) {
        this.#post(hello);
        return;
      }
      // The frame's loads say hello (#frameLoaded), this one and every later one.
      this.#helloWindowMs = timeoutMs;
      if (this.#loads > 0 && this.#helloRetry === undefined) this.#sayHello();
    });
  }

  /** The frame loaded a (new) CCP document. */
  #frameLoaded() {
    if (this.#terminated) return;
    this.#loads++;
    if (this.#loads > 1) {
      // A new document knows nothing of the old session: a fresh nonce (so
      // late messages of the old one are dropped), and what it was asked
      // and never answered fails now rather than at its timeout.
      this.#open = false;
      this.#nonce = randomNonce();
      this.#reconnecting = !this.#handshake;
      for (const [, p] of this.#pending) {
        clearTimeout(p.timer);
        p.reject(new SwitchboardError('frame_lost', 'the CCP frame reloaded before answering'));
      }
      this.#pending.clear();
    }
    if (this.#loads === 1 && this.#handshake && !this.#heard) this.#expectCcp();
    this.#sayHello();
  }

  /**
   * The frame's first load: fail `init` at once (with `init_timeout`) if
   * no CCP document speaks up shortly, rather than after the whole init
   * timeout. A browser refusing the frame (frame-ancestors) still fires
   * `load`, for its error page, which never answers.
   */
  #expectCcp() {
    clearTimeout(this.#blockedCheck);
    this.#blockedCheck = setTimeout(() => {
      if (this.#heard || this.#open) return;
      this.#handshake?.(false, new SwitchboardError('init_timeout',
        `the frame loaded, but not the CCP at ${this.#ccpUrl}: the browser refused to frame it ` +
        '(is this page\'s origin approved? see frame-ancestors) or it failed to load'));
    }, BLOCKED_FRAME_MS);
  }

  /** Says hello now and again until the frame's document answers (bounded by the init timeout). */
  #sayHello() {
    clearInterval(this.#helloRetry);
    const hello = () => JSON.stringify({ kind: 'hello', version: FRAME_VERSION, nonce: this.#nonce });
    const started = Date.now();
    this.#post(hello());
    this.#helloRetry = setInterval(() => {
      if (this.#open || this.#terminated || Date.now() - started > this.#helloWindowMs) {
        clearInterval(this.#helloRetry);
        this.#helloRetry = undefined;
        return;
      }
      this.#post(hello());
    }, HELLO_RETRY_MS);
  }

  /** @param {string} text */
  #post(text) {
    if (this.#terminated) return;
    if (this.#core) {
      this.#core.post(text);
      return;
    }
    const w = this.iframe?.contentWindow;
    // Addressed to the CCP's origin: if the frame shows anything else (an
    // error page, about:blank) the browser does not deliver it.
    if (w && this.ccpOrigin) w.postMessage(text, this.ccpOrigin);
  }

  /**
   * A message from the direct transport's core.
   * @internal
   * @param {string} text
   */
  _deliver(text) {
    if (!this.#terminated) this.#handle(text);
  }

  #ping() {
    if (Date.now() - this.#lastHeard > FRAME_LOST_MS) {
      this.#emit('error', new SwitchboardError('frame_lost', 'the CCP stopped answering'));
      this.#lastHeard = Date.now();
    }
    if (this.#open || this.#core) this.#post(JSON.stringify({ kind: 'ping', nonce: this.#nonce }));
  }

  /**
   * @param {any} action
   * @returns {Promise<any>}
   */
  #request(action) {
    if (this.#terminated) return Promise.reject(new SwitchboardError('terminated', 'the session was terminated'));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        this.#queued = this.#queued.filter((q) => q.id !== id);
        reject(new SwitchboardError('timeout', `no answer from the ${this.#core ? 'core' : 'CCP'} within ${this.#requestTimeoutMs} ms`));
      }, this.#requestTimeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      if (!this.#core && this.#loads > 1 && (!this.#open || this.#reconnecting)) {
        // A reloaded frame is not ready yet: sent once it is.
        // Bounded by the pending requests, each of which times out.
        this.#queued.push({ id, action });
        return;
      }
      this.#post(JSON.stringify({ kind: 'request', nonce: this.#nonce, id, action }));
    });
  }

  /** @param {string} why @param {unknown} data */
  #drop(why, data) {
    this.dropped++;
    console.warn(`[switchboard sdk] dropped a message: ${why}`, data);
  }

  /** @param {MessageEvent} e */
  #receive(e) {
    // Only our iframe's window, only the CCP's origin.
    if (!this.iframe || e.source !== this.iframe.contentWindow || e.origin !== this.ccpOrigin) {
      this.#drop(`from ${e.origin || 'an unknown origin'}, not the CCP frame`, e.data);
      return;
    }
    // The frame's document is the CCP (it may not know the nonce yet).
    this.#heard = true;
    if (e.data === LOADING) return;
    this.#handle(e.data);
  }

  /** @param {unknown} data */
  #handle(data) {
    /** @type {any} */
    let msg;
    try {
      msg = typeof data === 'string' ? JSON.parse(data) : null;
    } catch (_) {
      msg = null;
    }
    if (!msg || typeof msg !== 'object' || typeof msg.kind !== 'string' || msg.nonce !== this.#nonce) {
      this.#drop('wrong shape or nonce', data);
      return;
    }
    this.#lastHeard = Date.now();
    switch (msg.kind) {
      case 'hello':
        if (msg.version !== FRAME_VERSION) { this.#drop('hello of another version', msg); return; }
        this.#open = true;
        clearInterval(this.#helloRetry);
        this.#helloRetry = undefined;
        if (!this.#reconnecting) this.#flushQueued();
        return;
      case 'hello_refused':
        this.#handshake?.(false, new SwitchboardError('version_mismatch',
          `the CCP speaks frame protocol ${JSON.stringify(msg.versions)}, this SDK ${FRAME_VERSION}`));
        return;
      case 'pong':
        return;
      case 'softphone_error':
        this.#emit('softphoneError', new SwitchboardError(String(msg.code), String(msg.message)));
        return;
      case 'auth':
        return this.#onAuth(msg);
      case 'response':
        return this.#onResponse(msg);
      case 'state':
        if (!this.#open || !isStateShape(msg)) { this.#drop('state of the wrong shape', msg); return; }
        this.#onStatePush(msg);
        return;
      default:
        this.#drop(`unknown kind ${msg.kind}`, msg);
    }
  }

  /** @param {any} msg */
  #onStatePush(msg) {
    // Usable once the CCP knows whether it is logged in, and if it is,
    // once the agent's data has arrived.
    const usable = msg.link !== 'connecting' && (msg.link !== 'open' || msg.agent);
    // A reloaded CCP starting up knows nothing yet about the agent: the
    // page keeps the last state it had until the new document's is usable.
    if (this.#reconnecting && !usable) return;
    this.#onState(msg);
    if (!usable) return;
    this.#handshake?.(true);
    if (this.#reconnecting) {
      this.#reconnecting = false;
      this.#flushQueued();
      this.#emit('frameReloaded', Object.freeze({ loads: this.#loads }));
    }
  }

  /** Sends the requests held while a reloaded frame was not ready. */
  #flushQueued() {
    for (const q of this.#queued.splice(0)) {
      if (this.#pending.has(q.id)) this.#post(JSON.stringify({ kind: 'request', nonce: this.#nonce, id: q.id, action: q.action }));
    }
  }

  /** @param {any} msg */
  #onAuth(msg) {
    if (!this.#open) { this.#drop('auth before hello', msg); return; }
    switch (msg.event) {
      case 'token_expiring':
      case 'token_refreshed':
        if (typeof msg.expires_at !== 'number') { this.#drop('auth without expires_at', msg); return; }
        this.#emit(msg.event === 'token_expiring' ? 'tokenWillExpire' : 'tokenRefreshed',
          Object.freeze({ expiresAt: msg.expires_at }));
        return;
      case 'session_expired':
      case 'token_revoked':
        this.#emit('sessionExpired', new SwitchboardError(msg.event, String(msg.message ?? msg.event)));
        return;
      default:
        this.#drop(`unknown auth event ${String(msg.event)}`, msg);
    }
  }

  /** @param {any} msg */
  #onResponse(msg) {
    const p = this.#pending.get(msg.id);
    if (!p) return; // timed out already
    this.#pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.error && typeof msg.error.code === 'string') {
      p.reject(new SwitchboardError(msg.error.code, String(msg.error.message ?? msg.error.code)));
    } else {
      p.resolve(msg.result);
    }
  }

  /** @param {any} msg */
  #onState(msg) {
    const previousAgent = this.#agentRaw;
    const previousLink = this.#link;
    this.#agentRaw = msg.agent ? deepFreeze(msg.agent) : null;
    this.#link = msg.link;
    this.#contacts = new Map(msg.contacts.map((/** @type {any} */ c) => [c.contact_id, new Contact(this, c)]));
    if (msg.leader !== this.#leader) {
      this.#leader = msg.leader;
      this.#emit('leader', this.#leader);
    }
    if (previousLink !== this.#link) {
      this.#emit('link', this.#link);
      if (this.#link === 'logged_out') this.#emit('loginRequired', undefined);
      else if (previousLink === 'logged_out' || previousLink === 'closed') this.#emit('loggedIn', undefined);
    }
    if (this.#agentRaw) {
      const now = statusOf(this.#agentRaw);
      const before = previousAgent ? statusOf(previousAgent) : null;
      if (!before || before.name !== now.name || before.since !== now.since) {
        this.#emit('stateChange', Object.freeze({ state: now, previous: before }));
        const byKind = { routable: 'routable', not_routable: 'notRoutable', offline: 'offline' };
        const named = /** @type {keyof SessionEvents | undefined} */ (byKind[/** @type {keyof typeof byKind} */ (now.kind)]);
        if (named) this.#emit(named, now);
      }
      if (previousAgent !== this.#agentRaw) this.#emit('agentRefresh', this.agent);
    }
    // The Rust core names the events each change fires (ContactChange::events
    // in streams-sdk/src/state.rs); they are emitted as named, not re-derived.
    for (const change of msg.changes) {
      const contact = this.#contacts.get(change.contact_id);
      for (const name of change.events) {
        if (name === 'destroyed') this.#emit(name, Object.freeze({ id: change.contact_id }));
        else if (!CONTACT_EVENTS.includes(name)) this.#drop(`unknown contact event ${name}`, change);
        else if (contact) this.#emit(name, contact);
      }
    }
  }

  /** @param {string} name @param {any} payload */
  #emit(name, payload) {
    const set = this.#listeners.get(name);
    if (!set) return;
    for (const cb of [...set]) {
      try {
        cb(payload);
      } catch (err) {
        // One listener's bug must not stop the others or the SDK.
        console.error(`[switchboard sdk] a ${name} listener threw`, err);
      }
    }
  }
}

/** The contact events a `state` push may name (besides `destroyed`). */
const CONTACT_EVENTS = ['incoming', 'connecting', 'accepted', 'connected', 'missed', 'ended', 'afterCallWork', 'contactRefresh'];

/** @param {any} a @returns {AgentStatus} */
function statusOf(a) {
  return Object.freeze({
    name: a.status.state.name,
    kind: a.status.state.kind,
    since: a.status.since,
    next: a.status.next_state ? Object.freeze({ ...a.status.next_state }) : null,
  });
}

/** @param {any} m */
function isStateShape(m) {
  return typeof m.link === 'string' && typeof m.leader === 'boolean'
    && Array.isArray(m.contacts) && Array.isArray(m.changes)
    && (m.agent === null || (typeof m.agent === 'object' && typeof m.agent.status === 'object'))
    && m.contacts.every((/** @type {any} */ c) => c && typeof c.contact_id === 'string' && Array.isArray(c.connections) && c.state)
    && m.changes.every((/** @type {any} */ c) => c && typeof c.change === 'string' && typeof c.contact_id === 'string'
      && Array.isArray(c.events) && c.events.every((/** @type {any} */ e) => typeof e === 'string'));
}

/**
 * @param {unknown} value
 * @param {string} what
 * @returns {URL}
 */
function httpUrl(value, what) {
  /** @type {URL} */
  let url;
  try {
    url = new URL(String(value), location.href);
  } catch (_) {
    throw new SwitchboardError('invalid_argument', `${what} is not a URL: ${String(value)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SwitchboardError('invalid_argument', `${what} must be http(s)`);
  }
  return url;
}

/**
 * Resolves once `session` has its first usable state; terminates it if not.
 * @param {Session} session
 * @param {number} timeoutMs
 * @returns {Promise<Session>}
 */
async function ready(session, timeoutMs) {
  try {
    await session._handshake(timeoutMs);
  } catch (err) {
    session.terminate();
    throw err;
  }
  return session;
}

function randomNonce() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Embeds the CCP and resolves with a session once the CCP has answered the
 * handshake and sent its first state (logged in or not: see `loggedIn` and
 * the `loginRequired` event).
 * @param {InitOptions} options
 * @returns {Promise<Session>}
 */
export async function init(options) {
  if (!options || typeof options !== 'object') throw new SwitchboardError('invalid_argument', 'init needs options');
  const { ccpUrl, hidden = false, timeoutMs = DEFAULT_INIT_TIMEOUT_MS, requestTimeoutMs = DEFAULT_REQUEST_TIMEOUT_MS } = options;
  const url = httpUrl(ccpUrl, 'ccpUrl');
  const container = options.container ?? document.body;
  if (!(container instanceof HTMLElement)) throw new SwitchboardError('invalid_argument', 'container must be an element');
  const iframe = document.createElement('iframe');
  iframe.title = 'Switchboard contact control panel';
  iframe.allow = 'microphone; autoplay';
  iframe.dataset.switchboard = 'ccp';
  if (hidden) {
    // Invisible but rendered: display:none frames may be throttled.
    iframe.setAttribute('aria-hidden', 'true');
    iframe.tabIndex = -1;
    iframe.style.cssText = 'position:absolute;width:1px;height:1px;left:-10px;top:-10px;opacity:0;border:0;pointer-events:none;';
  } else {
    iframe.style.cssText = 'width:100%;height:100%;min-width:320px;min-height:460px;border:0;';
  }
  iframe.src = url.href;
  const session = new Session({ iframe, ccpUrl: url.href, requestTimeoutMs });
  container.appendChild(iframe);
  return ready(session, timeoutMs);
}

/**
 * Connects straight to a backend (no iframe, no audio) and resolves with a
 * session once the agent's state has arrived. For scripts and tools that
 * drive an agent; the page's origin must be approved by the backend.
 * @param {DirectOptions} options
 * @returns {Promise<Session>}
 */
export async function initDirect(options) {
  if (!options || typeof options !== 'object') throw new SwitchboardError('invalid_argument', 'initDirect needs options');
  const { backendUrl, username, password, token, timeoutMs = DEFAULT_INIT_TIMEOUT_MS, requestTimeoutMs = DEFAULT_REQUEST_TIMEOUT_MS } = options;
  const url = httpUrl(backendUrl, 'backendUrl');
  if (token === undefined && (typeof username !== 'string' || typeof password !== 'string')) {
    throw new SwitchboardError('invalid_argument', 'initDirect needs a token, or a username and password');
  }
  /** @type {any} */
  const core = await import(new URL('./direct/core.js', import.meta.url).href);
  await core.default();
  /** @type {string} */
  let tok;
  try {
    tok = token ?? await core.login(url.origin, username, password);
  } catch (err) {
    const e = /** @type {any} */ (err);
    throw new SwitchboardError(e?.code ?? 'unknown', e?.message ?? String(err));
  }
  /** @type {Session | null} */
  let session = null;
  const ws = `${url.origin.replace(/^http/, 'ws')}/v1/ws`;
  const direct = new core.DirectCore(ws, tok, (/** @type {string} */ text) => session?._deliver(text));
  session = new Session({ core: direct, requestTimeoutMs });
  return ready(session, timeoutMs);
}

// A stand-in for the Switchboard SDK module (streams-sdk/js/switchboard.js)
// that the Streams facade can be driven by without a browser or backend.
//
// It speaks the SDK's surface (init() -> Session with on(), agent,
// contacts, contact(id), login(), logout(), terminate()) and lets a test
// push the states the reference backend produces for each call scenario
// (protocol/src/contact.rs names). What the facade makes of those pushes
// is checked against Streams' documented event semantics in
// streams-facade.test.mjs; the browser tests check the same against the
// real SDK and backend.
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Loads a fresh copy of the facade (a classic script) into this process.
 * Imported as a module (the package is `"type": "module"`), with a query
 * so every call evaluates it anew.
 */
let loads = 0;
export async function loadFacade() {
  delete globalThis.connect;
  globalThis.window = globalThis;
  const url = pathToFileURL(join(ROOT, 'streams-sdk/js/connect-streams.js'));
  url.search = `?load=${++loads}`;
  await import(url.href);
  return globalThis.connect;
}

const STATES = {
  Available: { name: 'Available', kind: 'routable' },
  Lunch: { name: 'Lunch', kind: 'not_routable' },
  Offline: { name: 'Offline', kind: 'offline' },
  Busy: { name: 'Busy', kind: 'system' },
  AfterCallWork: { name: 'AfterCallWork', kind: 'system' },
  MissedCallAgent: { name: 'MissedCallAgent', kind: 'system' },
};

/** A session whose state the test sets, push by push. */
export class FakeSession {
  constructor() {
    this.link = 'open';
    this.loggedIn = true;
    this.calls = []; // what the facade asked for, in order
    this.listeners = new Map();
    this.contactsById = new Map();
    this.status = { state: STATES.Offline, since: 1000, next: null };
    this.muted = false;
    this.clock = 1000;
    const session = this;
    this.agent = {
      get state() {
        const s = session.status;
        return { name: s.state.name, kind: s.state.kind, since: s.since, next: s.next };
      },
      setState: (name) => session.#ask('setState', name),
      connect: (endpoint) => session.#ask('connect', endpoint),
      quickConnects: () => Promise.resolve([
        { id: 'agent:bob', kind: 'agent', name: 'Bob Suzuki', agent: 'bob' },
        { id: 'phone:+81312345678', kind: 'phone_number', name: 'Head office', phone_number: '+81312345678' },
      ]),
      mute: () => session.#ask('mute'),
      unmute: () => session.#ask('unmute'),
      setDevice: (kind, id) => session.#ask('setDevice', kind, id),
      devices: () => Promise.resolve([{ id: 'mic1', kind: 'microphone', label: 'Headset' }]),
    };
  }

  /** The facade's calls resolve unless the test said otherwise. */
  failNext = null;

  #ask(name, ...args) {
    this.calls.push([name, ...args]);
    if (this.failNext) {
      const err = Object.assign(new Error(this.failNext.message), { code: this.failNext.code });
      this.failNext = null;
      return Promise.reject(err);
    }
    return Promise.resolve(name === 'connect' ? 'c-out' : undefined);
  }

  get _agent() {
    return {
      muted: this.muted,
      states: [STATES.Available, STATES.Lunch, STATES.Offline],
      configuration: {
        name: 'Alice Tanaka', username: 'alice', softphone_enabled: true,
        routing_profile: { id: 'p', name: 'Front line', queues: [{ queue: { id: 'support', name: 'Support' }, priority: 1 }] },
      },
    };
  }

  get contacts() { return [...this.contactsById.values()].map((c) => this.#view(c)); }
  contact(id) { const c = this.contactsById.get(id); return c && this.#view(c); }

  #view(c) {
    const session = this;
    const connections = c.connections.map((k) => ({
      ...k,
      isInitial: k.kind === 'inbound' || k.kind === 'outbound',
      hold: () => session.#ask('hold', c.id, k.id),
      resume: () => session.#ask('resume', c.id, k.id),
      sendDigits: (d) => session.#ask('sendDigits', c.id, k.id, d),
      end: () => session.#ask('end', c.id, k.id),
    }));
    return {
      ...c,
      connections,
      agentConnection: connections.find((k) => k.kind === 'agent'),
      accept: () => session.#ask('accept', c.id),
      reject: () => session.#ask('reject', c.id),
      clear: () => session.#ask('clear', c.id),
      addConnection: (e) => session.#ask('addConnection', c.id, e),
      conference: () => session.#ask('conference', c.id),
      toggle: () => session.#ask('toggle', c.id),
      updateAttributes: (a) => session.#ask('updateAttributes', c.id, a),
    };
  }

  on(name, cb) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(cb);
    return () => this.listeners.get(name).delete(cb);
  }

  emit(name, payload) { for (const cb of [...(this.listeners.get(name) ?? [])]) cb(payload); }

  login() { this.calls.push(['login']); return Promise.resolve(); }
  logout() { this.calls.push(['logout']); return Promise.resolve(); }
  terminate() { this.calls.push(['terminate']); }

  // ---- what the backend pushes ------------------------------------------------

  /** The agent's status (a state name from STATES). */
  setStatus(name, next = null) {
    this.clock += 10;
    this.status = { state: STATES[name], since: this.clock, next: next ? STATES[next] : null };
  }

  /** Adds or changes a contact; `fields` as in protocol ContactView. */
  putContact(id, fields) {
    this.clock += 10;
    const old = this.contactsById.get(id);
    this.contactsById.set(id, {
      id, type: 'voice', initiation: 'inbound', queue: { id: 'support', name: 'Support' },
      attributes: { customerName: 'Justin' }, createdAt: 1000, connections: [],
      ...old, ...fields, since: this.clock,
    });
  }

  removeContact(id) { this.contactsById.delete(id); }

  /** Tells the facade a push arrived (the SDK emits its events). */
  async push(events = ['agentRefresh']) {
    for (const e of events) this.emit(e, undefined);
    // The facade diffs once per push, in a microtask.
    await new Promise((r) => setTimeout(r, 0));
  }
}

/** A ringing inbound call's connections, as the backend reports them. */
export function inboundConnections(customer = 'connected', agent = 'connecting') {
  return [
    { id: 'k-cust', kind: 'inbound', endpoint: { id: 'phone:+819012345678', kind: 'phone_number', name: '+819012345678', phone_number: '+819012345678' }, state: customer, since: 1000 },
    { id: 'k-agent', kind: 'agent', endpoint: { id: 'agent:alice', kind: 'agent', name: 'Alice Tanaka', agent: 'alice' }, state: agent, since: 1000 },
  ];
}

/** Starts the facade over a fake session; resolves once initialized. */
export async function startFacade(connect, session, options = {}) {
  connect.__switchboard.useSdk({ init: async () => session });
  connect.core.initCCP({ style: {} }, { ccpUrl: 'http://127.0.0.1:1/ccp/', ...options });
  for (let i = 0; i < 50 && !connect.core.initialized; i++) await new Promise((r) => setTimeout(r, 0));
  await new Promise((r) => setTimeout(r, 0));
}

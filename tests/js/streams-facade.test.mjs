// Golden event sequences for the Streams facade, written from Amazon
// Connect Streams 2.28's documented semantics, not from our facade:
//
// - Documentation.md, "connect.contact(...)" / "contact.onConnecting":
//   a ringing inbound voice contact is in state CONNECTING (INCOMING is for
//   queued callbacks), and the cheat sheet's accept button tests for it.
// - Streams' agent update order: agent INIT once, REFRESH on every update,
//   ROUTABLE / NOT_ROUTABLE / OFFLINE on a routing-type change,
//   STATE_CHANGE {oldState, newState} on a name change followed by ERROR
//   (error states such as MissedCallAgent) or ACW (AfterCallWork),
//   ENQUEUED_NEXT_STATE / CLEARED_NEXT_STATE, then contacts: new ones get
//   contact INIT then the events of init -> state, removed ones ENDED (if
//   it never fired) then DESTROYED, the rest their transition's events,
//   and every present contact a REFRESH.
// - Contact transitions: entering CONNECTING/CONNECTED/... fires the
//   state's event; entering ENDED fires ACW; leaving the active states
//   fires ENDED (once per contact); a ringing contact that becomes MISSED,
//   REJECTED or ERROR fires MISSED; entering ERROR fires ERROR.
// - Every subscription returns an object with unsubscribe().
//
// The session is a stand-in (fake-sdk.mjs) pushing the states the
// reference backend produces, so these run in plain Node in milliseconds.
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { loadFacade, FakeSession, inboundConnections, startFacade } from './fake-sdk.mjs';

let connect;
let session;
let events;

beforeEach(async () => {
  connect = await loadFacade();
  session = new FakeSession();
  session.setStatus('Available');
  events = [];
  connect.core.getEventBus().subscribeAll((_data, name) => {
    // Per-contact copies ("contact::connected::c-1") mirror the global ones.
    if (!/::c-/.test(name)) events.push(name);
  });
  await startFacade(connect, session);
  events.length = 0;
});

/** A ringing inbound call c-1 reaches the agent (Busy while it rings). */
async function ring() {
  session.putContact('c-1', { state: 'incoming', connections: inboundConnections('connected', 'connecting') });
  await session.push(['incoming']);
}

async function connectCall() {
  session.setStatus('Busy');
  session.putContact('c-1', { state: 'connected', connections: inboundConnections('connected', 'connected') });
  await session.push(['connected']);
}

async function endCall() {
  session.setStatus('AfterCallWork');
  session.putContact('c-1', { state: 'ended', connections: inboundConnections('disconnected', 'disconnected') });
  await session.push(['ended']);
}

test('first update: agent INIT, REFRESH, routing and state events in Streams order', async () => {
  const c2 = await loadFacade();
  const s2 = new FakeSession();
  s2.setStatus('Available');
  const seen = [];
  c2.core.getEventBus().subscribeAll((_d, name) => seen.push(name));
  await startFacade(c2, s2);
  assert.deepEqual(seen.filter((n) => n.startsWith('agent::')), [
    'agent::init', 'agent::refresh', 'agent::routable', 'agent::state_change',
  ]);
  assert.equal(c2.agent.initialized, true);
  assert.equal(c2.core.initialized, true);
});

test('inbound call accepted: CONNECTING (not INCOMING), ACCEPTED, CONNECTED, ACW, ENDED, DESTROYED', async () => {
  const seenInInit = [];
  connect.contact((contact) => {
    // Subscribing inside connect.contact catches this very ring, as in Streams.
    contact.onConnecting((c) => seenInInit.push('connecting ' + c.getStatus().type));
    contact.onIncoming(() => seenInInit.push('incoming'));
  });
  await ring();
  assert.deepEqual(seenInInit, ['connecting connecting']);
  assert.deepEqual(events, ['agent::refresh', 'contact::init', 'contact::connecting', 'contact::refresh']);

  events.length = 0;
  const contact = new connect.Contact('c-1');
  assert.equal(contact.getStatus().type, connect.ContactStateType.CONNECTING);
  assert.equal(contact.isInbound(), true);
  // The documented screen-pop reads the caller while the call rings.
  assert.equal(contact.getActiveInitialConnection().getEndpoint().phoneNumber, '+819012345678');
  assert.equal(contact.getAgentConnection().isConnecting(), true);
  assert.equal(contact.getAgentConnection().isActive(), true, 'connecting counts as active in Streams');
  await new Promise((resolve) => contact.accept({ success: resolve, failure: (e) => assert.fail(String(e)) }));
  assert.deepEqual(events, ['contact::accepted']);

  events.length = 0;
  await connectCall();
  assert.deepEqual(events, [
    'agent::refresh', 'agent::state_change', 'contact::connected', 'contact::refresh',
  ]);

  events.length = 0;
  await endCall();
  assert.deepEqual(events, [
    'agent::refresh', 'agent::state_change', 'agent::acw', 'contact::acw', 'contact::ended', 'contact::refresh',
  ]);

  events.length = 0;
  session.removeContact('c-1');
  session.setStatus('Available');
  await session.push(['destroyed']);
  // ENDED already fired for this contact: not again (Streams #62).
  assert.deepEqual(events, [
    'agent::refresh', 'agent::routable', 'agent::state_change', 'contact::destroyed',
  ]);
  assert.deepEqual(session.calls.map((c) => c[0]), ['accept']);
});

test('ACCEPTED comes before CONNECTED even when the connecting push beats the accept\'s answer', async () => {
  await ring();
  let answer;
  const view = session.contact.bind(session);
  session.contact = (id) => ({ ...view(id), accept: () => new Promise((r) => { answer = r; }) });
  events.length = 0;
  let accepted = 0;
  const done = new Promise((resolve) => new connect.Contact('c-1').accept({ success: () => { accepted++; resolve(); } }));
  await connectCall();
  answer();
  await done;
  const contactOnly = events.filter((e) => e.startsWith('contact::') && e !== 'contact::refresh');
  assert.deepEqual(contactOnly, ['contact::accepted', 'contact::connected']);
  assert.equal(accepted, 1);
});

test('missed call: ENDED then MISSED for the contact, agent ERROR in MissedCallAgent', async () => {
  await ring();
  events.length = 0;
  session.setStatus('MissedCallAgent');
  session.putContact('c-1', { state: 'missed', connections: inboundConnections('connected', 'disconnected') });
  await session.push(['missed']);
  assert.deepEqual(events, [
    'agent::refresh', 'agent::state_change', 'agent::error', 'contact::ended', 'contact::missed', 'contact::refresh',
  ]);
  const agent = new connect.Agent();
  assert.equal(agent.getState().type, connect.AgentStateType.ERROR);
  assert.equal(agent.getState().name, 'MissedCallAgent');
});

test('rejected call: MISSED, and ENDED only once across the removal', async () => {
  await ring();
  events.length = 0;
  session.putContact('c-1', { state: 'rejected' });
  await session.push(['contactRefresh']);
  session.removeContact('c-1');
  await session.push(['destroyed']);
  assert.deepEqual(events, [
    'agent::refresh', 'contact::ended', 'contact::missed', 'contact::refresh',
    'agent::refresh', 'contact::destroyed',
  ]);
});

test('a contact removed while ringing still gets ENDED before DESTROYED', async () => {
  await ring();
  events.length = 0;
  session.removeContact('c-1');
  await session.push(['destroyed']);
  assert.deepEqual(events, ['agent::refresh', 'contact::ended', 'contact::destroyed']);
});

test('outbound call answered: CONNECTING then CONNECTED; a failed one: ERROR, MISSED, ENDED', async () => {
  const endpoint = connect.Endpoint.byPhoneNumber('+81312345678');
  await new Promise((resolve) => new connect.Agent().connect(endpoint, { success: resolve, failure: (e) => assert.fail(String(e)) }));
  assert.deepEqual(session.calls.at(-1), ['connect', { id: 'phone:+81312345678', kind: 'phone_number', name: '+81312345678', phone_number: '+81312345678' }]);
  const outbound = [
    { id: 'k-cust', kind: 'outbound', endpoint: { id: 'phone:+81312345678', kind: 'phone_number', name: '+81312345678', phone_number: '+81312345678' }, state: 'connecting', since: 1000 },
    { id: 'k-agent', kind: 'agent', endpoint: { id: 'agent:alice', kind: 'agent', name: 'Alice' }, state: 'connected', since: 1000 },
  ];
  session.putContact('c-1', { state: 'connecting', initiation: 'outbound', connections: outbound });
  await session.push(['connecting']);
  assert.deepEqual(events, ['agent::refresh', 'contact::init', 'contact::connecting', 'contact::refresh']);
  assert.equal(new connect.Contact('c-1').isInbound(), false);

  events.length = 0;
  session.putContact('c-2', { state: 'connecting', initiation: 'outbound', connections: outbound });
  await session.push(['connecting']);
  events.length = 0;
  session.putContact('c-2', { state: 'error' });
  await session.push(['contactRefresh']);
  assert.deepEqual(events.filter((e) => e !== 'contact::refresh' && e !== 'agent::refresh'), [
    'contact::error', 'contact::missed', 'contact::ended',
  ]);
});

test('a queued callback rings as INCOMING (onIncoming, not onConnecting), of type queue_callback', async () => {
  const seen = [];
  connect.contact((contact) => {
    contact.onConnecting(() => seen.push('connecting'));
    contact.onIncoming((c) => seen.push('incoming ' + c.getStatus().type + ' ' + c.getType()));
  });
  // The backend's callback: initiation `callback`, the customer an outbound
  // leg not yet dialed, ringing at the agent.
  const callback = [
    { id: 'k-cust', kind: 'outbound', endpoint: { id: 'phone:+819012345678', kind: 'phone_number', name: '+819012345678', phone_number: '+819012345678' }, state: 'init', since: 1000 },
    { id: 'k-agent', kind: 'agent', endpoint: { id: 'agent:alice', kind: 'agent', name: 'Alice' }, state: 'connecting', since: 1000 },
  ];
  session.putContact('c-1', { state: 'incoming', type: 'queue_callback', initiation: 'callback', connections: callback });
  await session.push(['incoming']);
  assert.deepEqual(seen, ['incoming incoming queue_callback']);
  assert.deepEqual(events, ['agent::refresh', 'contact::init', 'contact::incoming', 'contact::refresh']);
  const contact = new connect.Contact('c-1');
  assert.equal(contact.getType(), connect.ContactType.QUEUE_CALLBACK);
  assert.equal(contact.getInitiationMethod(), 'callback');
  const agent = new connect.Agent();
  assert.deepEqual(agent.getContacts(connect.ContactType.QUEUE_CALLBACK).map((c) => c.getContactId()), ['c-1']);
  assert.deepEqual(agent.getContacts(connect.ContactType.VOICE), []);
  assert.equal(agent.getContacts().length, 1);
  // Accepted: the customer is dialed (CONNECTING), then answers.
  events.length = 0;
  session.putContact('c-1', { state: 'connecting' });
  await session.push(['contactRefresh']);
  assert.ok(events.includes('contact::connecting'), events.join(', '));
});

test('hold and resume are REFRESH only; the connection reports HOLD', async () => {
  await ring();
  await connectCall();
  events.length = 0;
  session.putContact('c-1', { connections: inboundConnections('hold', 'connected') });
  await session.push(['contactRefresh']);
  assert.deepEqual(events, ['agent::refresh', 'contact::refresh']);
  const customer = new connect.Contact('c-1').getInitialConnection();
  assert.equal(customer.isOnHold(), true);
  assert.equal(customer.getStatus().type, connect.ConnectionStateType.HOLD);
});

test('a transfer leg added to the contact is type OUTBOUND (Streams has no third_party)', async () => {
  await ring();
  await connectCall();
  session.putContact('c-1', {
    connections: [...inboundConnections('hold', 'connected'), {
      id: 'k-bob', kind: 'third_party', endpoint: { id: 'agent:bob', kind: 'agent', name: 'Bob Suzuki', agent: 'bob' }, state: 'connecting', since: 1000,
    }],
  });
  await session.push(['contactRefresh']);
  const contact = new connect.Contact('c-1');
  const third = contact.getSingleActiveThirdPartyConnection();
  assert.equal(third.getType(), connect.ConnectionType.OUTBOUND);
  assert.equal(third.getEndpoint().name, 'Bob Suzuki');
  assert.equal(contact.getActiveConnections().length, 3);
  assert.equal(contact.hasTwoActiveParticipants(), false);
});

test('choosing a state during after-call work ends it, as Connect does; enqueueNextState does not', async () => {
  await ring();
  await connectCall();
  await endCall();
  const agent = new connect.Agent();
  const available = agent.getAgentStates().find((s) => s.type === connect.AgentStateType.ROUTABLE);
  await new Promise((resolve) => agent.setState(available, { success: resolve, failure: (e) => assert.fail(String(e)) }));
  assert.deepEqual(session.calls.slice(-2), [['clear', 'c-1'], ['setState', 'Available']]);

  session.calls.length = 0;
  await new Promise((resolve) => agent.setState(available, { success: resolve }, { enqueueNextState: true }));
  assert.deepEqual(session.calls, [['setState', 'Available']]);
});

test('enqueued and cleared next states fire their events', async () => {
  session.setStatus('Busy', 'Lunch');
  await session.push();
  assert.ok(events.includes('agent::enqueued_next_state'), events.join());
  assert.equal(new connect.Agent().getNextState().name, 'Lunch');
  events.length = 0;
  session.setStatus('Busy', null);
  await session.push();
  assert.ok(events.includes('agent::cleared_next_state'), events.join());
});

test('mute fires onMuteToggle with {muted}', async () => {
  const seen = [];
  new connect.Agent().onMuteToggle((e) => seen.push(e.muted));
  session.muted = true;
  await session.push();
  session.muted = false;
  await session.push();
  assert.deepEqual(seen, [true, false]);
});

test('subscriptions return {unsubscribe}; per-contact ones end with the contact', async () => {
  const agent = new connect.Agent();
  let refreshes = 0;
  const sub = agent.onRefresh(() => { refreshes++; });
  assert.equal(typeof sub.unsubscribe, 'function');
  await session.push();
  sub.unsubscribe();
  await session.push();
  assert.equal(refreshes, 1);

  const contactSub = connect.contact(() => {});
  const agentSub = connect.agent(() => {});
  assert.equal(typeof contactSub.unsubscribe, 'function');
  assert.equal(typeof agentSub.unsubscribe, 'function');
  contactSub.unsubscribe();
  agentSub.unsubscribe();

  await ring();
  const bus = connect.core.getEventBus();
  new connect.Contact('c-1').onConnected(() => {});
  assert.equal(bus.getSubscriptions('contact::connected::c-1').length, 1);
  session.removeContact('c-1');
  await session.push(['destroyed']);
  assert.equal(bus.getSubscriptions('contact::connected::c-1').length, 0);
});

test('a callback that throws does not stop the others', async () => {
  const seen = [];
  connect.core.getEventBus().subscribe('agent::refresh', () => { throw new Error('integration bug'); });
  connect.core.getEventBus().subscribe('agent::refresh', () => seen.push('second'));
  connect.getLog().setEchoLevel('CRITICAL');
  await session.push();
  assert.deepEqual(seen, ['second']);
  assert.ok(connect.getLog().getLoggedEntries().some((e) => /integration bug/.test(e.text)));
});

test('failure callbacks get Streams error objects that also print readably', async () => {
  session.failNext = { code: 'invalid_state', message: 'contact c-1 is not ringing' };
  await ring();
  const err = await new Promise((resolve) => new connect.Contact('c-1').accept({ success: () => assert.fail('should fail'), failure: resolve }));
  assert.equal(err.type, 'invalid_state');
  assert.equal(err.message, 'contact c-1 is not ringing');
  assert.ok(Array.isArray(err.stack));
  assert.equal(String(err), '{"type":"invalid_state","message":"contact c-1 is not ringing"}');
  assert.ok(!events.includes('contact::accepted'), 'no ACCEPTED for a failed accept');
});

test('the documented logout recipe: setState Offline, TERMINATE upstream, TERMINATED on the bus', async () => {
  const agent = new connect.Agent();
  const offline = agent.getAgentStates().find((s) => s.type === connect.AgentStatusType.OFFLINE);
  await new Promise((resolve, reject) => agent.setState(offline, { success: resolve, failure: reject }, { enqueueNextState: true }));
  const terminated = new Promise((resolve) => connect.core.getEventBus().subscribe(connect.EventType.TERMINATED, resolve));
  connect.core.getUpstream().sendUpstream(connect.EventType.TERMINATE);
  await terminated;
  assert.deepEqual(session.calls.map((c) => c[0]), ['setState', 'logout']);
});

test('terminate() ends the session and a re-init starts without old subscriptions', async () => {
  let hits = 0;
  new connect.Agent().onRefresh(() => { hits++; });
  connect.core.terminate();
  assert.deepEqual(session.calls.at(-1), ['terminate']);
  assert.equal(connect.agent.initialized, false);
  const again = new FakeSession();
  again.setStatus('Available');
  await startFacade(connect, again);
  await again.push();
  assert.equal(hits, 0);
  assert.equal(new connect.Agent().getName(), 'Alice Tanaka');
});

test('snapshots are copies: toSnapshot().contactData survives the contact', async () => {
  await ring();
  const snap = new connect.Contact('c-1').toSnapshot();
  session.removeContact('c-1');
  await session.push(['destroyed']);
  assert.equal(snap.contactData.connections[0].address.phoneNumber, '+819012345678');
  assert.equal(snap.getInitialConnection().getEndpoint().phoneNumber, '+819012345678');
  assert.ok(snap.getStatus().timestamp instanceof Date);
  const agentSnap = new connect.Agent().toSnapshot();
  session.setStatus('Lunch');
  await session.push();
  assert.equal(agentSnap.getState().name, 'Available');
  assert.equal(new connect.Agent().getState().name, 'Lunch');
});

test('non-voice APIs fail clearly, never silently', async () => {
  await ring();
  const contact = new connect.Contact('c-1');
  assert.throws(() => contact.pause(), /not supported/);
  const err = await new Promise((resolve) => contact.silentMonitor({ failure: resolve }));
  assert.equal(err.type, 'not_supported');
  assert.throws(() => connect.agentApp.initApp('x', 'div', 'https://example.com'), /not supported/);
  assert.deepEqual(new connect.Agent().getContacts(connect.ContactType.CHAT), []);
});

test('link loss and recovery: onWebSocketConnectionLost/Gained and network status', async () => {
  const agent = new connect.Agent();
  const seen = [];
  agent.onWebSocketConnectionLost(() => seen.push('lost'));
  agent.onWebSocketConnectionGained(() => seen.push('gained'));
  agent.onNetworkConnectionStatusChanged((e) => seen.push(e.status));
  session.emit('link', 'reconnecting');
  assert.equal(agent.getNetworkConnectionStatus(), connect.NetworkConnectionStatus.CONNECTING);
  session.emit('link', 'open');
  assert.deepEqual(seen, ['lost', 'connecting', 'gained', 'connected']);
});

test('the CCP logging out fires onAuthFail and TERMINATED', async () => {
  const seen = [];
  connect.core.onAuthFail(() => seen.push('auth_fail'));
  connect.core.getEventBus().subscribe(connect.EventType.TERMINATED, () => seen.push('terminated'));
  session.emit('loginRequired');
  assert.deepEqual(seen, ['auth_fail', 'terminated']);
});

test('a refreshed login is onAuthorizeSuccess; a revoked one onAccessDenied', async () => {
  const seen = [];
  connect.core.onAuthorizeSuccess(() => seen.push('authorized'));
  connect.core.onAccessDenied(() => seen.push('denied'));
  session.emit('tokenRefreshed', { expiresAt: 1 });
  session.emit('sessionExpired', { code: 'session_expired' });
  session.emit('sessionExpired', { code: 'token_revoked' });
  assert.deepEqual(seen, ['authorized', 'denied']);
});

// ---- transfer and conference ---------------------------------------------------
//
// Streams (src/api.js) drives every contact event from the contact's state
// type alone (core.js's contact transition table); a transfer or conference
// changes the contact's connections, not its state, while the agent stays on
// the call. So, as Streams emits them:
// - contact.addConnection(endpoint) (CREATE_ADDITIONAL_CONNECTION) adds a
//   third-party connection of type OUTBOUND that is CONNECTING then
//   CONNECTED; the initial (customer) connection goes to HOLD; the contact
//   stays CONNECTED: agent REFRESH + contact REFRESH only, per push.
// - toggleActiveConnections() (TOGGLE_ACTIVE_CONNECTIONS) swaps which of
//   the two is on HOLD; conferenceConnections() (CONFERENCE_CONNECTIONS)
//   makes both CONNECTED: REFRESH only again.
// - connection.destroy() (DESTROY_CONNECTION) on a third-party connection
//   drops it (REFRESH only); on the agent's own connection it leaves the
//   call to the others: the agent's contact goes ENDED (agent
//   AfterCallWork: STATE_CHANGE, ACW; contact ACW, ENDED), then DESTROYED
//   once cleared, without a second ENDED.
// - getters (Documentation.md): getThirdPartyConnections() is every
//   connection that is neither initial nor the agent's;
//   getSingleActiveThirdPartyConnection() the active one (CONNECTING,
//   CONNECTED and HOLD are active states); getActiveInitialConnection()
//   the customer while connected or on hold.

const BOB = { id: 'agent:bob', kind: 'agent', name: 'Bob Suzuki', agent: 'bob' };

/** The contact's connections during a transfer to bob. */
function transferConnections(customer, agent, bob) {
  return [
    ...inboundConnections(customer, agent),
    { id: 'k-bob', kind: 'third_party', endpoint: BOB, state: bob, since: 1000 },
  ];
}

function ok(run) {
  return new Promise((resolve, reject) => run({ success: resolve, failure: (e) => reject(new Error(String(e))) }));
}

async function bobEndpoint() {
  const { endpoints } = await ok((cb) => new connect.Agent().getEndpoints(null, cb));
  return endpoints.find((e) => e.type === connect.EndpointType.AGENT);
}

/** A connected call, then contact.addConnection(bob): bob rings, the caller holds. */
async function startTransfer(contactEvents) {
  await ring();
  await connectCall();
  const contact = new connect.Contact('c-1');
  if (contactEvents) {
    for (const name of ['Connecting', 'Connected', 'Refresh', 'ACW', 'Ended', 'Destroy', 'Missed']) {
      contact['on' + name](() => contactEvents.push(name));
    }
  }
  await ok((cb) => contact.addConnection(endpointBob, cb));
  assert.deepEqual(session.calls.at(-1), ['addConnection', 'c-1', BOB]);
  events.length = 0;
  session.putContact('c-1', { connections: transferConnections('hold', 'connected', 'connecting') });
  await session.push(['contactRefresh']);
  assert.deepEqual(events, ['agent::refresh', 'contact::refresh']);
  assert.equal(contact.getStatus().type, connect.ContactStateType.CONNECTED);
  const third = contact.getThirdPartyConnections();
  assert.equal(third.length, 1);
  assert.equal(third[0].getType(), connect.ConnectionType.OUTBOUND);
  assert.equal(third[0].isConnecting(), true);
  assert.equal(third[0].isActive(), true, 'CONNECTING is an active connection state');
  assert.equal(third[0].getEndpoint().name, 'Bob Suzuki');
  assert.equal(contact.getSingleActiveThirdPartyConnection().getConnectionId(), 'k-bob');
  assert.equal(contact.getInitialConnection().isOnHold(), true);
  assert.equal(contact.getActiveInitialConnection().getConnectionId(), 'k-cust', 'a held customer is still active');
  assert.equal(contact.getAgentConnection().isConnected(), true);
  return contact;
}
let endpointBob = null;

/** The agent's own connection.destroy(): the agent leaves the others on the call. */
async function agentLeaves(contact, customer, bob) {
  await ok((cb) => contact.getAgentConnection().destroy(cb));
  assert.deepEqual(session.calls.at(-1), ['end', 'c-1', 'k-agent']);
  events.length = 0;
  session.setStatus('AfterCallWork');
  session.putContact('c-1', { state: 'ended', connections: transferConnections(customer, 'disconnected', bob) });
  await session.push(['ended']);
  assert.deepEqual(events, [
    'agent::refresh', 'agent::state_change', 'agent::acw', 'contact::acw', 'contact::ended', 'contact::refresh',
  ]);
  assert.equal(contact.getStatus().type, connect.ContactStateType.ENDED);
  assert.equal(new connect.Agent().getState().name, 'AfterCallWork');
}

/** Choosing Available clears after-call work; the contact is then destroyed, ENDED not repeated. */
async function clearAfterTransfer() {
  const agent = new connect.Agent();
  const available = agent.getAgentStates().find((s) => s.type === connect.AgentStateType.ROUTABLE);
  await ok((cb) => agent.setState(available, cb));
  assert.deepEqual(session.calls.slice(-2), [['clear', 'c-1'], ['setState', 'Available']]);
  events.length = 0;
  session.removeContact('c-1');
  session.setStatus('Available');
  await session.push(['destroyed']);
  assert.deepEqual(events, ['agent::refresh', 'agent::routable', 'agent::state_change', 'contact::destroyed']);
}

test('cold transfer: addConnection, then the agent leaves at once: REFRESH, then ACW/ENDED, DESTROYED', async () => {
  endpointBob = await bobEndpoint();
  const seen = [];
  const contact = await startTransfer(seen);
  // Cold: the agent hangs up while bob still rings; the caller waits on hold for him.
  await agentLeaves(contact, 'hold', 'connecting');
  await clearAfterTransfer();
  assert.deepEqual(seen, ['Refresh', 'ACW', 'Ended', 'Refresh', 'Destroy']);
  assert.deepEqual(session.calls.map((c) => c[0]), ['addConnection', 'end', 'clear', 'setState']);
});

test('warm transfer: consult, swap both ways, then hand over: contact events only when the agent leaves', async () => {
  endpointBob = await bobEndpoint();
  const seen = [];
  const contact = await startTransfer(seen);

  // Bob answers: the agent consults him while the caller holds.
  events.length = 0;
  session.putContact('c-1', { connections: transferConnections('hold', 'connected', 'connected') });
  await session.push(['contactRefresh']);
  assert.deepEqual(events, ['agent::refresh', 'contact::refresh']);
  assert.equal(contact.getSingleActiveThirdPartyConnection().isConnected(), true);
  assert.equal(contact.getActiveConnections().length, 3);

  // toggleActiveConnections: back to the caller, bob holds...
  await ok((cb) => contact.toggleActiveConnections(cb));
  assert.deepEqual(session.calls.at(-1), ['toggle', 'c-1']);
  events.length = 0;
  session.putContact('c-1', { connections: transferConnections('connected', 'connected', 'hold') });
  await session.push(['contactRefresh']);
  assert.deepEqual(events, ['agent::refresh', 'contact::refresh']);
  assert.equal(contact.getInitialConnection().isConnected(), true);
  assert.equal(contact.getSingleActiveThirdPartyConnection().isOnHold(), true);
  assert.equal(contact.getStatus().type, connect.ContactStateType.CONNECTED);

  // ...and again: bob, the caller holds.
  await ok((cb) => contact.toggleActiveConnections(cb));
  events.length = 0;
  session.putContact('c-1', { connections: transferConnections('hold', 'connected', 'connected') });
  await session.push(['contactRefresh']);
  assert.deepEqual(events, ['agent::refresh', 'contact::refresh']);

  // Hand over (complete the transfer): the agent leaves; the caller is
  // resumed and talks to bob.
  await agentLeaves(contact, 'connected', 'connected');
  assert.equal(contact.getInitialConnection().isConnected(), true);
  assert.equal(contact.getSingleActiveThirdPartyConnection().isConnected(), true);
  await clearAfterTransfer();
  assert.deepEqual(seen, ['Refresh', 'Refresh', 'Refresh', 'Refresh', 'ACW', 'Ended', 'Refresh', 'Destroy']);
  assert.deepEqual(session.calls.map((c) => c[0]), ['addConnection', 'toggle', 'toggle', 'end', 'clear', 'setState']);
});

test('conference: join, drop the third party (REFRESH only), join again, then the agent leaves', async () => {
  endpointBob = await bobEndpoint();
  const seen = [];
  const contact = await startTransfer(seen);
  session.putContact('c-1', { connections: transferConnections('hold', 'connected', 'connected') });
  await session.push(['contactRefresh']);

  await ok((cb) => contact.conferenceConnections(cb));
  assert.deepEqual(session.calls.at(-1), ['conference', 'c-1']);
  events.length = 0;
  session.putContact('c-1', { connections: transferConnections('connected', 'connected', 'connected') });
  await session.push(['contactRefresh']);
  assert.deepEqual(events, ['agent::refresh', 'contact::refresh']);
  assert.equal(contact.getActiveConnections().length, 3);
  assert.ok(contact.getConnections().every((k) => k.isConnected() && !k.isOnHold()), 'nobody holds in a conference');
  assert.equal(contact.hasTwoActiveParticipants(), false);

  // The agent drops bob from the conference: the call goes on, two parties.
  await ok((cb) => contact.getSingleActiveThirdPartyConnection().destroy(cb));
  assert.deepEqual(session.calls.at(-1), ['end', 'c-1', 'k-bob']);
  events.length = 0;
  session.putContact('c-1', { connections: transferConnections('connected', 'connected', 'disconnected') });
  await session.push(['contactRefresh']);
  assert.deepEqual(events, ['agent::refresh', 'contact::refresh']);
  assert.equal(contact.getSingleActiveThirdPartyConnection(), null);
  assert.equal(contact.getThirdPartyConnections()[0].isActive(), false);
  assert.equal(contact.hasTwoActiveParticipants(), true);
  assert.equal(contact.getStatus().type, connect.ContactStateType.CONNECTED);

  // Bob again, conferenced, then the agent leaves the two of them talking.
  await ok((cb) => contact.addConnection(endpointBob, cb));
  session.putContact('c-1', { connections: transferConnections('hold', 'connected', 'connecting') });
  await session.push(['contactRefresh']);
  session.putContact('c-1', { connections: transferConnections('hold', 'connected', 'connected') });
  await session.push(['contactRefresh']);
  await ok((cb) => contact.conferenceConnections(cb));
  session.putContact('c-1', { connections: transferConnections('connected', 'connected', 'connected') });
  await session.push(['contactRefresh']);
  await agentLeaves(contact, 'connected', 'connected');
  await clearAfterTransfer();
  assert.deepEqual(seen.filter((e) => e !== 'Refresh'), ['ACW', 'Ended', 'Destroy']);
  assert.ok(!seen.includes('Connected') && !seen.includes('Connecting'), 'no state events while the contact stays CONNECTED');
});

// Streams reports a reloaded CCP (core.js: the conduit relays the new
// document's ACKNOWLEDGE upstream onto the page's event bus) and carries on
// with the same subscriptions; no agent INIT again.
test('a reloaded CCP frame: ACKNOWLEDGE again, subscriptions and agent data carry on', async () => {
  const seen = [];
  connect.core.getEventBus().subscribe(connect.EventType.ACKNOWLEDGE, () => seen.push('ack'));
  new connect.Agent().onStateChange((e) => seen.push(`state ${e.newState}`));
  session.setStatus('Lunch');
  session.emit('frameReloaded', { loads: 2 });
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(seen, ['ack', 'state Lunch']);
  assert.ok(!events.includes('agent::init'), 'the agent is not initialized again');
  assert.equal(connect.core.initialized, true);
  await ok((cb) => new connect.Agent().setState(new connect.Agent().getAgentStates()[0], cb));
  assert.deepEqual(session.calls.at(-1), ['setState', 'Available']);
});

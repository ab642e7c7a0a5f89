// One check per voice API row of Amazon Connect Streams 2.28's
// Documentation.md and cheat sheet (the 154-row table the team keeps of
// them): the name exists on the facade with the kind Streams gives it,
// and enumerations carry Streams' values. Behaviour is checked by
// streams-facade.test.mjs (event semantics) and the browser tests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadFacade } from './fake-sdk.mjs';

const connect = await loadFacade();

const FUNCTIONS = [
  // connect.core
  'core.initCCP', 'core.onInitialized', 'core.onAuthFail', 'core.onAccessDenied', 'core.onAuthorizeSuccess',
  'core.onAuthorizeRetriesExhausted', 'core.onCTIAuthorizeRetriesExhausted', 'core.onIframeRetriesExhausted',
  'core.terminate', 'core.getEventBus', 'core.getUpstream', 'core.onSoftphoneSessionInit', 'core.getSoftphoneManager',
  'core.initSoftphoneManager', 'core.getFrameMediaDevices', 'core.viewContact', 'core.onViewContact',
  'core.reauthenticateAfterLogout', 'core.getPopupManager', 'core.getSDKClientConfig', 'core.getContactEventName',
  // entry points
  'agent', 'contact', 'Agent', 'Contact', 'Connection', 'VoiceConnection', 'Endpoint', 'Endpoint.byPhoneNumber',
  'Address', 'getLog', 'hitch', 'onWebsocketInitFailure', 'onWebSocketInitFailure', 'sendActivity', 'SoftphoneError',
  // agent
  ...[
    'onRefresh', 'onStateChange', 'onRoutable', 'onNotRoutable', 'onOffline', 'onError', 'onSoftphoneError',
    'onAfterCallWork', 'onContactPending', 'onMuteToggle', 'onWebSocketConnectionLost', 'onWebSocketConnectionGained',
    'onNetworkConnectionStatusChanged', 'getNetworkConnectionStatus', 'onEnqueuedNextState', 'onClearedNextState',
    'onLocalMediaStreamCreated', 'onSpeakerDeviceChanged', 'onMicrophoneDeviceChanged', 'onRingerDeviceChanged',
    'getState', 'getStatus', 'getAvailabilityState', 'getStateDuration', 'getStatusDuration', 'getNextState',
    'getAgentStates', 'getPermissions', 'getContacts', 'getConfiguration', 'getRoutingProfile', 'getChannelConcurrency',
    'getName', 'getExtension', 'getDialableCountries', 'isSoftphoneEnabled', 'getAgentARN', 'setConfiguration',
    'setState', 'setStatus', 'connect', 'getAllQueueARNs', 'getEndpoints', 'getAddresses', 'toSnapshot', 'mute',
    'unmute', 'setSpeakerDevice', 'setMicrophoneDevice', 'setRingerDevice', 'getVoiceEnhancementMode',
    'setVoiceEnhancementMode', 'onVoiceEnhancementModeChanged',
  ].map((m) => `Agent.prototype.${m}`),
  // contact
  ...[
    'onRefresh', 'onIncoming', 'onConnecting', 'onPending', 'onAccepted', 'onConnected', 'onMissed', 'onEnded',
    'onDestroy', 'onACW', 'onError', 'getEventName', 'getContactId', 'getInitialContactId', 'getOriginalContactId',
    'getType', 'getContactSubtype', 'getSegmentAttributes', 'getState', 'getStatus', 'getStatusDuration',
    'getStateDuration', 'getQueue', 'getQueueTimestamp', 'getConnections', 'getInitialConnection',
    'getActiveInitialConnection', 'getAgentConnection', 'getThirdPartyConnections',
    'getSingleActiveThirdPartyConnection', 'getActiveConnections', 'hasTwoActiveParticipants', 'getAttributes',
    'getInitiationMethod', 'getCustomerEndpoint', 'getConnectSystemEndpoint', 'getContactDuration', 'isSoftphoneCall',
    'isInbound', 'isConnected', 'isAutoAcceptEnabled', 'isMultiPartyConferenceEnabled', 'isUnderSupervision', 'accept',
    'reject', 'clear', 'complete', 'destroy', 'notifyIssue', 'addConnection', 'toggleActiveConnections',
    'conferenceConnections', 'toSnapshot', 'silentMonitor', 'bargeIn', 'updateMonitorParticipantState',
  ].map((m) => `Contact.prototype.${m}`),
  // connection / voice connection
  ...[
    'getContactId', 'getConnectionId', 'getEndpoint', 'getAddress', 'getState', 'getStatus', 'getStateDuration',
    'getStatusDuration', 'getType', 'isInitialConnection', 'isActive', 'isConnected', 'isConnecting', 'isOnHold',
    'getMonitorInfo', 'destroy', 'sendDigits', 'hold', 'resume', 'toSnapshot', 'getMediaInfo', 'getMediaType',
    'getMediaController', 'getSoftphoneMediaInfo', 'getQuickConnectName', 'isMute', 'muteParticipant',
    'unmuteParticipant', 'isForcedMute', 'isSilentMonitor', 'isBarge', 'isSilentMonitorEnabled', 'isBargeEnabled',
    'getMonitorCapabilities', 'getMonitorStatus', 'onParticipantHold', 'onParticipantResume', 'canResumeParticipant',
    'onCanResumeParticipantUpdated', 'getVoiceIdSpeakerStatus', 'enrollSpeakerInVoiceId', 'evaluateSpeakerWithVoiceId',
    'optOutVoiceIdSpeaker', 'getVoiceIdSpeakerId', 'deleteVoiceIdSpeaker', 'updateVoiceIdSpeakerId',
  ].map((m) => `VoiceConnection.prototype.${m}`),
  'Endpoint.prototype.stripPhoneNumber',
  ...['info', 'warn', 'error', 'trace', 'debug', 'log', 'critical', 'setLogLevel', 'download'].map((m) => `getLog().${m}`),
];

function resolve(path) {
  let value = connect;
  for (const part of path.split('.')) {
    if (part === 'getLog()') { value = connect.getLog(); continue; }
    value = value?.[part];
  }
  return value;
}

for (const path of FUNCTIONS) {
  test(`connect.${path} is a function`, () => {
    assert.equal(typeof resolve(path), 'function');
  });
}

// Enumerations with the values Streams 2.28 defines (src/api.js, src/event.js).
const ENUMS = {
  AgentStateType: { INIT: 'init', ROUTABLE: 'routable', NOT_ROUTABLE: 'not_routable', OFFLINE: 'offline', SYSTEM: 'system', ERROR: 'error' },
  ContactStateType: { INIT: 'init', INCOMING: 'incoming', PENDING: 'pending', CONNECTING: 'connecting', CONNECTED: 'connected', MISSED: 'missed', ERROR: 'error', ENDED: 'ended', REJECTED: 'rejected', PAUSED: 'paused' },
  ConnectionStateType: { INIT: 'init', CONNECTING: 'connecting', CONNECTED: 'connected', HOLD: 'hold', DISCONNECTED: 'disconnected', SILENT_MONITOR: 'silent_monitor', BARGE: 'barge' },
  ConnectionType: { AGENT: 'agent', INBOUND: 'inbound', OUTBOUND: 'outbound', MONITORING: 'monitoring' },
  ContactType: { VOICE: 'voice', QUEUE_CALLBACK: 'queue_callback', CHAT: 'chat', TASK: 'task', EMAIL: 'email' },
  EndpointType: { PHONE_NUMBER: 'phone_number', AGENT: 'agent', QUEUE: 'queue' },
  ChannelType: { VOICE: 'VOICE', CHAT: 'CHAT', TASK: 'TASK' },
  MediaType: { SOFTPHONE: 'softphone', CHAT: 'chat', TASK: 'task', EMAIL: 'email' },
  MonitoringMode: { SILENT_MONITOR: 'SILENT_MONITOR', BARGE: 'BARGE' },
  NetworkConnectionStatus: { CONNECTED: 'connected', CONNECTING: 'connecting', DISCONNECTED: 'disconnected', FAILED: 'failed' },
  AgentAvailStates: { INIT: 'Init', BUSY: 'Busy', AFTER_CALL_WORK: 'AfterCallWork', CALLING_CUSTOMER: 'CallingCustomer', DIALING: 'Dialing', JOINING: 'Joining', PENDING_AVAILABLE: 'PendingAvailable', PENDING_BUSY: 'PendingBusy' },
  LogLevel: { TRACE: 'TRACE', DEBUG: 'DEBUG', INFO: 'INFO', LOG: 'LOG', WARN: 'WARN', ERROR: 'ERROR', CRITICAL: 'CRITICAL' },
};
for (const [name, expected] of Object.entries(ENUMS)) {
  test(`connect.${name} has Streams' values`, () => {
    for (const [key, value] of Object.entries(expected)) assert.equal(connect[name][key], value, `${name}.${key}`);
  });
}

test('aliases are the same objects as in Streams', () => {
  assert.equal(connect.AgentStatusType, connect.AgentStateType);
  assert.equal(connect.ContactStatusType, connect.ContactStateType);
  assert.equal(connect.ConnectionStatusType, connect.ConnectionStateType);
  assert.equal(connect.AddressType, connect.EndpointType);
  assert.equal(connect.Address, connect.Endpoint);
});

test('event names are namespaced as in Streams', () => {
  assert.equal(connect.EventType.TERMINATED, 'terminated');
  assert.equal(connect.EventType.AUTH_FAIL, 'auth_fail');
  assert.equal(connect.AgentEvents.STATE_CHANGE, 'agent::state_change');
  assert.equal(connect.AgentEvents.WEBSOCKET_CONNECTION_LOST, 'agent::websocket_connection_lost');
  assert.equal(connect.ContactEvents.DESTROYED, 'contact::destroyed');
  assert.equal(connect.ContactEvents.ACW, 'contact::acw');
  assert.equal(connect.core.getContactEventName(connect.ContactEvents.CONNECTED, 'c-1'), 'contact::connected::c-1');
  assert.throws(() => connect.core.getContactEventName('contact::nonsense', 'c-1'));
});

test('the cheat sheet\'s monitoring check runs: Object.values(connect.MonitoringMode)', () => {
  assert.deepEqual(Object.values(connect.MonitoringMode), ['SILENT_MONITOR', 'BARGE']);
});

test('connect.Endpoint: byPhoneNumber and stripPhoneNumber', () => {
  const e = connect.Endpoint.byPhoneNumber('+15555550100', 'Front desk');
  assert.ok(e instanceof connect.Endpoint);
  assert.equal(e.type, connect.EndpointType.PHONE_NUMBER);
  assert.equal(e.name, 'Front desk');
  assert.equal(new connect.Endpoint({ phoneNumber: 'sip:+15555550100@lily-outbound' }).stripPhoneNumber(), '+15555550100');
});

test('connect.hitch binds scope and leading arguments', () => {
  const o = { k: 2, f(a, b) { return this.k * a + b; } };
  assert.equal(connect.hitch(o, o.f, 10)(1), 21);
});

test('connect.getLog() keeps a bounded log and formats %s', () => {
  const log = connect.getLog();
  log.setEchoLevel('CRITICAL');
  for (let i = 0; i < 2100; i++) log.info('line %s', i);
  const entries = log.getLoggedEntries();
  assert.equal(entries.length, 2000);
  assert.equal(entries.at(-1).text, 'line 2099');
  assert.equal(typeof log.info('x').withObject({}).withException(new Error('e')).sendInternalLogToServer, 'function');
});

test('new connect.Agent() before init throws as in Streams', () => {
  assert.equal(connect.agent.initialized, false);
  assert.throws(() => new connect.Agent(), /not yet initialized/);
});

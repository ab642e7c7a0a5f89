// Type declarations for the Switchboard Amazon Connect Streams facade
// (connect-streams.js / connect-streams.mjs): the voice part of the
// `connect` namespace of Amazon Connect Streams 2.28, as the facade
// implements it. Written for this facade; checked by `tsc --strict` on a
// consumer in the test command (tests/js/ts-consumer). A global
// declaration, as the script tag defines a global `connect`; the ES module
// entry's types are in connect-streams.d.mts.

declare namespace connect {
  /** Returned by every subscription: call `unsubscribe()` to stop. */
  interface Subscription {
    readonly eventName: string | null;
    unsubscribe(): void;
  }

  type SuccessCallback<T = unknown> = (data: T) => void;
  /** Streams' error object; `String(err)` gives `{"type","message"}` JSON. */
  interface CallError {
    readonly type: string;
    readonly message: string;
    readonly stack: string[];
    readonly retryStatus: string;
  }
  interface SuccessFailOptions<T = unknown> {
    success?: SuccessCallback<T>;
    failure?: (err: CallError, data: { message: string; error: unknown }) => void;
  }
  interface ConnectOptions extends SuccessFailOptions {
    queueARN?: string;
  }

  // ---- enumerations -------------------------------------------------------
  const AgentStateType: { readonly INIT: 'init'; readonly ROUTABLE: 'routable'; readonly NOT_ROUTABLE: 'not_routable'; readonly OFFLINE: 'offline'; readonly SYSTEM: 'system'; readonly ERROR: 'error' };
  type AgentStateType = (typeof AgentStateType)[keyof typeof AgentStateType];
  const AgentStatusType: typeof AgentStateType;
  type AgentStatusType = AgentStateType;
  const AgentAvailStates: Readonly<Record<'INIT' | 'BUSY' | 'AFTER_CALL_WORK' | 'CALLING_CUSTOMER' | 'DIALING' | 'JOINING' | 'PENDING_AVAILABLE' | 'PENDING_BUSY', string>>;
  const AgentErrorStates: Readonly<Record<string, string>>;
  const ContactStateType: { readonly INIT: 'init'; readonly INCOMING: 'incoming'; readonly PENDING: 'pending'; readonly CONNECTING: 'connecting'; readonly CONNECTED: 'connected'; readonly MISSED: 'missed'; readonly ERROR: 'error'; readonly ENDED: 'ended'; readonly REJECTED: 'rejected'; readonly PAUSED: 'paused' };
  type ContactStateType = (typeof ContactStateType)[keyof typeof ContactStateType];
  const ContactStatusType: typeof ContactStateType;
  type ContactStatusType = ContactStateType;
  const CONTACT_ACTIVE_STATES: readonly ContactStateType[];
  const ConnectionStateType: { readonly INIT: 'init'; readonly CONNECTING: 'connecting'; readonly CONNECTED: 'connected'; readonly HOLD: 'hold'; readonly DISCONNECTED: 'disconnected'; readonly SILENT_MONITOR: 'silent_monitor'; readonly BARGE: 'barge' };
  type ConnectionStateType = (typeof ConnectionStateType)[keyof typeof ConnectionStateType];
  const ConnectionStatusType: typeof ConnectionStateType;
  type ConnectionStatusType = ConnectionStateType;
  const CONNECTION_ACTIVE_STATES: readonly ConnectionStateType[];
  const ConnectionType: { readonly AGENT: 'agent'; readonly INBOUND: 'inbound'; readonly OUTBOUND: 'outbound'; readonly MONITORING: 'monitoring' };
  type ConnectionType = (typeof ConnectionType)[keyof typeof ConnectionType];
  const ContactType: { readonly VOICE: 'voice'; readonly QUEUE_CALLBACK: 'queue_callback'; readonly CHAT: 'chat'; readonly TASK: 'task'; readonly EMAIL: 'email' };
  type ContactType = (typeof ContactType)[keyof typeof ContactType];
  const EndpointType: { readonly PHONE_NUMBER: 'phone_number'; readonly AGENT: 'agent'; readonly QUEUE: 'queue' };
  type EndpointType = (typeof EndpointType)[keyof typeof EndpointType];
  const AddressType: typeof EndpointType;
  type AddressType = EndpointType;
  const ContactInitiationMethod: Readonly<Record<string, string>>;
  const ChannelType: { readonly VOICE: 'VOICE'; readonly CHAT: 'CHAT'; readonly TASK: 'TASK' };
  const MediaType: { readonly SOFTPHONE: 'softphone'; readonly CHAT: 'chat'; readonly TASK: 'task'; readonly EMAIL: 'email' };
  const MonitoringMode: { readonly SILENT_MONITOR: 'SILENT_MONITOR'; readonly BARGE: 'BARGE' };
  const MonitoringErrorTypes: { readonly INVALID_TARGET_STATE: 'invalid_target_state' };
  const SoftphoneCallType: Readonly<Record<'AUDIO_VIDEO' | 'VIDEO_ONLY' | 'AUDIO_ONLY' | 'NONE', string>>;
  const SoftphoneErrorTypes: Readonly<Record<string, string>>;
  const NetworkConnectionStatus: { readonly CONNECTED: 'connected'; readonly CONNECTING: 'connecting'; readonly DISCONNECTED: 'disconnected'; readonly FAILED: 'failed' };
  type NetworkConnectionStatus = (typeof NetworkConnectionStatus)[keyof typeof NetworkConnectionStatus];
  const LogLevel: Readonly<Record<'TEST' | 'TRACE' | 'DEBUG' | 'INFO' | 'LOG' | 'WARN' | 'ERROR' | 'CRITICAL', string>>;
  const ClickType: Readonly<Record<'ACCEPT' | 'REJECT' | 'HANGUP', string>>;
  const EventType: Readonly<Record<string, string>> & { readonly TERMINATE: 'terminate'; readonly TERMINATED: 'terminated'; readonly AUTH_FAIL: 'auth_fail'; readonly ACCESS_DENIED: 'access_denied'; readonly INIT: 'init'; readonly ACK_TIMEOUT: 'ack_timeout'; readonly IFRAME_RETRIES_EXHAUSTED: 'iframe_retries_exhausted' };
  const AgentEvents: Readonly<Record<string, string>>;
  const ContactEvents: Readonly<Record<string, string>>;
  const WebSocketEvents: Readonly<Record<string, string>>;
  const ConfigurationEvents: Readonly<Record<string, string>>;

  // ---- data -----------------------------------------------------------------
  interface AgentStateDefinition { readonly agentStateARN: string; readonly type: AgentStateType; readonly name: string }
  interface AgentState { readonly agentStateARN: string | null; readonly name: string; readonly startTimestamp: Date; readonly type: AgentStateType }
  interface AgentAvailabilityState { readonly state: string; readonly timeStamp: Date }
  interface Queue { readonly name: string; readonly queueARN: string; readonly queueId: string }
  interface RoutingProfile {
    readonly name: string;
    readonly routingProfileARN: string;
    readonly routingProfileId: string;
    readonly queues: Queue[];
    readonly defaultOutboundQueue: Queue | null;
    readonly channelConcurrencyMap: Record<string, number>;
  }
  interface AgentConfiguration {
    readonly name: string;
    readonly username: string;
    readonly agentARN: string;
    readonly softphoneEnabled: boolean;
    readonly softphoneAutoAccept: boolean;
    readonly extension: string | null;
    readonly dialableCountries: string[];
    readonly permissions: string[];
    readonly agentStates: AgentStateDefinition[];
    readonly routingProfile: RoutingProfile;
    readonly agentPreferences: Record<string, unknown>;
  }
  interface AgentStateChange { readonly agent: Agent; readonly oldState: string; readonly newState: string }
  interface SoftphoneErrorInfo { readonly errorType: string; readonly errorMessage: string | undefined; readonly endPointUrl: string | null }
  interface ContactState { readonly type: ContactStateType; readonly timestamp: Date | null }
  interface ConnectionState { readonly type: ConnectionStateType; readonly timestamp: Date | null }
  interface AttributeDictionary { readonly [key: string]: { readonly name: string; readonly value: string } }
  interface MediaDeviceInfoLike { readonly deviceId: string; readonly kind: string; readonly label: string; readonly groupId: string }

  // ---- objects ----------------------------------------------------------------
  class Endpoint {
    constructor(params?: Partial<Endpoint>);
    endpointARN: string | null;
    endpointId: string | null;
    type: EndpointType;
    name: string | null;
    phoneNumber: string | null;
    agentLogin: string | null;
    queue: string | null;
    stripPhoneNumber(): string;
    static byPhoneNumber(phoneNumber: string, name?: string): Endpoint;
  }
  const Address: typeof Endpoint;

  class Agent {
    constructor();
    onRefresh(cb: (agent: Agent) => void): Subscription;
    onStateChange(cb: (change: AgentStateChange) => void): Subscription;
    onRoutable(cb: (agent: Agent) => void): Subscription;
    onNotRoutable(cb: (agent: Agent) => void): Subscription;
    onOffline(cb: (agent: Agent) => void): Subscription;
    onError(cb: (agent: Agent) => void): Subscription;
    onSoftphoneError(cb: (error: SoftphoneErrorInfo) => void): Subscription;
    onAfterCallWork(cb: (agent: Agent) => void): Subscription;
    onContactPending(cb: (agent: Agent) => void): Subscription;
    onMuteToggle(cb: (e: { muted: boolean }) => void): Subscription;
    onWebSocketConnectionLost(cb: (e: unknown) => void): Subscription;
    onWebSocketConnectionGained(cb: (e: unknown) => void): Subscription;
    onNetworkConnectionStatusChanged(cb: (e: { status: NetworkConnectionStatus; previousStatus: NetworkConnectionStatus }) => void): Subscription;
    onEnqueuedNextState(cb: (agent: Agent) => void): Subscription;
    onClearedNextState(cb: (agent: Agent) => void): Subscription;
    onLocalMediaStreamCreated(cb: (e: unknown) => void): Subscription;
    onSpeakerDeviceChanged(cb: (e: { deviceId: string }) => void): Subscription;
    onMicrophoneDeviceChanged(cb: (e: { deviceId: string }) => void): Subscription;
    onRingerDeviceChanged(cb: (e: { deviceId: string }) => void): Subscription;
    onVoiceEnhancementModeChanged(cb: (e: unknown) => void): Subscription;
    getState(): AgentState;
    getStatus(): AgentState;
    getAvailabilityState(): AgentAvailabilityState | null;
    getNextState(): AgentStateDefinition | null;
    getStateDuration(): number;
    getStatusDuration(): number;
    getAgentStates(): AgentStateDefinition[];
    getPermissions(): string[];
    getContacts(contactTypeFilter?: ContactType): Contact[];
    getConfiguration(): AgentConfiguration;
    getRoutingProfile(): RoutingProfile;
    getChannelConcurrency(): Record<string, number>;
    getChannelConcurrency(channel: string): number;
    getName(): string;
    getAgentARN(): string;
    getExtension(): string | null;
    getDialableCountries(): string[];
    isSoftphoneEnabled(): boolean;
    isMute(): boolean;
    getNetworkConnectionStatus(): NetworkConnectionStatus;
    setConfiguration(configuration: Partial<AgentConfiguration>, callbacks?: SuccessFailOptions): Promise<unknown>;
    setState(state: AgentStateDefinition | string, callbacks?: SuccessFailOptions, options?: { enqueueNextState?: boolean }): Promise<unknown>;
    setStatus(state: AgentStateDefinition | string, callbacks?: SuccessFailOptions, options?: { enqueueNextState?: boolean }): Promise<unknown>;
    connect(endpoint: Endpoint, options?: ConnectOptions): Promise<unknown>;
    getAllQueueARNs(): string[];
    getEndpoints(queueARNs: string | string[], callbacks?: SuccessFailOptions<{ endpoints: Endpoint[]; addresses: Endpoint[] }>): Promise<unknown>;
    getAddresses(queueARNs: string | string[], callbacks?: SuccessFailOptions<{ endpoints: Endpoint[]; addresses: Endpoint[] }>): Promise<unknown>;
    toSnapshot(): Agent;
    mute(): Promise<unknown>;
    unmute(): Promise<unknown>;
    setSpeakerDevice(deviceId: string): Promise<void>;
    setMicrophoneDevice(deviceId: string): Promise<void>;
    setRingerDevice(deviceId: string): Promise<void>;
    getVoiceEnhancementMode(): string | null;
    setVoiceEnhancementMode(mode: string, callbacks?: SuccessFailOptions): Promise<unknown>;
  }

  class Contact {
    constructor(contactId: string);
    readonly contactId: string;
    getEventName(event: string): string;
    onRefresh(cb: (contact: Contact) => void): Subscription;
    onIncoming(cb: (contact: Contact) => void): Subscription;
    onConnecting(cb: (contact: Contact) => void): Subscription;
    onPending(cb: (contact: Contact) => void): Subscription;
    onAccepted(cb: (contact: Contact) => void): Subscription;
    onConnected(cb: (contact: Contact) => void): Subscription;
    onMissed(cb: (contact: Contact) => void): Subscription;
    onEnded(cb: (contact: Contact) => void): Subscription;
    onDestroy(cb: (contact: Contact) => void): Subscription;
    onACW(cb: (contact: Contact) => void): Subscription;
    onError(cb: (contact: Contact) => void): Subscription;
    getContactId(): string;
    getInitialContactId(): string;
    getOriginalContactId(): string;
    getType(): ContactType;
    getContactSubtype(): string;
    getSegmentAttributes(): Record<string, unknown>;
    getState(): ContactState;
    getStatus(): ContactState;
    getStateDuration(): number;
    getStatusDuration(): number;
    getContactDuration(): number;
    getQueue(): Queue | null;
    getQueueTimestamp(): Date | null;
    getInitiationMethod(): string;
    getAttributes(): AttributeDictionary;
    getConnections(): VoiceConnection[];
    getInitialConnection(): VoiceConnection | null;
    getActiveInitialConnection(): VoiceConnection | null;
    getAgentConnection(): VoiceConnection | null;
    getThirdPartyConnections(): VoiceConnection[];
    getSingleActiveThirdPartyConnection(): VoiceConnection | null;
    getActiveConnections(): VoiceConnection[];
    hasTwoActiveParticipants(): boolean;
    getCustomerEndpoint(): Endpoint | null;
    getConnectSystemEndpoint(): Endpoint;
    isInbound(): boolean;
    isConnected(): boolean;
    isSoftphoneCall(): boolean;
    isAutoAcceptEnabled(): boolean;
    isMultiPartyConferenceEnabled(): boolean;
    isUnderSupervision(): boolean;
    accept(callbacks?: SuccessFailOptions): Promise<unknown>;
    reject(callbacks?: SuccessFailOptions): Promise<unknown>;
    clear(callbacks?: SuccessFailOptions): Promise<unknown>;
    complete(callbacks?: SuccessFailOptions): Promise<unknown>;
    destroy(callbacks?: SuccessFailOptions): Promise<unknown>;
    notifyIssue(issueCode: string, description: string, callbacks?: SuccessFailOptions): Promise<unknown>;
    addConnection(endpoint: Endpoint, callbacks?: SuccessFailOptions): Promise<unknown>;
    toggleActiveConnections(callbacks?: SuccessFailOptions): Promise<unknown>;
    conferenceConnections(callbacks?: SuccessFailOptions): Promise<unknown>;
    updateContactAttributes(attributes: Record<string, string>, callbacks?: SuccessFailOptions): Promise<unknown>;
    toSnapshot(): ContactSnapshot;
    silentMonitor(callbacks?: SuccessFailOptions): Promise<unknown>;
    bargeIn(callbacks?: SuccessFailOptions): Promise<unknown>;
    updateMonitorParticipantState(callbacks?: SuccessFailOptions): Promise<unknown>;
  }

  class ContactSnapshot extends Contact {
    readonly contactData: Record<string, unknown> & { contactId: string; connections: Array<Record<string, unknown>> };
  }

  class VoiceConnection {
    constructor(contactId: string, connectionId: string);
    readonly contactId: string;
    readonly connectionId: string;
    getContactId(): string;
    getConnectionId(): string;
    getEndpoint(): Endpoint;
    getAddress(): Endpoint;
    getState(): ConnectionState;
    getStatus(): ConnectionState;
    getStateDuration(): number;
    getStatusDuration(): number;
    getType(): ConnectionType;
    isInitialConnection(): boolean;
    isActive(): boolean;
    isConnected(): boolean;
    isConnecting(): boolean;
    isOnHold(): boolean;
    getMonitorInfo(): unknown;
    getMonitorStatus(): string | undefined;
    getMonitorCapabilities(): string[];
    isSilentMonitor(): boolean;
    isBarge(): boolean;
    isSilentMonitorEnabled(): boolean;
    isBargeEnabled(): boolean;
    getMediaType(): string;
    getMediaInfo(): unknown;
    getSoftphoneMediaInfo(): unknown;
    getMediaController(): Promise<unknown>;
    getQuickConnectName(): string | null;
    isMute(): boolean;
    isForcedMute(): boolean;
    canResumeParticipant(): boolean;
    hold(callbacks?: SuccessFailOptions): Promise<unknown>;
    resume(callbacks?: SuccessFailOptions): Promise<unknown>;
    sendDigits(digits: string, callbacks?: SuccessFailOptions): Promise<unknown>;
    destroy(callbacks?: SuccessFailOptions): Promise<unknown>;
    muteParticipant(callbacks?: SuccessFailOptions): Promise<unknown>;
    unmuteParticipant(callbacks?: SuccessFailOptions): Promise<unknown>;
    onParticipantHold(cb: (contact: Contact) => void): Subscription;
    onParticipantResume(cb: (contact: Contact) => void): Subscription;
    onCanResumeParticipantUpdated(cb: (contact: Contact) => void): Subscription;
    toSnapshot(): Record<string, unknown>;
  }
  const Connection: typeof VoiceConnection;
  type Connection = VoiceConnection;

  class SoftphoneError {
    constructor(errorType: string, errorMessage: string, endPointUrl?: string);
    readonly errorType: string;
    readonly errorMessage: string;
  }

  interface EventBus {
    subscribe(eventName: string, callback: (data?: any) => void): Subscription;
    subscribeAll(callback: (data: any, eventName: string) => void): Subscription;
    getSubscriptions(eventName: string): Subscription[];
    trigger(eventName: string, data?: unknown): void;
    unsubscribeAll(): void;
  }

  interface LogEntry {
    withObject(o: unknown): LogEntry;
    withCrossOriginEventObject(o: unknown): LogEntry;
    withException(e: unknown): LogEntry;
    sendInternalLogToServer(): LogEntry;
    readonly level: string;
    readonly text: string;
    readonly time: Date;
  }
  interface Logger {
    test(format: string, ...args: unknown[]): LogEntry;
    trace(format: string, ...args: unknown[]): LogEntry;
    debug(format: string, ...args: unknown[]): LogEntry;
    info(format: string, ...args: unknown[]): LogEntry;
    log(format: string, ...args: unknown[]): LogEntry;
    warn(format: string, ...args: unknown[]): LogEntry;
    error(format: string, ...args: unknown[]): LogEntry;
    critical(format: string, ...args: unknown[]): LogEntry;
    setLogLevel(level: string): void;
    setEchoLevel(level: string): void;
    getLoggedEntries(): LogEntry[];
    download(options?: { logName?: string }): string;
  }

  interface InitCCPOptions {
    ccpUrl: string;
    loginPopup?: boolean;
    loginPopupAutoClose?: boolean;
    loginOptions?: { autoClose?: boolean; height?: number; width?: number; top?: number; left?: number; disableAuthPopupAfterLogout?: boolean };
    loginUrl?: string;
    region?: string;
    softphone?: { allowFramedSoftphone?: boolean; disableRingtone?: boolean; ringtoneUrl?: string; disableEchoCancellation?: boolean; allowEarlyGum?: boolean; VDIPlatform?: string };
    pageOptions?: { enableAudioDeviceSettings?: boolean; enablePhoneTypeSettings?: boolean; showInactivityModal?: boolean };
    ccpAckTimeout?: number;
    ccpSynTimeout?: number;
    ccpLoadTimeout?: number;
    shouldAddNamespaceToLogs?: boolean;
    [option: string]: unknown;
  }

  namespace core {
    let initialized: boolean;
    let loginWindow: Window | null;
    function initCCP(container: HTMLElement, options: InitCCPOptions): void;
    function onInitialized(cb: () => void): Subscription;
    function onAuthFail(cb: () => void): Subscription;
    function onAccessDenied(cb: () => void): Subscription;
    function onAuthorizeSuccess(cb: () => void): Subscription;
    function onAuthorizeRetriesExhausted(cb: () => void): Subscription;
    function onCTIAuthorizeRetriesExhausted(cb: () => void): Subscription;
    function onIframeRetriesExhausted(cb: () => void): Subscription;
    function onSoftphoneSessionInit(cb: (e: unknown) => void): Subscription;
    function onViewContact(cb: (e: { contactId: string }) => void): Subscription;
    function viewContact(contactId: string): void;
    function getEventBus(): EventBus;
    function getUpstream(): { sendUpstream(event: string, data?: unknown): void; onUpstream(event: string, cb: (data?: any) => void): Subscription };
    function terminate(): void;
    function initSoftphoneManager(options?: unknown): void;
    function getSoftphoneManager(): null;
    function getFrameMediaDevices(timeoutMs?: number): Promise<MediaDeviceInfoLike[]>;
    function reauthenticateAfterLogout(): void;
    function getPopupManager(): { clear(name?: string): void; open(url: string, name: string): void };
    function getContactEventName(event: string, contactId: string): string;
    function getSDKClientConfig(): never;
  }

  interface AgentEntry {
    (cb: (agent: Agent) => void): Subscription;
    initialized: boolean;
  }
  const agent: AgentEntry;
  function contact(cb: (contact: Contact) => void): Subscription;
  function onWebsocketInitFailure(cb: () => void): Subscription;
  function onWebSocketInitFailure(cb: () => void): Subscription;
  function sendActivity(): void;
  function getLog(): Logger;
  function hitch<T extends (...args: any[]) => any>(scope: unknown, f: T, ...args: unknown[]): (...rest: unknown[]) => ReturnType<T>;
}

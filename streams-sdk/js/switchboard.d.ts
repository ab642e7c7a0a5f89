/**
 * Embeds the CCP and resolves with a session once the CCP has answered the
 * handshake and sent its first state (logged in or not: see `loggedIn` and
 * the `loginRequired` event).
 * @param {InitOptions} options
 * @returns {Promise<Session>}
 */
export function init(options: InitOptions): Promise<Session>;
/**
 * Connects straight to a backend (no iframe, no audio) and resolves with a
 * session once the agent's state has arrived. For scripts and tools that
 * drive an agent; the page's origin must be approved by the backend.
 * @param {DirectOptions} options
 * @returns {Promise<Session>}
 */
export function initDirect(options: DirectOptions): Promise<Session>;
/** The frame protocol version this SDK speaks. */
export const FRAME_VERSION: 1;
/** Every error code the SDK reports (anything else becomes `unknown`). @type {ReadonlyArray<string>} */
export const ERROR_CODES: ReadonlyArray<string>;
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
    constructor(code: string, message: string);
    /** @readonly @type {string} */
    readonly code: string;
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
export const Endpoint: Readonly<{
    /**
     * An external phone number in E.164 form.
     * @param {string} number
     * @returns {EndpointInfo}
     */
    phoneNumber(number: string): EndpointInfo;
}>;
/** One leg of a contact, as of the snapshot it came with. */
export class Connection {
    /**
     * @param {Session} session
     * @param {string} contactId
     * @param {any} raw
     */
    constructor(session: Session, contactId: string, raw: any);
    /** @readonly @type {string} */
    readonly id: string;
    /** @readonly @type {string} */
    readonly contactId: string;
    /** @readonly @type {'agent'|'inbound'|'outbound'|'third_party'} */
    readonly kind: "agent" | "inbound" | "outbound" | "third_party";
    /** @readonly @type {EndpointInfo} */
    readonly endpoint: EndpointInfo;
    /** @readonly @type {'init'|'connecting'|'connected'|'hold'|'disconnected'} */
    readonly state: "init" | "connecting" | "connected" | "hold" | "disconnected";
    /** @readonly @type {number | null} */
    readonly since: number | null;
    /** Whether this is the customer's leg. */
    get isInitial(): boolean;
    /** Whether it is talking or held. */
    get isActive(): boolean;
    /** Whether it is on hold. */
    get isOnHold(): boolean;
    /** @returns {Promise<void>} */
    hold(): Promise<void>;
    /** @returns {Promise<void>} */
    resume(): Promise<void>;
    /**
     * Sends DTMF digits (`0-9 * # A-D ,`).
     * @param {string} digits
     * @returns {Promise<void>}
     */
    sendDigits(digits: string): Promise<void>;
    /** Hangs this leg up. @returns {Promise<void>} */
    end(): Promise<void>;
    #private;
}
/** A contact (a call), as of the snapshot it came with. */
export class Contact {
    /**
     * @param {Session} session
     * @param {any} raw
     */
    constructor(session: Session, raw: any);
    /** @readonly @type {string} */
    readonly id: string;
    /** Streams' contact type: a queued callback is `queue_callback`. @readonly @type {'voice'|'queue_callback'} */
    readonly type: "voice" | "queue_callback";
    /** @readonly @type {'init'|'incoming'|'connecting'|'connected'|'ended'|'missed'|'rejected'|'error'} */
    readonly state: "init" | "incoming" | "connecting" | "connected" | "ended" | "missed" | "rejected" | "error";
    /** @readonly @type {number | null} */
    readonly since: number | null;
    /** @readonly @type {'inbound'|'outbound'|'transfer'|'callback'} */
    readonly initiation: "inbound" | "outbound" | "transfer" | "callback";
    /** @readonly @type {QueueRef | null} */
    readonly queue: QueueRef | null;
    /** @readonly @type {Readonly<Record<string, string>>} */
    readonly attributes: Readonly<Record<string, string>>;
    /** @readonly @type {ReadonlyArray<Connection>} */
    readonly connections: ReadonlyArray<Connection>;
    /** @readonly @type {number} */
    readonly createdAt: number;
    /** The customer's connection. @returns {Connection | undefined} */
    get initialConnection(): Connection | undefined;
    /** The agent's own connection. @returns {Connection | undefined} */
    get agentConnection(): Connection | undefined;
    /** Other agents or numbers added to the contact. @returns {Connection[]} */
    get thirdPartyConnections(): Connection[];
    /** @returns {Promise<void>} */
    accept(): Promise<void>;
    /** @returns {Promise<void>} */
    reject(): Promise<void>;
    /**
     * Ends after-call work (or dismisses a missed contact).
     * @param {string} [wrapUpCode] one of the agent configuration's codes
     * @returns {Promise<void>}
     */
    clear(wrapUpCode?: string): Promise<void>;
    /**
     * Adds a third party (consult or transfer); the customer goes on hold.
     * @param {EndpointInfo} endpoint
     * @returns {Promise<string>} the new connection's id
     */
    addConnection(endpoint: EndpointInfo): Promise<string>;
    /** Joins every active connection. @returns {Promise<void>} */
    conference(): Promise<void>;
    /** Swaps which of two connections is on hold. @returns {Promise<void>} */
    toggle(): Promise<void>;
    /**
     * Sets contact attributes.
     * @param {Record<string, string>} attributes
     * @returns {Promise<void>}
     */
    updateAttributes(attributes: Record<string, string>): Promise<void>;
    #private;
}
/** The logged-in agent. Getters read the latest snapshot. */
export class Agent {
    /** @param {Session} session */
    constructor(session: Session);
    /** @returns {AgentStatus} */
    get state(): AgentStatus;
    /** The states the agent may choose. @returns {ReadonlyArray<AgentState>} */
    get states(): ReadonlyArray<AgentState>;
    /** @returns {AgentConfiguration} */
    get configuration(): AgentConfiguration;
    /** @returns {RoutingProfile} */
    get routingProfile(): RoutingProfile;
    /** @returns {string} */
    get name(): string;
    /** @returns {boolean} */
    get muted(): boolean;
    /**
     * Chooses a state by name; during a contact it becomes the next state.
     * @param {string} name
     * @returns {Promise<void>}
     */
    setState(name: string): Promise<void>;
    /** Agents, queues and numbers to transfer or call. @returns {Promise<ReadonlyArray<EndpointInfo>>} */
    quickConnects(): Promise<ReadonlyArray<EndpointInfo>>;
    /**
     * Places an outbound call.
     * @param {EndpointInfo} endpoint
     * @returns {Promise<string>} the new contact's id
     */
    connect(endpoint: EndpointInfo): Promise<string>;
    /** @returns {Promise<void>} */
    mute(): Promise<void>;
    /** @returns {Promise<void>} */
    unmute(): Promise<void>;
    /** The browser's audio devices, as the CCP sees them. @returns {Promise<ReadonlyArray<AudioDevice>>} */
    devices(): Promise<ReadonlyArray<AudioDevice>>;
    /**
     * Chooses a device (empty id: the default). Applies from the next call.
     * @param {'microphone'|'speaker'|'ringer'} device
     * @param {string} deviceId
     * @returns {Promise<void>}
     */
    setDevice(device: "microphone" | "speaker" | "ringer", deviceId: string): Promise<void>;
    #private;
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
    constructor(link: {
        iframe?: HTMLIFrameElement;
        ccpUrl?: string;
        core?: DirectCoreLike;
        requestTimeoutMs: number;
    });
    /** @readonly @type {'frame'|'direct'} */
    readonly transport: "frame" | "direct";
    /** The CCP's iframe (frame transport). @readonly @type {HTMLIFrameElement | null} */
    readonly iframe: HTMLIFrameElement | null;
    /** The CCP's origin, the only one messages are exchanged with (frame transport). @readonly @type {string | null} */
    readonly ccpOrigin: string | null;
    /** The agent. */
    agent: Agent;
    /** How many messages were dropped (wrong window, origin, shape or nonce). */
    dropped: number;
    /** @internal @returns {any} */
    get _agent(): any;
    /** @internal @returns {AgentStatus} */
    get _status(): AgentStatus;
    /** Every contact, oldest first. @returns {ReadonlyArray<Contact>} */
    get contacts(): ReadonlyArray<Contact>;
    /**
     * One contact by id.
     * @param {string} id
     * @returns {Contact | undefined}
     */
    contact(id: string): Contact | undefined;
    /** Whether the agent's data has arrived (`agent`'s getters work). */
    get hasAgent(): boolean;
    /** Whether the CCP has a logged-in agent. */
    get loggedIn(): boolean;
    /** The CCP's backend link. */
    get link(): string;
    /** Whether this tab's CCP owns the softphone (rings, plays audio). */
    get leader(): boolean;
    /**
     * Subscribes to an event; returns the function that unsubscribes.
     * @template {keyof SessionEvents} K
     * @param {K} name
     * @param {(payload: SessionEvents[K]) => void} callback
     * @returns {() => void}
     */
    on<K extends keyof SessionEvents>(name: K, callback: (payload: SessionEvents[K]) => void): () => void;
    /**
     * Opens the CCP's login page in a popup; resolves once the CCP is logged
     * in. Call it from a click (popups need a user gesture).
     * @param {{timeoutMs?: number}} [options]
     * @returns {Promise<void>}
     */
    login(options?: {
        timeoutMs?: number;
    }): Promise<void>;
    /** Logs the agent out of the CCP (every tab). @returns {Promise<void>} */
    logout(): Promise<void>;
    /** Removes the CCP and stops listening; pending actions reject. */
    terminate(): void;
    /** @internal @param {any} op @returns {Promise<any>} */
    _op(op: any): Promise<any>;
    /** @internal @param {any} op @returns {Promise<void>} */
    _ack(op: any): Promise<void>;
    /** @internal @param {any} action @returns {Promise<any>} */
    _action(action: any): Promise<any>;
    /**
     * Says hello until the CCP answers, then waits for its first state.
     * @internal
     * @param {number} timeoutMs
     * @returns {Promise<void>}
     */
    _handshake(timeoutMs: number): Promise<void>;
    /**
     * A message from the direct transport's core.
     * @internal
     * @param {string} text
     */
    _deliver(text: string): void;
    #private;
}
export type AgentState = {
    name: string;
    kind: "routable" | "not_routable" | "offline" | "system";
};
export type AgentStatus = {
    /**
     * the current state's name
     */
    name: string;
    kind: "routable" | "not_routable" | "offline" | "system";
    /**
     * when it was entered (ms since the epoch)
     */
    since: number;
    /**
     * a state chosen during a contact, applied after it
     */
    next: AgentState | null;
};
export type QueueRef = {
    id: string;
    name: string;
};
export type RoutingProfile = {
    id: string;
    name: string;
    queues: ReadonlyArray<{
        queue: QueueRef;
        priority: number;
        delay_s: number;
    }>;
};
export type AgentConfiguration = {
    username: string;
    name: string;
    routing_profile: RoutingProfile;
    softphone_enabled: boolean;
    wrap_up_codes: ReadonlyArray<string>;
};
/**
 * A destination: a quick connect from `agent.quickConnects()`, or a number
 * from `Endpoint.phoneNumber()`.
 */
export type EndpointInfo = {
    id: string;
    kind: "phone_number" | "agent" | "queue";
    name: string;
    phone_number?: string | undefined;
    agent?: string | undefined;
    queue?: string | undefined;
};
export type AudioDevice = {
    kind: "microphone" | "speaker";
    device_id: string;
    label: string;
};
export type DirectOptions = {
    /**
     * the backend, e.g. `http://127.0.0.1:8480`
     */
    backendUrl: string;
    /**
     * with `password`, to log in
     */
    username?: string | undefined;
    password?: string | undefined;
    /**
     * a token from an earlier login instead
     */
    token?: string | undefined;
    /**
     * how long `initDirect` waits for the backend (default 5000)
     */
    timeoutMs?: number | undefined;
    /**
     * the backstop for an action the core never answers (default 8000; the core itself answers `timeout` after 5000)
     */
    requestTimeoutMs?: number | undefined;
};
/**
 * The core's side of the direct transport (`direct/core.js`).
 */
export type DirectCoreLike = {
    post: (text: string) => void;
    close: () => void;
};
export type InitOptions = {
    /**
     * where the CCP is, e.g. `http://127.0.0.1:8480/ccp/`
     */
    ccpUrl: string;
    /**
     * where the iframe goes (default: `document.body`)
     */
    container?: HTMLElement | undefined;
    /**
     * keep the CCP invisible; audio still plays
     */
    hidden?: boolean | undefined;
    /**
     * how long `init` waits for the CCP (default 5000)
     */
    timeoutMs?: number | undefined;
    /**
     * the backstop for an action the CCP never answers (default 8000; the CCP itself answers `timeout` after 5000, or 6000 in a follower tab, and a smaller backstop may report `timeout` for an action the CCP then completes)
     */
    requestTimeoutMs?: number | undefined;
};
/**
 * The events a session emits and what each callback receives.
 */
export type SessionEvents = {
    /**
     * the agent's state changed
     */
    stateChange: {
        state: AgentStatus;
        previous: AgentStatus | null;
    };
    /**
     * the agent became routable (e.g. Available)
     */
    routable: AgentStatus;
    /**
     * the agent chose a not-routable state
     */
    notRoutable: AgentStatus;
    /**
     * the agent went offline
     */
    offline: AgentStatus;
    /**
     * a contact entered after-call work
     */
    afterCallWork: Contact;
    /**
     * anything about the agent changed
     */
    agentRefresh: Agent;
    /**
     * a contact is ringing
     */
    incoming: Contact;
    /**
     * an outbound contact is dialing
     */
    connecting: Contact;
    /**
     * the agent accepted a ringing contact
     */
    accepted: Contact;
    /**
     * the contact is connected
     */
    connected: Contact;
    /**
     * it rang out
     */
    missed: Contact;
    /**
     * the call ended for this agent
     */
    ended: Contact;
    /**
     * the contact is gone (cleared, rejected)
     */
    destroyed: {
        id: string;
    };
    /**
     * any other contact change (hold, attributes)
     */
    contactRefresh: Contact;
    /**
     * the CCP is not logged in; call `login()`
     */
    loginRequired: void;
    /**
     * the CCP logged in
     */
    loggedIn: void;
    /**
     * the CCP's backend link: `open`, `connecting`, `reconnecting`, `closed`, `logged_out`
     */
    link: string;
    /**
     * whether this tab's CCP owns the softphone
     */
    leader: boolean;
    /**
     * something failed outside an action (lost frame)
     */
    error: SwitchboardError;
    /**
     * the CCP frame loaded again (moved in the page, reloaded) and a new frame session is up; subscriptions carry on, actions in flight at the reload failed with `frame_lost`
     */
    frameReloaded: {
        loads: number;
    };
    /**
     * the audio could not start
     */
    softphoneError: SwitchboardError;
    /**
     * the login's token expires at `expiresAt` (ms since the epoch); the CCP is already refreshing it (Twilio's `tokenWillExpire`)
     */
    tokenWillExpire: {
        expiresAt: number;
    };
    /**
     * the CCP got a new token, valid until `expiresAt`; the token itself stays in the CCP
     */
    tokenRefreshed: {
        expiresAt: number;
    };
    /**
     * the backend ended the login: `session_expired` (not refreshed in time) or `token_revoked` (logged out elsewhere); `loginRequired` follows
     */
    sessionExpired: SwitchboardError;
};

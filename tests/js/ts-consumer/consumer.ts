// A TypeScript page that uses both surfaces of the packed npm package,
// compiled with `tsc --strict` by package.test.mjs. It only has to
// type-check: it is never run.
import { init, SwitchboardError, type Session } from '@switchboard/streams-sdk';
import { connect } from '@switchboard/streams-sdk/connect-streams';

export async function embed(container: HTMLElement): Promise<Session> {
  const session = await init({ ccpUrl: 'https://ccp.example.com/ccp/', container, hidden: true });
  const off: () => void = session.on('incoming', (contact) => {
    void contact.accept().catch((e: unknown) => {
      if (e instanceof SwitchboardError) console.log(e.code);
    });
  });
  off();
  return session;
}

export function streams(container: HTMLElement): void {
  connect.core.initCCP(container, { ccpUrl: 'https://ccp.example.com/ccp/', loginPopup: true, softphone: { allowFramedSoftphone: true } });
  const agentSub: connect.Subscription = connect.agent((agent) => {
    const routable = agent.getAgentStates().find((s) => s.type === connect.AgentStateType.ROUTABLE);
    if (routable) agent.setState(routable, { failure: (err) => console.log(err.type, err.message) }, { enqueueNextState: true });
    agent.onStateChange(({ oldState, newState }) => console.log(oldState, newState));
    const seconds: number = agent.getStateDuration() / 1000;
    console.log(seconds, agent.getRoutingProfile().queues.map((q) => q.queueARN));
  });
  const contactSub = connect.contact((contact) => {
    contact.onConnecting((c) => {
      const caller = c.getActiveInitialConnection()?.getEndpoint().stripPhoneNumber();
      const attrs = c.getAttributes();
      console.log(caller, attrs['customerName']?.value, c.getQueue()?.name);
      if (c.getStatus().type === connect.ContactStateType.CONNECTING && c.isInbound()) void c.accept();
    });
    contact.onACW((c) => { void c.clear({ success: () => console.log('cleared') }); });
  });
  connect.core.getEventBus().subscribe(connect.EventType.TERMINATED, () => {
    agentSub.unsubscribe();
    contactSub.unsubscribe();
  });
  connect.getLog().info('ready %s', 'now').withObject({ a: 1 });
  const endpoint: connect.Endpoint = connect.Endpoint.byPhoneNumber('+15555550100');
  console.log(endpoint.phoneNumber);
}

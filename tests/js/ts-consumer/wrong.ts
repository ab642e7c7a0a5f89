// Must NOT compile: package.test.mjs checks tsc rejects each line, so the
// declarations are precise enough to catch real mistakes.
import { connect } from '@switchboard/streams-sdk/connect-streams';

connect.contact((contact) => contact.onConnecting(42));
connect.agent((agent) => agent.setState({ name: 'Available' }));
const state: number = connect.ContactStateType.CONNECTING;

// The Streams facade as an ES module, for bundlers and `import`:
//
//   import { connect } from '@switchboard/streams-sdk/connect-streams';
//   connect.core.initCCP(div, { ccpUrl: 'https://ccp.example.com/ccp/' });
//
// It imports the SDK statically (so a bundler includes it) and runs the
// classic facade script, which defines the global `connect` as the script
// tag does; both ways share one `connect`.
import * as sdk from './switchboard.js';
import './connect-streams.js';

/** @type {any} */
const connect = /** @type {any} */ (globalThis).connect;
connect.__switchboard.useSdk(sdk);

export { connect };
export default connect;

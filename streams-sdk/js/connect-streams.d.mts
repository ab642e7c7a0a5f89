// Types of connect-streams.mjs: the same `connect` namespace the script
// tag defines (connect-streams.d.ts), as the module's exports.
/// <reference path="./connect-streams.d.ts" />
declare const streams: typeof connect;
export { streams as connect };
export default streams;

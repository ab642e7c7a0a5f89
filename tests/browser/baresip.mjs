// baresip as the far end of a SIP trunk, for browser tests and benches
// (issue 13): Debian's baresip-core, installed by the project's own
// scripts (xtask/src/tools.rs), run headless on loopback with a WAV file
// as its microphone (aufile) and every call's decoded audio recorded
// (sndfile: `rec/*-dec.wav`, what it heard; `rec/*-enc.wav`, what it sent).
// The backend gets a `[sip]` table with one trunk allowing 127.0.0.1 and
// one DID mapped to the sample queue.
import { spawn, execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { existsSync, mkdirSync, readdirSync, writeFileSync, openSync } from 'node:fs';
import { join } from 'node:path';

/** The number the test trunk routes to the `support` queue. */
export const DID = '+15550100';
/** The caller's number (baresip's account user). */
export const CALLER = '+15557654321';

/** The baresip binary, or null when it is not installed. */
export function baresipPath() {
  if (existsSync('/usr/bin/baresip')) return '/usr/bin/baresip';
  try {
    return execFileSync('sh', ['-c', 'command -v baresip'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

const canListenTcp = (port) => new Promise((resolve) => {
  const s = createServer();
  s.once('error', () => resolve(false));
  s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
});

/**
 * A UDP port that was free a moment ago whose TCP port and the next TCP
 * port are free too (baresip binds P for UDP and TCP, and P+1 for TLS).
 */
export async function freeSipPort() {
  for (let i = 0; i < 50; i += 1) {
    const sock = createSocket('udp4');
    await new Promise((r) => sock.bind(0, '127.0.0.1', r));
    const { port } = sock.address();
    await new Promise((r) => sock.close(r));
    if (port < 65000 && await canListenTcp(port) && await canListenTcp(port + 1)) return port;
  }
  throw new Error('no free port pair for SIP');
}

/**
 * The backend's `[sip]` table: UDP on `sipPort`, one trunk from 127.0.0.1,
 * offering `codecs` (TOML list items) in that order.
 */
export function trunkConfig(sipPort, rtpPorts = [36000, 36999], codecs = '"PCMU", "PCMA", "telephone-event"') {
  return `
[sip]
listen_udp = "127.0.0.1:${sipPort}"
rtp_ports = [${rtpPorts[0]}, ${rtpPorts[1]}]

[[sip.trunks]]
name = "test"
allow = ["127.0.0.1"]
codecs = [${codecs}]

[sip.trunks.dids]
"${DID}" = "support"
`;
}

/**
 * Starts baresip in `dir` calling `DID` at 127.0.0.1:`sipPort` from
 * `sourceWav` (8 kHz mono 16-bit for `pcmu`; 48 kHz stereo for
 * `opus/48000/2`). It quits after `seconds`.
 * Returns { proc, recDir, exited, stop }; `stop()` asks it to quit
 * (SIGTERM, so sndfile closes its WAVs) and resolves when it has.
 */
export async function baresipCalls(dir, sourceWav, sipPort, seconds = 60, codec = 'pcmu') {
  const bin = baresipPath();
  if (!bin) throw new Error('baresip is not installed (baresip-core; `cargo xtask install` installs it)');
  const port = await freeSipPort();
  const rtp = 37000 + (port % 400) * 2;
  const recDir = join(dir, 'rec');
  mkdirSync(recDir, { recursive: true });
  const config = [
    'poll_method\tepoll', `sip_listen\t127.0.0.1:${port}`, 'call_local_timeout\t120', 'call_max_calls\t4',
    'audio_player\talsa,null', 'audio_source\talsa,null', 'audio_alert\talsa,null',
    'ausrc_format\ts16', 'auplay_format\ts16', 'auenc_format\ts16', 'audec_format\ts16', 'audio_buffer\t20-160',
    `rtp_ports\t${rtp}-${rtp + 20}`, 'rtcp_mux\tno', 'jitter_buffer_delay\t5-10', 'net_interface\t127.0.0.1',
    'module_path\t/usr/lib/baresip/modules', 'module\tg711.so', 'module\topus.so', 'opus_bitrate\t32000', 'module\talsa.so', 'module\taufile.so', 'module\tsndfile.so',
    'module_tmp\tuuid.so', 'module_tmp\taccount.so', 'module_app\tmenu.so', `snd_path\t${recDir}`, '',
  ].join('\n');
  writeFileSync(join(dir, 'config'), config);
  writeFileSync(join(dir, 'accounts'),
    `<sip:${CALLER}@127.0.0.1:${port}>;regint=0;audio_codecs=${codec};audio_source=aufile,${sourceWav}\n`);
  const log = openSync(join(dir, 'baresip.log'), 'w');
  const proc = spawn(bin, ['-4', '-f', dir, '-t', String(seconds), '-e', `/dial sip:${DID}@127.0.0.1:${sipPort}`],
    { stdio: ['ignore', log, log] });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
    await exited;
    clearTimeout(timer);
  };
  return { proc, recDir, exited, stop, log: join(dir, 'baresip.log') };
}

/** The recording in `recDir` whose name ends with `suffix` (`-dec.wav`, `-enc.wav`). */
export function recording(recDir, suffix) {
  const name = readdirSync(recDir).find((n) => n.endsWith(suffix));
  if (!name) throw new Error(`baresip recorded no *${suffix} in ${recDir}`);
  return join(recDir, name);
}

/** Speech `text` as an 8 kHz mono 16-bit WAV (a G.711 caller's file), padded with `padS` s of silence. */
export function speech8k(dir, name, text, padS = 0) {
  const raw = join(dir, `${name}-raw.wav`);
  const out = join(dir, `${name}-8k.wav`);
  execFileSync('espeak-ng', ['-s', '150', '-w', raw, text]);
  execFileSync('sox', ['-D', raw, '-r', '8000', '-c', '1', '-b', '16', '-e', 'signed', out, 'norm', '-3', 'pad', '0', String(padS)]);
  return out;
}

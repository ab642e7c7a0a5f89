// Lost capture audio, told from timestamp jitter (direct capture,
// worklet.js onDirect). Every chunk of the capture track carries its
// capture time (AudioData.timestamp, us), and a chunk the engine never
// got (the browser dropped it: its capture thread woke too late, or the
// reader was held up until the track's queue overflowed) leaves the
// timestamps a chunk or more ahead of the audio counted so far. That
// audio is skipped in the stream (sb_skip), so the receiver conceals it
// instead of playing everything after it that much later.
//
// But the timestamps are estimates. Chromium stamps a real microphone's
// audio with the time its capture thread read it less the delay the
// device reports (on Linux, PulseAudioInputStream: TimeTicks::Now() minus
// PulseAudio's latency and what its FIFO holds), and cuts each device
// buffer into 10 ms chunks stamped from that one estimate: a read that
// wakes late, or a latency figure that moves, shifts one or several
// chunks' timestamps by milliseconds with no sample lost. Judged chunk by
// chunk (more than half a chunk after the one before), such a shift
// skipped audio that was there: a false hole, and every skip moves the
// stream's timestamps ahead of the audio for good (the receiver then
// holds each packet that much longer).
//
// So a chunk's deviation is measured against the track's own timeline
// (the first chunk's timestamp plus all the audio counted since), and a
// deviation counts as loss only once it has lasted CONFIRM chunks in a
// row: jitter comes back (a late timestamp followed by an early one, or
// an early one by a late one), lost audio does not. The skip is the
// smallest deviation of the run (what every chunk of it agrees was
// lost), taken 20 ms after the hole (the receiver conceals it there).
// Small deviations move the timeline slowly (the device's clock and the
// system's drift apart: 100 ppm is 5 ms in 50 s), and a lasting early
// step re-anchors it without a skip (Chromium restamps a transferred
// track's chunks on the Worker's clock after the first few).

/** Chunks a deviation must last to be lost audio (30 ms of 10 ms chunks). */
export const CONFIRM = 3;
/** Share of a small deviation the timeline takes per chunk (drift). */
const FOLLOW = 1 / 16;

export class CaptureGaps {
  constructor() {
    // The timeline: where the stream's first sample would lie (us), and
    // how much audio has come since (us).
    this.origin = null;
    this.counted = 0;
    // A deviation over half a chunk, not yet confirmed: its sign, the
    // smallest of its size so far (us), and how many chunks it lasted.
    this.run = null;
    // Audio judged lost (us) and how many holes it came in; late or early
    // runs that came back (jitter, no skip); re-anchorings.
    this.lostUs = 0;
    this.gaps = 0;
    this.jitter = 0;
    this.reanchors = 0;
  }

  /**
   * One chunk: its timestamp and length (us). Returns the microseconds of
   * capture to skip now (lost audio just confirmed), else 0.
   */
  chunk(ts, us) {
    if (!Number.isFinite(ts) || !Number.isFinite(us) || us <= 0) return 0;
    if (this.origin === null) {
      this.origin = ts;
      this.counted = us;
      return 0;
    }
    const dev = ts - (this.origin + this.counted);
    this.counted += us;
    const sign = dev > us / 2 ? 1 : dev < -us / 2 ? -1 : 0;
    if (sign === 0) {
      if (this.run) this.jitter += 1;
      this.run = null;
      this.origin += dev * FOLLOW;
      return 0;
    }
    if (!this.run || this.run.sign !== sign) {
      if (this.run) this.jitter += 1;
      this.run = { sign, size: Math.abs(dev), chunks: 1 };
    } else {
      this.run.size = Math.min(this.run.size, Math.abs(dev));
      this.run.chunks += 1;
    }
    if (this.run.chunks < CONFIRM) return 0;
    const size = this.run.size;
    this.run = null;
    if (sign < 0) {
      // Earlier for good: a clock change, or a skip that was too long.
      this.origin -= size;
      this.reanchors += 1;
      return 0;
    }
    this.origin += size;
    this.lostUs += size;
    this.gaps += 1;
    return size;
  }
}

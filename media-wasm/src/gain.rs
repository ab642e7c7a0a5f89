//! Automatic gain control: brings the agent's speech to a steady level so
//! a quiet headset and a loud laptop microphone sound alike, without ever
//! amplifying echo, pumping or clipping.
//!
//! - **It learns only from the near end.** The level is measured, and the
//!   gain moved, only in blocks the noise suppressor calls voice, that
//!   stand well above the near end's own noise floor, in a run of such
//!   blocks (a lone noise blip is not speech), and while the far end has
//!   been silent long enough for its echo to have died out. What the far
//!   end plays is watched through [`AutoGain::far_end`], the echo
//!   canceller's reference: while the caller talks, whatever the
//!   microphone hears may be residual echo, which an AGC would otherwise
//!   take for a quiet agent and lift (the chain's ERLE fell by up to 24 dB
//!   that way before AEC3 converged).
//! - **It moves slowly**: a level (mean power of speech) smoothed over
//!   about a second of speech and not acted on before a whole second of
//!   speech is measured, a dead band of 3 dB below the target (6 dB above
//!   it) before the gain moves at all, and a gain that moves at most [`GainSettings::max_rise_db_per_s`]
//!   up and [`GainSettings::max_fall_db_per_s`] down, so it does not pump.
//! - **It never reaches full scale**: each block's gain is ramped from the
//!   previous block's, and every sample's gain is capped so the block's
//!   peak stays under [`GainSettings::ceiling`] (-3 dBFS). The cap applies from the
//!   block's first sample (no old, higher gain leaks into it); after a
//!   peak the gain returns at a bounded release rate.

use crate::frame::{rms_dbfs, SAMPLE_RATE};

/// Gain control settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GainSettings {
    /// Speech level to reach, dBFS RMS over speech (not pauses).
    pub target_dbfs: f32,
    /// Most gain applied, dB.
    pub max_gain_db: f32,
    /// Least gain applied, dB (negative attenuates).
    pub min_gain_db: f32,
    /// Fastest rise of the gain, dB per second of near-end speech.
    pub max_rise_db_per_s: f32,
    /// Fastest fall of the gain, dB per second of near-end speech.
    pub max_fall_db_per_s: f32,
    /// Voice probability above which a block can be near-end speech.
    pub voice_threshold: f32,
    /// Largest sample magnitude out (0.71 = -3 dBFS: Opus overshoots its
    /// input's peaks at loud onsets, measured up to 1.5 dB and more, and
    /// what leaves the decoder must still be under full scale).
    pub ceiling: f32,
    /// How long after the far end's last activity its echo may still be
    /// heard, seconds (echo path plus reverberation, with margin).
    pub far_hangover_s: f32,
}

impl Default for GainSettings {
    fn default() -> Self {
        GainSettings {
            target_dbfs: -20.0,
            max_gain_db: 18.0,
            min_gain_db: -12.0,
            max_rise_db_per_s: 2.0,
            max_fall_db_per_s: 3.0,
            voice_threshold: 0.6,
            ceiling: 0.71,
            far_hangover_s: 0.6,
        }
    }
}

/// Consecutive voiced blocks before the level is measured (30 ms at
/// 10 ms blocks): single noise blocks the suppressor mislabels as voice
/// do not move the gain.
const VOICED_RUN: u32 = 3;
/// A block must stand this far above the near end's noise floor to count
/// as speech, dB.
const SPEECH_OVER_FLOOR_DB: f32 = 12.0;
/// Quietest block level that can be speech, dBFS.
const SPEECH_MIN_DBFS: f32 = -55.0;
/// A far-end block this far above the far end's noise floor is activity, dB
/// (a steady noisy line does not freeze the gain forever).
const FAR_OVER_FLOOR_DB: f32 = 10.0;
/// Quietest far-end block that counts as activity, dBFS.
const FAR_MIN_DBFS: f32 = -55.0;
/// Noise floors follow a rising level at this rate, dB per second (and a
/// falling one at once).
const FLOOR_RISE_DB_PER_S: f32 = 1.0;
/// The level (mean power of speech blocks) is smoothed over this much
/// speech, seconds.
const LEVEL_TIME_S: f32 = 1.0;
/// The gain starts moving only when it is this far from the wanted one,
/// dB, and stops within [`SETTLED_DB`]: a talker's natural variation does
/// not keep it moving.
const DEADBAND_DB: f32 = 3.0;
/// The same, for lowering the gain: a talker up to this much above the
/// target is left alone, dB. Loud speech cannot clip (the ceiling caps
/// every block), so turning down a talker only a few dB over the target
/// buys nothing and costs a level that drifts under their words: speech
/// normalised to the target over a whole utterance, pauses included, runs
/// about 3 dB over it while voiced, right at [`DEADBAND_DB`], where the
/// gain flapped between holding and falling 3.4 dB.
const DEADBAND_DOWN_DB: f32 = 6.0;
/// See [`DEADBAND_DB`].
const SETTLED_DB: f32 = 0.5;
/// After a peak cap, the gain returns at this rate, dB per second.
const RELEASE_DB_PER_S: f32 = 30.0;

/// The gain stage.
pub struct AutoGain {
    settings: GainSettings,
    /// The slow gain, dB.
    gain_db: f32,
    /// The gain the last sample got (linear), where the next block's ramp
    /// starts.
    applied: f32,
    /// Smoothed near-end speech power (mean square).
    level_power: Option<f32>,
    /// Seconds of near-end speech measured so far (counted up to
    /// [`LEVEL_TIME_S`]): until a whole smoothing time is in, the level is
    /// the plain mean of what was measured and the gain does not move.
    measured_s: f32,
    /// Whether the gain is moving toward the wanted one.
    adapting: bool,
    /// Near-end noise floor (after noise suppression), dBFS.
    near_floor_dbfs: f32,
    /// Far-end noise floor, dBFS.
    far_floor_dbfs: f32,
    /// Samples until the far end's echo can no longer be heard.
    far_hold: usize,
    /// Consecutive near-end voiced blocks.
    voiced_run: u32,
}

impl Default for AutoGain {
    fn default() -> Self {
        Self::new(GainSettings::default())
    }
}

fn db_to_lin(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

/// Follows a noise floor: down at once, up slowly.
fn track_floor(floor: &mut f32, level: f32, seconds: f32) {
    if level < *floor {
        *floor = level;
    } else {
        *floor = (*floor + FLOOR_RISE_DB_PER_S * seconds).min(level);
    }
}

impl AutoGain {
    /// A gain stage with these settings, starting at 0 dB.
    pub fn new(settings: GainSettings) -> AutoGain {
        AutoGain {
            settings,
            gain_db: 0.0,
            applied: 1.0,
            level_power: None,
            measured_s: 0.0,
            adapting: false,
            near_floor_dbfs: 0.0,
            // From silence, rising slowly: a steady far-end signal counts
            // as activity for a long while before it is taken for line
            // noise (the safe side: the gain holds).
            far_floor_dbfs: -120.0,
            far_hold: 0,
            voiced_run: 0,
        }
    }

    /// The slow gain in force, dB (peak caps come on top, briefly).
    pub fn gain_db(&self) -> f32 {
        self.gain_db
    }

    /// Whether the far end's echo may be in the microphone now.
    pub fn far_end_active(&self) -> bool {
        self.far_hold > 0
    }

    /// Tells the gain what the far end just played (the echo canceller's
    /// reference): while it is active, and for the hangover after it,
    /// the gain neither learns nor rises.
    pub fn far_end(&mut self, played: &[f32]) {
        if played.is_empty() {
            return;
        }
        let seconds = played.len() as f32 / SAMPLE_RATE as f32;
        let level = rms_dbfs(played);
        track_floor(&mut self.far_floor_dbfs, level, seconds);
        if level > FAR_MIN_DBFS.max(self.far_floor_dbfs + FAR_OVER_FLOOR_DB) {
            self.far_hold = (self.settings.far_hangover_s * SAMPLE_RATE as f32) as usize;
        } else {
            self.far_hold = self.far_hold.saturating_sub(played.len());
        }
    }

    /// Applies gain to one block (any length; the engine's are 10 ms),
    /// given its voice probability from the noise suppressor.
    pub fn process(&mut self, block: &mut [f32], voice_probability: f32) {
        if block.is_empty() {
            return;
        }
        let s = self.settings;
        let seconds = block.len() as f32 / SAMPLE_RATE as f32;
        let level = rms_dbfs(block);
        track_floor(&mut self.near_floor_dbfs, level, seconds);
        let speech = voice_probability >= s.voice_threshold
            && level > SPEECH_MIN_DBFS
            && level > self.near_floor_dbfs + SPEECH_OVER_FLOOR_DB
            && !self.far_end_active();
        self.voiced_run = if speech { self.voiced_run + 1 } else { 0 };
        if self.voiced_run >= VOICED_RUN {
            // A running mean while the first second of speech comes in
            // (an exponential average seeded by one block would take a
            // soft onset for the talker's level and move the gain on it:
            // measured, +1.9 dB on a talker at the target), then the
            // exponential average over LEVEL_TIME_S.
            self.measured_s = (self.measured_s + seconds).min(LEVEL_TIME_S);
            let alpha = (seconds / self.measured_s).min(1.0);
            let power = 10f32.powf(level / 10.0);
            let smoothed = match self.level_power {
                Some(p) => p + alpha * (power - p),
                None => power,
            };
            self.level_power = Some(smoothed);
            let wanted =
                (s.target_dbfs - 10.0 * smoothed.log10()).clamp(s.min_gain_db, s.max_gain_db);
            let off = wanted - self.gain_db;
            if !(-DEADBAND_DOWN_DB..=DEADBAND_DB).contains(&off) {
                self.adapting = true;
            } else if off.abs() < SETTLED_DB {
                self.adapting = false;
            }
            if self.adapting && self.measured_s >= LEVEL_TIME_S {
                self.gain_db += off.clamp(
                    -s.max_fall_db_per_s * seconds,
                    s.max_rise_db_per_s * seconds,
                );
            }
        }

        let target = db_to_lin(self.gain_db);
        let start = self.applied;
        let end = if target > start {
            target.min(start * db_to_lin(RELEASE_DB_PER_S * seconds))
        } else {
            target
        };
        // The most gain this block's peak allows, from its first sample.
        // Comparisons rather than `f32::max`/`min`, which are libm calls
        // in wasm (`fmaxf`, `fminf`: their NaN rule is not wasm's
        // `f32.max`); the result is the same, NaN included (ignored).
        let peak = block
            .iter()
            .fold(0.0f32, |m, x| if x.abs() > m { x.abs() } else { m });
        let cap = if peak > 0.0 {
            s.ceiling / peak
        } else {
            f32::MAX
        };
        let step = (end - start) / block.len() as f32;
        for (i, x) in block.iter_mut().enumerate() {
            let g = start + step * (i + 1) as f32;
            *x *= if g < cap { g } else { cap };
        }
        self.applied = end.min(cap);
    }

    /// Back to 0 dB and no history.
    pub fn reset(&mut self) {
        *self = AutoGain::new(self.settings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::BLOCK;

    fn tone(level: f32, n: usize, phase: &mut f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *phase += 2.0 * std::f32::consts::PI * 220.0 / SAMPLE_RATE as f32;
                level * phase.sin()
            })
            .collect()
    }

    #[test]
    fn a_quiet_talker_is_lifted_slowly_and_never_past_the_ceiling() {
        let mut agc = AutoGain::default();
        let mut phase = 0.0;
        let mut last = agc.gain_db();
        // One second of silence sets the floor, then quiet "speech".
        for _ in 0..100 {
            agc.process(&mut [0.0; BLOCK], 0.0);
        }
        for b in 0..800 {
            let mut x = tone(0.02, BLOCK, &mut phase);
            agc.process(&mut x, 0.95);
            assert!(x.iter().all(|v| v.abs() <= 0.71 + 1e-6));
            let g = agc.gain_db();
            assert!(
                g - last <= 2.0 * 0.01 + 1e-4,
                "block {b}: rose {} dB",
                g - last
            );
            last = g;
        }
        // -37 dBFS RMS wants +17 dB; 8 s at 2 dB/s gets most of the way.
        assert!(agc.gain_db() > 12.0, "gain {}", agc.gain_db());
    }

    #[test]
    fn no_rise_while_the_far_end_or_its_echo_may_be_heard() {
        let mut agc = AutoGain::default();
        let mut phase = 0.0;
        let mut far_phase = 0.0;
        for _ in 0..100 {
            agc.process(&mut [0.0; BLOCK], 0.0);
        }
        for _ in 0..300 {
            agc.far_end(&tone(0.1, BLOCK, &mut far_phase));
            let mut x = tone(0.01, BLOCK, &mut phase);
            agc.process(&mut x, 0.95);
            assert_eq!(agc.gain_db(), 0.0);
        }
        // The far end stops: the hangover still holds the gain.
        for _ in 0..50 {
            agc.far_end(&[0.0; BLOCK]);
            let mut x = tone(0.01, BLOCK, &mut phase);
            agc.process(&mut x, 0.95);
            assert_eq!(agc.gain_db(), 0.0);
        }
        // A second of speech to measure its level, then it rises.
        for _ in 0..200 {
            agc.far_end(&[0.0; BLOCK]);
            let mut x = tone(0.01, BLOCK, &mut phase);
            agc.process(&mut x, 0.95);
        }
        assert!(agc.gain_db() > 0.5, "rises once the far end is quiet");
    }

    #[test]
    fn a_loud_block_is_capped_from_its_first_sample() {
        let mut agc = AutoGain::default();
        let mut phase = 0.0;
        for _ in 0..100 {
            agc.process(&mut [0.0; BLOCK], 0.0);
        }
        // Build up gain on a quiet talker.
        for _ in 0..600 {
            let mut x = tone(0.01, BLOCK, &mut phase);
            agc.process(&mut x, 0.95);
        }
        assert!(agc.gain_db() > 6.0);
        // A sudden full-scale block.
        let mut x = tone(0.99, BLOCK, &mut phase);
        agc.process(&mut x, 0.95);
        let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(peak <= 0.71 + 1e-6, "peak {peak}");
        // The first samples too (no ramp from the old gain).
        let first = x[..48].iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(first <= 0.71 + 1e-6);
    }

    #[test]
    fn a_talker_near_the_target_is_left_alone_from_the_first_word() {
        // A soft first half second (-32 dBFS, which alone would want
        // +12 dB), then speech 4.5 dB over the target: neither moves the
        // gain, the first because one second of speech is measured before
        // the gain acts, the second because it is inside the dead band
        // above the target.
        let mut agc = AutoGain::default();
        let mut phase = 0.0;
        for _ in 0..100 {
            agc.process(&mut [0.0; BLOCK], 0.0);
        }
        for _ in 0..50 {
            let mut x = tone(0.035, BLOCK, &mut phase);
            agc.process(&mut x, 0.95);
            assert_eq!(agc.gain_db(), 0.0);
        }
        for _ in 0..800 {
            // 0.237 peak: -15.5 dBFS RMS.
            let mut x = tone(0.237, BLOCK, &mut phase);
            agc.process(&mut x, 0.95);
            assert_eq!(agc.gain_db(), 0.0);
        }
        // Well over the target (-6 dBFS RMS): turned down, slowly.
        let mut last = 0.0;
        for _ in 0..300 {
            let mut x = tone(0.71, BLOCK, &mut phase);
            agc.process(&mut x, 0.95);
            assert!(last - agc.gain_db() <= 3.0 * 0.01 + 1e-4);
            last = agc.gain_db();
        }
        assert!(agc.gain_db() < -3.0, "gain {}", agc.gain_db());
    }

    #[test]
    fn noise_alone_is_not_lifted() {
        let mut agc = AutoGain::default();
        let mut seed = 1u32;
        for _ in 0..500 {
            let mut x = [0.0f32; BLOCK];
            for v in &mut x {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *v = 0.003 * ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5);
            }
            // The suppressor sometimes mislabels noise as voice.
            agc.process(&mut x, 0.7);
        }
        assert!(agc.gain_db() <= 0.0, "gain {}", agc.gain_db());
    }
}

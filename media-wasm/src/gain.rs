//! Automatic gain control: brings speech to a steady level so a quiet
//! headset and a loud laptop microphone sound alike. It measures only
//! blocks the noise suppressor calls voice, moves slowly (so it does not
//! pump), ramps within each block (so it does not click), and never lets
//! a peak clip.

use crate::frame::BLOCK;

/// Gain control settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GainSettings {
    /// Speech level to reach, dBFS RMS.
    pub target_dbfs: f32,
    /// Most gain applied, dB.
    pub max_gain_db: f32,
    /// Least gain applied, dB (negative attenuates).
    pub min_gain_db: f32,
    /// Largest change per 10 ms block, dB.
    pub max_step_db: f32,
    /// Voice probability above which a block updates the level.
    pub voice_threshold: f32,
}

impl Default for GainSettings {
    fn default() -> Self {
        GainSettings {
            target_dbfs: -22.0,
            max_gain_db: 24.0,
            min_gain_db: -12.0,
            max_step_db: 0.3,
            voice_threshold: 0.6,
        }
    }
}

/// The gain stage.
pub struct AutoGain {
    settings: GainSettings,
    gain_db: f32,
    /// Smoothed speech level, dBFS.
    level_dbfs: Option<f32>,
}

impl Default for AutoGain {
    fn default() -> Self {
        Self::new(GainSettings::default())
    }
}

fn db_to_lin(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

impl AutoGain {
    /// A gain stage with these settings, starting at 0 dB.
    pub fn new(settings: GainSettings) -> AutoGain {
        AutoGain {
            settings,
            gain_db: 0.0,
            level_dbfs: None,
        }
    }

    /// The gain in force, dB.
    pub fn gain_db(&self) -> f32 {
        self.gain_db
    }

    /// Applies gain to one block, given its voice probability.
    pub fn process(&mut self, block: &mut [f32; BLOCK], voice_probability: f32) {
        let s = self.settings;
        let start = db_to_lin(self.gain_db);
        if voice_probability >= s.voice_threshold {
            let level = crate::frame::rms_dbfs(block);
            if level > -70.0 {
                let smoothed = match self.level_dbfs {
                    Some(l) => l + 0.1 * (level - l),
                    None => level,
                };
                self.level_dbfs = Some(smoothed);
                let wanted = (s.target_dbfs - smoothed).clamp(s.min_gain_db, s.max_gain_db);
                self.gain_db += (wanted - self.gain_db).clamp(-s.max_step_db, s.max_step_db);
            }
        }
        // Never clip: cap the gain so the block's peak stays under -1 dBFS.
        let peak = block.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        if peak > 0.0 {
            let ceiling_db = 20.0 * (0.89 / peak).log10();
            if self.gain_db > ceiling_db {
                self.gain_db = ceiling_db.max(s.min_gain_db);
            }
        }
        let end = db_to_lin(self.gain_db);
        let step = (end - start) / BLOCK as f32;
        for (i, x) in block.iter_mut().enumerate() {
            *x *= start + step * i as f32;
        }
    }

    /// Back to 0 dB and no level history.
    pub fn reset(&mut self) {
        *self = AutoGain::new(self.settings);
    }
}

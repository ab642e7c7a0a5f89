//! Prompts as audio: text-to-speech by espeak-ng (voices `en-us` and
//! `ja`), rendered once per (engine version, voice, text) into a WAV under
//! `data_dir/prompts/`, named by a hash of the three, so a restart or a
//! second caller reuses the file. espeak-ng runs as a child process with a
//! timeout, off the async runtime's threads (callers use
//! `spawn_blocking`). The bridge reads the WAV at 48 kHz and encodes it to
//! Opus once, then plays the packets to every caller who hears it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The longest a prompt's rendering may take.
pub const RENDER_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest text rendered (longer is cut).
pub const MAX_TEXT: usize = 2000;

/// Prompts kept in the cache directory; beyond, the least recently used
/// are removed (texts with attributes in them are one per caller).
pub const MAX_CACHED: usize = 2000;

/// The engine's binary.
pub const ESPEAK: &str = "espeak-ng";

/// Why a prompt could not be rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TtsError {
    /// espeak-ng is missing or failed to start.
    #[error("cannot run {ESPEAK}: {0}")]
    Spawn(std::io::Error),
    /// It ran past [`RENDER_TIMEOUT`].
    #[error("{ESPEAK} took over {} s", RENDER_TIMEOUT.as_secs())]
    Timeout,
    /// It exited with an error.
    #[error("{ESPEAK} failed: {0}")]
    Failed(String),
    /// The cache directory or file could not be written.
    #[error("prompt cache: {0}")]
    Cache(std::io::Error),
}

/// The engine's version line (part of the cache key, so an upgraded
/// engine renders anew). Empty when espeak-ng cannot run.
pub fn engine_version() -> String {
    Command::new(ESPEAK)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The cache file for (version, voice, text).
pub fn cache_path(dir: &Path, version: &str, voice: &str, text: &str) -> PathBuf {
    let mut h = Sha256::new();
    for part in [version, voice, text] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{}.wav", &hex[..32]))
}

/// The WAV of `text` in `voice`, rendered now unless cached. Blocking.
pub fn render(dir: &Path, version: &str, voice: &str, text: &str) -> Result<PathBuf, TtsError> {
    let text: String = text.chars().take(MAX_TEXT).collect();
    let path = cache_path(dir, version, voice, &text);
    if path.is_file() {
        // Used now: the last to be pruned.
        let _ = std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        return Ok(path);
    }
    std::fs::create_dir_all(dir).map_err(TtsError::Cache)?;
    // Written under a temporary name and renamed: a reader never sees a
    // half-written prompt, and two renderings of one text do not clash.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut child = Command::new(ESPEAK)
        .arg("-v")
        .arg(voice)
        .arg("-w")
        .arg(&tmp)
        .arg("--")
        .arg(&text)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(TtsError::Spawn)?;
    let until = Instant::now() + RENDER_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= until => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_file(&tmp);
                return Err(TtsError::Timeout);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(TtsError::Spawn(e)),
        }
    };
    if !status.success() {
        let mut err = String::new();
        if let Some(mut s) = child.stderr.take() {
            use std::io::Read;
            let _ = s.by_ref().take(1000).read_to_string(&mut err);
        }
        let _ = std::fs::remove_file(&tmp);
        return Err(TtsError::Failed(format!("{status}: {}", err.trim())));
    }
    std::fs::rename(&tmp, &path).map_err(TtsError::Cache)?;
    prune(dir, MAX_CACHED);
    Ok(path)
}

/// Removes the least recently used WAVs of `dir` beyond `keep`.
pub fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if files.len() <= keep {
        return;
    }
    files.sort();
    let extra = files.len() - keep;
    for (_, path) in files.into_iter().take(extra) {
        let _ = std::fs::remove_file(path);
    }
}

/// How long a WAV plays, in milliseconds (0 if unreadable).
pub fn duration_ms(path: &Path) -> u64 {
    crate::bridge::wav::read_48k_mono(path)
        .map(|s| s.len() as u64 * 1000 / 48_000)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_differ_by_voice_text_and_version() {
        let d = Path::new("/x");
        let a = cache_path(d, "1", "en-us", "hello");
        assert_eq!(a, cache_path(d, "1", "en-us", "hello"));
        assert_ne!(a, cache_path(d, "1", "ja", "hello"));
        assert_ne!(a, cache_path(d, "1", "en-us", "hello!"));
        assert_ne!(a, cache_path(d, "2", "en-us", "hello"));
    }

    #[test]
    fn the_cache_keeps_the_most_recently_used() {
        let dir = std::env::temp_dir().join(format!("sb-tts-prune-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let t0 = std::time::SystemTime::now() - Duration::from_secs(100);
        for i in 0..5u64 {
            let p = dir.join(format!("{i}.wav"));
            std::fs::write(&p, b"x").expect("write");
            let f = std::fs::File::options().write(true).open(&p).expect("open");
            f.set_modified(t0 + Duration::from_secs(i)).expect("mtime");
        }
        std::fs::write(dir.join("keep.txt"), b"x").expect("write");
        prune(&dir, 3);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .expect("dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        left.sort();
        assert_eq!(left, ["2.wav", "3.wav", "4.wav", "keep.txt"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn renders_once_and_reuses_the_file() {
        let version = engine_version();
        if version.is_empty() {
            // The build machine's tool list installs espeak-ng; say so
            // loudly rather than pass silently.
            panic!("espeak-ng is not installed (cargo xtask tools installs it)");
        }
        let dir = std::env::temp_dir().join(format!("sb-tts-{}", std::process::id()));
        let p = render(&dir, &version, "en-us", "Press one.").expect("render");
        let ms = duration_ms(&p);
        assert!(ms > 200 && ms < 5000, "{ms} ms");
        // A second rendering of the same text is the cached file: a
        // marker written into it survives.
        let mut bytes = std::fs::read(&p).expect("read");
        bytes.extend_from_slice(b"cached");
        std::fs::write(&p, &bytes).expect("mark");
        let again = render(&dir, &version, "en-us", "Press one.").expect("render");
        assert_eq!(p, again);
        assert!(std::fs::read(&again).expect("read").ends_with(b"cached"));
        // Another version of the engine renders anew.
        let other = render(&dir, "other", "en-us", "Press one.").expect("render");
        assert_ne!(other, p);
        let ja = render(&dir, &version, "ja", "こんにちは").expect("render ja");
        assert!(duration_ms(&ja) > 100);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The flow worker: performs what flows ask that takes time, off the
//! center's lock and off the async runtime's threads where it blocks.
//! Prompts are rendered by espeak-ng in `spawn_blocking` (at most
//! [`TTS_AT_ONCE`] at a time, each under its own timeout, cached on disk);
//! functions are invoked over HTTP under their timeout. At most
//! [`JOBS_AT_ONCE`] jobs run at once; the channel from the center is
//! bounded ([`crate::center::FLOW_JOBS`]). Each result goes back through
//! [`crate::center::Center::flow_done`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};

use crate::center::{FlowDone, FlowJob};
use crate::flow::run::Say;
use crate::http::AppState;

/// Renderings running at once (each is a child process).
pub const TTS_AT_ONCE: usize = 2;

/// Jobs running at once.
pub const JOBS_AT_ONCE: usize = 64;

/// Runs jobs until the center's sender is gone.
pub async fn run(state: AppState, mut rx: mpsc::Receiver<FlowJob>) {
    let version: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let tts = Arc::new(Semaphore::new(TTS_AT_ONCE));
    let jobs = Arc::new(Semaphore::new(JOBS_AT_ONCE));
    let prompts = state.cfg.data_dir.join("prompts");
    while let Some(job) = rx.recv().await {
        let Ok(permit) = jobs.clone().acquire_owned().await else {
            break;
        };
        let (state, version, tts, prompts) =
            (state.clone(), version.clone(), tts.clone(), prompts.clone());
        tokio::spawn(async move {
            let done = perform(job, &version, &tts, &prompts).await;
            drop(permit);
            let now = state.now();
            if let Ok(mut center) = state.center.lock() {
                center.flow_done(done, now);
            }
        });
    }
}

async fn perform(
    job: FlowJob,
    version: &Arc<OnceLock<String>>,
    tts: &Arc<Semaphore>,
    prompts: &std::path::Path,
) -> FlowDone {
    match job {
        FlowJob::Prompt {
            contact,
            lane,
            seq,
            say,
            language,
        } => {
            let Ok(_slot) = tts.acquire().await else {
                return FlowDone::Prompt {
                    contact,
                    lane,
                    seq,
                    result: Err("the prompt worker stopped".into()),
                };
            };
            let version = version.clone();
            let dir = prompts.to_owned();
            let result = tokio::task::spawn_blocking(move || {
                let path = match say {
                    Say::Text(text) => {
                        let v = version.get_or_init(super::tts::engine_version);
                        super::tts::render(&dir, v, language.voice(), &text)
                            .map_err(|e| e.to_string())?
                    }
                    Say::Wav(path) => path,
                };
                let ms = super::tts::duration_ms(&path);
                if ms == 0 {
                    return Err(format!("{} is empty or unreadable", path.display()));
                }
                Ok((path, ms))
            })
            .await
            .unwrap_or_else(|e| Err(format!("rendering failed: {e}")));
            FlowDone::Prompt {
                contact,
                lane,
                seq,
                result,
            }
        }
        FlowJob::Invoke {
            contact,
            lane,
            seq,
            url,
            timeout_ms,
            body,
        } => {
            let result = super::invoke::call(&url, &body, Duration::from_millis(timeout_ms)).await;
            FlowDone::Invoke {
                contact,
                lane,
                seq,
                result,
            }
        }
    }
}

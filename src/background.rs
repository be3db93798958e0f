//! Work that must not take the CPU from the reviews. Reloading the policy library (compiling
//! it), the trust material or the inventory runs on a thread of its own at the lowest
//! scheduling priority: a review that arrives meanwhile gets the core at once, instead of
//! sharing it with the reload in slices of a few milliseconds (measured: docs/reliability.md).
//! When the core is free the reload runs at full speed; under full load it still progresses,
//! only slower.

/// The lowest priority a process may give itself (`nice 19`).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const LOWEST_PRIORITY: i32 = 19;

#[derive(Debug, thiserror::Error)]
pub enum BackgroundError {
    #[error("could not start the {task} thread: {source}")]
    Spawn {
        task: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the {task} thread crashed before it finished")]
    Crashed { task: &'static str },
}

/// Runs `work` on a new low-priority thread named `task` (at most 15 bytes: what Linux keeps
/// of a thread's name) and waits for its result without blocking the async runtime.
pub async fn run<T: Send + 'static>(
    task: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BackgroundError> {
    debug_assert!(task.len() <= 15, "Linux keeps 15 bytes of a thread's name: {task}");
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(task.to_string())
        .spawn(move || {
            lower_priority(task);
            let _ = done.send(work());
        })
        .map_err(|source| BackgroundError::Spawn { task, source })?;
    // A panic drops the sender unanswered.
    result.await.map_err(|_| BackgroundError::Crashed { task })
}

/// This thread only: Linux keeps the nice value per thread. Best effort; elsewhere, or where
/// it is refused (a sandbox that filters the call), the work runs at the normal priority.
fn lower_priority(task: &str) {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), LOWEST_PRIORITY) {
        tracing::warn!(%error, task, "could not lower the priority; running at the normal one");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = task;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_work_runs_at_the_lowest_priority_and_its_result_comes_back() {
        let own = || rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let before = own();
        assert!(
            before < LOWEST_PRIORITY,
            "run at nice {before}, this test could not tell"
        );
        let (answer, priority) = run("test", move || (42, own())).await.unwrap();
        assert_eq!(answer, 42);
        assert_eq!(priority, LOWEST_PRIORITY);
        // The caller's own thread keeps its priority.
        assert_eq!(own(), before);
    }

    #[tokio::test]
    async fn a_panic_in_the_work_is_an_error_not_a_hang() {
        let result: Result<(), _> = run("test", || panic!("boom")).await;
        assert!(
            matches!(result, Err(BackgroundError::Crashed { task: "test" })),
            "{result:?}"
        );
    }
}

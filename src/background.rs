//! Work that must not take the CPU from the reviews. Reloading the policy library (compiling
//! it), the trust material or the inventory ([`run`]), and verifying images again ahead of
//! their cache expiry ([`Spawner`]), run on threads of their own at the lowest scheduling
//! priority: a review that arrives meanwhile gets the core at once, instead of
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

/// Runs `work` on a new low-priority thread named `task` and waits for its result without
/// blocking the async runtime.
pub async fn run<T: Send + 'static>(
    task: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BackgroundError> {
    let (done, result) = tokio::sync::oneshot::channel();
    low_priority_thread(task, move || {
        let _ = done.send(work());
    })?;
    // A panic drops the sender unanswered.
    result.await.map_err(|_| BackgroundError::Crashed { task })
}

/// An async runtime on a low-priority thread of its own, for background work that waits on
/// the network and also costs CPU (verifying an image again ahead of its cache expiry): its
/// tasks run when the reviews leave the core free. The thread ends when this is dropped.
pub struct Spawner {
    handle: tokio::runtime::Handle,
    /// Dropped with the spawner: the thread's runtime stops, cancelling what is left.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Spawner {
    pub fn start(task: &'static str) -> Result<Spawner, BackgroundError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| BackgroundError::Spawn { task, source })?;
        let handle = runtime.handle().clone();
        // Whichever thread drops it, in an async context or not (a thread that did not start).
        let runtime = StopsWithoutWaiting(Some(runtime));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        low_priority_thread(task, move || {
            // Runs the spawned tasks until the spawner is dropped.
            if let Some(runtime) = &runtime.0 {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            }
        })?;
        Ok(Spawner { handle, _stop: stop })
    }

    pub fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        self.handle.spawn(work);
    }
}

/// A runtime dropped without waiting for its blocking tasks, which may happen anywhere.
struct StopsWithoutWaiting(Option<tokio::runtime::Runtime>);

impl Drop for StopsWithoutWaiting {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs `body` on a new thread named `task` (at most 15 bytes: what Linux keeps of a thread's
/// name) at the lowest priority.
fn low_priority_thread(task: &'static str, body: impl FnOnce() + Send + 'static) -> Result<(), BackgroundError> {
    debug_assert!(task.len() <= 15, "Linux keeps 15 bytes of a thread's name: {task}");
    std::thread::Builder::new()
        .name(task.to_string())
        .spawn(move || {
            lower_priority(task);
            body();
        })
        .map(drop)
        .map_err(|source| BackgroundError::Spawn { task, source })
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

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn spawned_tasks_run_at_the_lowest_priority_until_the_spawner_is_dropped() {
        let own = || rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let spawner = Spawner::start("test").unwrap();
        let (done, priority) = tokio::sync::oneshot::channel();
        spawner.spawn(async move {
            // The task's own timer works on its runtime.
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            let _ = done.send(own());
        });
        assert_eq!(priority.await.unwrap(), LOWEST_PRIORITY);
        let (held, never) = tokio::sync::oneshot::channel::<()>();
        spawner.spawn(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
        drop(spawner);
        // The pending task is dropped with its runtime: its sender closes.
        assert!(never.await.is_err());
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

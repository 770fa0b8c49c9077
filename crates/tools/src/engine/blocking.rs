//! A queue of blocking jobs drained by a few threads, so that a burst of small statements pays
//! one thread wake-up rather than one per statement.
//!
//! `tokio::task::spawn_blocking` per statement wakes an idle pool thread for every job: under a
//! load of point lookups that is two context switches per request, and on a 2-core machine
//! the woken thread preempts the thread that serves HTTP (`POST /api/query` spent a third of
//! its CPU in the scheduler). Here a job joins a queue; a runner thread (a `spawn_blocking`
//! task) takes jobs until the queue is empty, so jobs that arrive while one runs need no
//! wake-up at all. More runners start, up to `max`, when the queue grows longer than the
//! runners can take, or when a job has waited [`STALL`] behind a slow one: a 10-second
//! report never holds a point lookup for longer than that.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

/// How long a queued job waits behind busy runners before it asks for one more.
pub(crate) const STALL: Duration = Duration::from_millis(2);

type Job = Box<dyn FnOnce() + Send>;

/// Blocking jobs, run in arrival order by at most `max` threads at a time.
pub(crate) struct BlockingQueue {
    state: Mutex<Queued>,
    max: usize,
}

struct Queued {
    jobs: VecDeque<Job>,
    runners: usize,
}

impl BlockingQueue {
    /// A queue drained by at most `max` threads (at least one).
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Queued { jobs: VecDeque::new(), runners: 0 }),
            max: max.max(1),
        })
    }

    /// Runs `work` on a runner thread and returns its result. `None` when the job was lost
    /// (it panicked, or the runtime is shutting down).
    pub(crate) async fn run<T, F>(self: &Arc<Self>, work: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, mut rx) = oneshot::channel();
        let started_runner = self.push(Box::new(move || {
            // the caller may have gone (a dropped request): nobody to tell
            let _ = tx.send(work());
        }));
        if !started_runner {
            // queued behind busy runners: ask for another if it is not taken soon
            tokio::select! {
                biased;
                done = &mut rx => return done.ok(),
                () = tokio::time::sleep(STALL) => self.help(),
            }
        }
        rx.await.ok()
    }

    /// Queues `job`; starts a runner when none runs, or when more jobs wait than runners
    /// take. Whether it started one.
    fn push(self: &Arc<Self>, job: Job) -> bool {
        self.add_runner_if(move |state| {
            state.jobs.push_back(job);
            state.runners == 0 || state.jobs.len() > state.runners
        })
    }

    /// One more runner, if jobs still wait.
    fn help(self: &Arc<Self>) {
        self.add_runner_if(|state| !state.jobs.is_empty());
    }

    /// Starts a runner when `wanted` (which may change the queue first) says so and fewer
    /// than `max` run; whether it started one.
    fn add_runner_if(self: &Arc<Self>, wanted: impl FnOnce(&mut Queued) -> bool) -> bool {
        let start = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let start = wanted(&mut state) && state.runners < self.max;
            if start {
                state.runners += 1;
            }
            start
        };
        if start {
            self.start_runner();
        }
        start
    }

    fn start_runner(self: &Arc<Self>) {
        let runner = Runner { queue: self.clone(), counted: true };
        // a runtime that is shutting down drops the task unrun: the runner's drop then gives
        // its place back, and the jobs wait for the next runner (their callers, gone with that
        // runtime, get `None`)
        drop(tokio::task::spawn_blocking(move || runner.drain()));
    }
}

/// A runner's place among `runners`, given back when it leaves or is dropped unrun.
struct Runner {
    queue: Arc<BlockingQueue>,
    counted: bool,
}

impl Runner {
    /// Runs queued jobs until there are none. A runner leaves under the lock a new job is
    /// queued under, so a job never waits without a runner.
    fn drain(mut self) {
        loop {
            let job = {
                let mut state = self.queue.state.lock().unwrap_or_else(PoisonError::into_inner);
                match state.jobs.pop_front() {
                    Some(job) => job,
                    None => {
                        state.runners -= 1;
                        self.counted = false;
                        return;
                    }
                }
            };
            // a panicking job loses its own result only; the runner keeps going
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if self.counted {
            self.queue.state.lock().unwrap_or_else(PoisonError::into_inner).runners -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_job_runs_once_and_returns_its_result() {
        let queue = BlockingQueue::new(3);
        let ran = Arc::new(AtomicUsize::new(0));
        let results = futures_util::future::join_all((0..500).map(|i| {
            let (queue, ran) = (queue.clone(), ran.clone());
            async move {
                queue
                    .run(move || {
                        ran.fetch_add(1, Ordering::Relaxed);
                        i * 2
                    })
                    .await
            }
        }))
        .await;
        assert_eq!(ran.load(Ordering::Relaxed), 500);
        assert_eq!(results, (0..500).map(|i| Some(i * 2)).collect::<Vec<_>>());
        // every runner left once the queue was empty
        assert_eq!(queue.state.lock().unwrap().runners, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_job_does_not_hold_the_ones_queued_behind_it() {
        let queue = BlockingQueue::new(2);
        let (release, released) = std::sync::mpsc::channel::<()>();
        let slow = tokio::spawn({
            let queue = queue.clone();
            async move { queue.run(move || released.recv().is_ok()).await }
        });
        // the slow job holds the only runner until it is released
        while !queue.state.lock().unwrap().jobs.is_empty() {
            tokio::task::yield_now().await;
        }
        let queued = tokio::time::timeout(Duration::from_secs(10), queue.run(|| 7)).await;
        assert_eq!(queued, Ok(Some(7)), "the queued job ran on a second runner");
        assert!(!slow.is_finished(), "the slow job was still running");
        release.send(()).unwrap();
        assert_eq!(slow.await.unwrap(), Some(true));
    }

    #[test]
    fn a_runtime_that_shuts_down_leaves_no_runner_counted() {
        let queue = BlockingQueue::new(1);
        for _ in 0..3 {
            // each runtime starts a runner and is dropped: whether it ran or was dropped
            // unrun, its place is given back, and the next runtime's jobs still run
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            assert_eq!(rt.block_on(queue.run(|| 5)), Some(5));
            drop(rt);
            assert_eq!(queue.state.lock().unwrap().runners, 0);
        }
        // a job queued on a runtime that has shut down: its runner is dropped unrun
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let handle = rt.handle().clone();
        rt.shutdown_background();
        {
            let _entered = handle.enter();
            assert!(queue.push(Box::new(|| {})), "a runner was started");
        }
        let state = queue.state.lock().unwrap();
        assert_eq!(state.jobs.len(), 1, "the runner never ran");
        assert_eq!(state.runners, 0, "and gave its place back");
        drop(state);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        assert_eq!(rt.block_on(queue.run(|| 6)), Some(6), "the next runner runs both jobs");
        assert!(queue.state.lock().unwrap().jobs.is_empty());
    }

    #[tokio::test]
    async fn a_panicking_job_loses_only_its_result() {
        let queue = BlockingQueue::new(1);
        assert_eq!(queue.run(|| -> u8 { panic!("boom") }).await, None);
        assert_eq!(queue.run(|| 1).await, Some(1));
    }
}

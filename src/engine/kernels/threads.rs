//! The CPU engine's threads: a pool in which the calling thread works too, for splitting one
//! product over threads by output columns.
//!
//! Why a pool of its own: in the browser a thread is a Web Worker that instantiates this module
//! on the same shared memory and then never returns from [`ThreadPool::work`] (rayon's
//! scheduler cannot be driven that way without wasm-bindgen-rayon's bundler-specific worker
//! spawning), and the calling thread may be the page's main thread, which must never block
//! (`memory.atomic.wait32` traps there). So the caller takes tasks like any worker and then
//! spins until the stragglers finish; workers sleep on a futex (`memory.atomic.wait32` in wasm,
//! a condition variable natively) between jobs. If no worker ever starts, the caller does every
//! task itself: a pool cannot deadlock on a worker that failed to load.
//!
//! A job is `tasks` calls of one closure, claimed one at a time from a single atomic word that
//! holds the job's generation, its task count and the next task, so a worker that wakes late
//! can never claim a task of a job that is already finished or not yet its own.
//!
//! Results do not depend on the thread count as long as each task computes its own outputs
//! with the same arithmetic as one thread would (the engine splits products by columns and
//! attention by heads), which the CPU engine's tests check bit for bit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Bits of the job word: generation (16) | task count (24) | next task (24).
const TASK_BITS: u32 = 24;
const TASK_MASK: u64 = (1 << TASK_BITS) - 1;
/// Most tasks in one job; a longer job runs in several.
pub const MAX_TASKS: usize = TASK_MASK as usize;

/// A job as workers see it: the closure behind a pointer, valid until its tasks are done.
struct Job<'a> {
    run: &'a (dyn Fn(usize) + Sync),
}

/// State shared by the caller and the workers.
struct Shared {
    /// Bumped for every job; workers sleep while it stays the value they last saw.
    generation: AtomicU32,
    /// generation | count | next, see [`TASK_BITS`].
    claims: AtomicU64,
    /// Tasks of the current job finished.
    finished: AtomicUsize,
    /// `*const Job` of the current job.
    job: AtomicUsize,
    /// Workers that have entered [`ThreadPool::work`].
    workers: AtomicUsize,
    /// Set while a job runs: a second caller (or a task that calls the pool) runs inline.
    busy: AtomicBool,
    /// Set by a task that panicked (natively); the caller panics after the job.
    panicked: AtomicBool,
    #[cfg(not(all(target_arch = "wasm32", target_feature = "atomics")))]
    sleep: (std::sync::Mutex<()>, std::sync::Condvar),
}

impl Shared {
    fn new() -> Self {
        Self {
            generation: AtomicU32::new(0),
            claims: AtomicU64::new(0),
            finished: AtomicUsize::new(0),
            job: AtomicUsize::new(0),
            workers: AtomicUsize::new(0),
            busy: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            #[cfg(not(all(target_arch = "wasm32", target_feature = "atomics")))]
            sleep: Default::default(),
        }
    }

    /// Claims and runs tasks of the job of generation `generation` until none is left.
    fn take_tasks(&self, generation: u32) {
        let mut word = self.claims.load(Ordering::Acquire);
        loop {
            let (job_generation, count, next) = unpack(word);
            if job_generation != generation & 0xffff || next >= count {
                return;
            }
            match self
                .claims
                .compare_exchange_weak(word, word + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    // SAFETY: the caller publishes `job` before the claims word (release) and
                    // keeps the job alive until `finished` reaches its count; this task is
                    // claimed and not yet finished, so the job is the one claimed from.
                    let job = unsafe { &*(self.job.load(Ordering::Acquire) as *const Job) };
                    self.run_one(job, next);
                    self.finished.fetch_add(1, Ordering::AcqRel);
                    word = self.claims.load(Ordering::Acquire);
                }
                Err(current) => word = current,
            }
        }
    }

    #[cfg(not(target_family = "wasm"))]
    fn run_one(&self, job: &Job, task: usize) {
        // A panicking task must still count as finished, or the caller would spin forever.
        let run = std::panic::AssertUnwindSafe(|| (job.run)(task));
        if std::panic::catch_unwind(run).is_err() {
            self.panicked.store(true, Ordering::Release);
        }
    }

    #[cfg(target_family = "wasm")]
    fn run_one(&self, job: &Job, task: usize) {
        // wasm aborts on panic: there is nothing to catch.
        (job.run)(task);
    }

    /// Blocks a worker while the generation is `seen`, after a short spin (a job that follows
    /// right away, the next layer's product, is then taken without a wake-up).
    fn wait_for_job(&self, seen: u32) {
        for _ in 0..SPINS_BEFORE_SLEEP {
            if self.generation.load(Ordering::Acquire) != seen {
                return;
            }
            std::hint::spin_loop();
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
        while self.generation.load(Ordering::Acquire) == seen {
            // SAFETY: the pointer is to a live, aligned atomic in shared memory; the wait
            // returns at once if it no longer holds `seen`.
            unsafe {
                core::arch::wasm32::memory_atomic_wait32(
                    self.generation.as_ptr() as *mut i32,
                    seen as i32,
                    -1,
                );
            }
        }
        #[cfg(not(all(target_arch = "wasm32", target_feature = "atomics")))]
        {
            let (lock, condvar) = &self.sleep;
            let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            while self.generation.load(Ordering::Acquire) == seen {
                guard = condvar.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    fn wake_workers(&self) {
        #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
        // SAFETY: as in `wait_for_job`; notify never blocks, so the main thread may call it.
        unsafe {
            core::arch::wasm32::memory_atomic_notify(self.generation.as_ptr() as *mut i32, u32::MAX);
        }
        #[cfg(not(all(target_arch = "wasm32", target_feature = "atomics")))]
        {
            // Taking the lock orders this wake-up after a worker's check of the generation.
            drop(self.sleep.0.lock().unwrap_or_else(|e| e.into_inner()));
            self.sleep.1.notify_all();
        }
    }
}

/// Spin iterations (a few microseconds) before a worker sleeps between jobs.
const SPINS_BEFORE_SLEEP: usize = 20_000;

fn unpack(word: u64) -> (u32, usize, usize) {
    (
        (word >> (2 * TASK_BITS)) as u32,
        ((word >> TASK_BITS) & TASK_MASK) as usize,
        (word & TASK_MASK) as usize,
    )
}

fn pack(generation: u32, count: usize) -> u64 {
    (u64::from(generation & 0xffff) << (2 * TASK_BITS)) | ((count as u64) << TASK_BITS)
}

/// A pool of threads that run the tasks of one job at a time, the caller among them.
#[derive(Clone)]
pub struct ThreadPool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads())
            .finish()
    }
}

impl Default for ThreadPool {
    fn default() -> Self {
        Self::single()
    }
}

impl ThreadPool {
    /// A pool of the calling thread alone: every job runs inline.
    pub fn single() -> Self {
        Self {
            shared: Arc::new(Shared::new()),
        }
    }

    /// A pool of the caller and `threads - 1` native threads (which end with the process).
    #[cfg(not(target_family = "wasm"))]
    pub fn spawn(threads: usize) -> Self {
        let pool = Self::single();
        for index in 1..threads.max(1) {
            let worker = pool.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("tkre-cpu-{index}"))
                .spawn(move || worker.work());
            if spawned.is_err() {
                break; // fewer threads, same results
            }
        }
        pool
    }

    /// The pool the engines of this process share. In wasm it starts as the caller alone, and
    /// Web Workers join it through [`ThreadPool::work`] (the package's `thread-worker.js`);
    /// natively it has a thread per core.
    pub fn for_engines() -> Self {
        static GLOBAL: std::sync::OnceLock<ThreadPool> = std::sync::OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                #[cfg(target_family = "wasm")]
                return Self::single();
                #[cfg(not(target_family = "wasm"))]
                Self::spawn(std::thread::available_parallelism().map_or(1, |n| n.get()))
            })
            .clone()
    }

    /// Threads that take tasks: the caller and the workers that have started.
    pub fn threads(&self) -> usize {
        1 + self.shared.workers.load(Ordering::Acquire)
    }

    /// Makes the calling thread a worker of this pool for the rest of its life.
    pub fn work(&self) -> ! {
        let shared = &*self.shared;
        let mut seen = shared.generation.load(Ordering::Acquire);
        shared.workers.fetch_add(1, Ordering::AcqRel);
        loop {
            shared.wait_for_job(seen);
            seen = shared.generation.load(Ordering::Acquire);
            shared.take_tasks(seen);
        }
    }

    /// Calls `task(i)` for every `i` in `0..tasks`, spread over the pool's threads, and returns
    /// when all have returned. Inline when the pool has one thread, when there is one task, or
    /// when the pool is already running a job (a nested or concurrent call).
    pub fn run(&self, tasks: usize, task: impl Fn(usize) + Sync) {
        let shared = &*self.shared;
        if tasks <= 1
            || shared.workers.load(Ordering::Acquire) == 0
            || shared
                .busy
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            (0..tasks).for_each(task);
            return;
        }
        for first in (0..tasks).step_by(MAX_TASKS) {
            let count = (tasks - first).min(MAX_TASKS);
            let offset = |i: usize| task(first + i);
            let job = Job { run: &offset };
            shared.finished.store(0, Ordering::Release);
            shared.job.store(&job as *const Job as usize, Ordering::Release);
            let generation = shared.generation.load(Ordering::Acquire).wrapping_add(1);
            shared.claims.store(pack(generation, count), Ordering::Release);
            shared.generation.store(generation, Ordering::Release);
            shared.wake_workers();
            shared.take_tasks(generation);
            // The caller spins rather than sleeps: on a page's main thread it may not block.
            while shared.finished.load(Ordering::Acquire) < count {
                std::hint::spin_loop();
            }
        }
        shared.busy.store(false, Ordering::Release);
        if shared.panicked.swap(false, Ordering::AcqRel) {
            panic!("a task of the CPU engine's thread pool panicked");
        }
    }
}

/// Splits `0..len` into at most `parts` contiguous ranges of near-equal length, each a multiple
/// of `unit` long except the last; empty ranges are left out.
pub fn split(len: usize, parts: usize, unit: usize) -> Vec<std::ops::Range<usize>> {
    let units = len.div_ceil(unit.max(1));
    let parts = parts.clamp(1, units.max(1));
    (0..parts)
        .map(|p| (p * units / parts * unit).min(len)..((p + 1) * units / parts * unit).min(len))
        .filter(|r| !r.is_empty())
        .collect()
}

/// A slice that tasks write at disjoint places: each task's writes must not overlap another's.
pub struct SharedSlice<'a, T> {
    ptr: *mut T,
    len: usize,
    _marker: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: tasks write disjoint elements (the contract of `SharedSlice::range`).
unsafe impl<T: Send> Send for SharedSlice<'_, T> {}
unsafe impl<T: Send> Sync for SharedSlice<'_, T> {}

impl<'a, T> SharedSlice<'a, T> {
    pub fn new(slice: &'a mut [T]) -> Self {
        Self {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
            _marker: std::marker::PhantomData,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements `range`, mutable.
    ///
    /// # Safety
    /// While the returned slice lives, no other caller may touch these elements.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn range_mut(&self, range: std::ops::Range<usize>) -> &mut [T] {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "range out of the slice"
        );
        // SAFETY: in bounds (asserted) of a live `&mut [T]`; exclusivity is the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_on_any_pool() {
        for threads in [1, 2, 4] {
            let pool = ThreadPool::spawn(threads);
            while pool.threads() < threads {
                std::thread::yield_now();
            }
            for tasks in [0, 1, 2, 7, 100, 1000] {
                let counts: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                pool.run(tasks, |i| {
                    counts[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(
                    counts.iter().all(|c| c.load(Ordering::Relaxed) == 1),
                    "{threads} threads, {tasks} tasks"
                );
            }
        }
    }

    #[test]
    fn workers_take_tasks_and_jobs_follow_each_other() {
        let pool = ThreadPool::spawn(3);
        while pool.threads() < 3 {
            std::thread::yield_now();
        }
        let seen = std::sync::Mutex::new(std::collections::HashSet::new());
        for _ in 0..200 {
            pool.run(16, |_| {
                seen.lock().unwrap().insert(std::thread::current().id());
                std::thread::sleep(std::time::Duration::from_micros(50));
            });
        }
        assert!(seen.lock().unwrap().len() > 1, "no worker took a task");
    }

    #[test]
    fn a_nested_call_runs_inline_instead_of_deadlocking() {
        let pool = ThreadPool::spawn(2);
        let total = AtomicUsize::new(0);
        pool.run(4, |_| {
            pool.run(3, |_| {
                total.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert_eq!(total.load(Ordering::Relaxed), 12);
    }

    #[test]
    fn a_panicking_task_panics_the_caller_and_the_pool_still_works() {
        let pool = ThreadPool::spawn(2);
        while pool.threads() < 2 {
            std::thread::yield_now();
        }
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(8, |i| assert!(i != 5, "task 5 fails"));
        }));
        assert!(caught.is_err());
        let total = AtomicUsize::new(0);
        pool.run(8, |_| {
            total.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(total.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn split_covers_the_range_in_units() {
        assert_eq!(split(10, 3, 1), vec![0..3, 3..6, 6..10]);
        assert_eq!(split(48, 4, 8), vec![0..8, 8..24, 24..32, 32..48]);
        assert_eq!(split(5, 8, 1).len(), 5);
        assert!(split(0, 4, 8).is_empty());
        for (len, parts, unit) in [(1152, 6, 8), (384, 16, 8), (30, 7, 4)] {
            let ranges = split(len, parts, unit);
            assert_eq!(ranges.first().unwrap().start, 0);
            assert_eq!(ranges.last().unwrap().end, len);
            assert!(
                ranges
                    .windows(2)
                    .all(|w| w[0].end == w[1].start && w[0].start % unit == 0)
            );
        }
    }
}

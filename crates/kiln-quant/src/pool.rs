//! A small persistent thread pool for the matrix products: `threads - 1` workers plus the
//! calling thread, woken per product by an epoch counter.
//!
//! Decode calls a product per weight matrix (about 170 per token for the 1.3B model), each
//! lasting 0.1-1 ms, so the wake-up cost matters: workers spin (with `pause`) for a short while
//! after each job, then park; the caller unparks them (cheap when they are still spinning).
//! A job is `Fn(thread_index)`, called once per thread, concurrently; jobs split their work with
//! an atomic counter, so a late or descheduled thread only does less of it.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long an idle worker spins before parking (and the caller before yielding while it waits).
/// Short: on a machine with fewer free cores than threads a spinning thread takes CPU time the
/// caller needs (measured on a shared 2-vCPU VM: 300 us cost 40% of decode speed, 50 us 12%),
/// while a parked worker wakes in tens of microseconds, small next to a product.
const SPIN: Duration = Duration::from_micros(50);

/// A lifetime-erased job reference; valid while `run` waits for the job to finish.
#[derive(Clone, Copy)]
struct JobRef(*const (dyn Fn(usize) + Sync + 'static));

struct Shared {
    /// Written by `run` before it bumps `epoch`, read by workers after they see the new epoch.
    job: UnsafeCell<Option<JobRef>>,
    epoch: AtomicU64,
    pending: AtomicUsize,
    panicked: AtomicBool,
    shutdown: AtomicBool,
}

// SAFETY: `job` is only written while no worker reads it (between the end of one job, when
// `pending` reached 0, and the next epoch bump), and the job it points to is `Sync`.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// A persistent pool of `threads` threads (the caller counts as one).
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    busy: Mutex<()>,
}

impl Pool {
    /// A pool running jobs on `threads` threads (at least 1; 1 means the caller alone).
    pub fn new(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            job: UnsafeCell::new(None),
            epoch: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
        });
        let workers = (1..threads.max(1))
            .map(|tid| {
                let s = Arc::clone(&shared);
                thread::Builder::new()
                    .name(format!("kiln-quant-{tid}"))
                    .spawn(move || worker(&s, tid))
                    .expect("spawning a kiln-quant worker thread")
            })
            .collect();
        Pool { shared, workers, busy: Mutex::new(()) }
    }

    /// A pool with one thread per available CPU.
    pub fn with_available_parallelism() -> Pool {
        Pool::new(thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Number of threads (workers plus the caller).
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Calls `f(t)` once for each `t` in `0..threads()`, concurrently, and returns when all
    /// calls have returned (re-raising a panic from any of them). The calls must not wait for
    /// each other: when the pool is already running a job (a nested call, or another thread's),
    /// they run one after another on the caller instead.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        let guard = match self.busy.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                (0..self.threads()).for_each(f);
                return;
            }
        };
        if self.workers.is_empty() {
            f(0);
            return;
        }
        let s = &*self.shared;
        // SAFETY: no worker reads `job` now (the previous job finished: `pending` was 0 when the
        // previous `run` returned, and `busy` excludes other callers). The lifetime is erased;
        // `Wait` below keeps `f` alive until every worker is done with it, even if `f(0)` panics.
        unsafe {
            let erased: &'static (dyn Fn(usize) + Sync) = std::mem::transmute::<&(dyn Fn(usize) + Sync), _>(f);
            *s.job.get() = Some(JobRef(erased));
        }
        // A panic left over from a run whose caller also panicked must not leak into this one.
        s.panicked.store(false, Ordering::Relaxed);
        s.pending.store(self.workers.len(), Ordering::Relaxed);
        s.epoch.fetch_add(1, Ordering::Release);
        for w in &self.workers {
            w.thread().unpark();
        }
        struct Wait<'a>(&'a Shared);
        impl Drop for Wait<'_> {
            fn drop(&mut self) {
                let start = Instant::now();
                let mut spins = 0u32;
                while self.0.pending.load(Ordering::Acquire) != 0 {
                    spins += 1;
                    if !spins.is_multiple_of(64) || start.elapsed() < SPIN {
                        std::hint::spin_loop();
                    } else {
                        thread::yield_now();
                    }
                }
            }
        }
        let wait = Wait(s);
        f(0);
        drop(wait);
        drop(guard);
        if s.panicked.swap(false, Ordering::Relaxed) {
            resume_unwind(Box::new("a kiln-quant pool worker panicked"));
        }
    }
}

impl Pool {
    /// Calls `f(i, piece)` for every `chunk`-sized piece `i` of `data` (the last may be shorter),
    /// pieces claimed one at a time by the pool's threads: the safe way to let a job write
    /// disjoint parts of one buffer (attention writes each (row, KV head) output this way).
    pub fn for_each_chunk_mut<T: Send>(&self, data: &mut [T], chunk: usize, f: &(dyn Fn(usize, &mut [T]) + Sync)) {
        let (len, chunk) = (data.len(), chunk.max(1));
        let pieces = len.div_ceil(chunk);
        let next = AtomicUsize::new(0);
        let dst = SharedMut::new(data);
        self.run(&|_| loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= pieces {
                break;
            }
            let start = i * chunk;
            // SAFETY: piece `i` is claimed once, by this thread; pieces are disjoint and inside
            // `data`, which stays mutably borrowed until `run` returns.
            f(i, unsafe { dst.slice(start, chunk.min(len - start)) });
        });
    }
}

fn worker(s: &Shared, tid: usize) {
    let mut seen = 0u64;
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let e = s.epoch.load(Ordering::Acquire);
            if e != seen {
                seen = e;
                break;
            }
            if s.shutdown.load(Ordering::Acquire) {
                return;
            }
            spins += 1;
            if !spins.is_multiple_of(64) || start.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                // `run` unparks after bumping the epoch, and an unpark before this park makes
                // it return at once, so no wake-up is lost; the timeout is only a backstop.
                thread::park_timeout(Duration::from_millis(50));
            }
        }
        // SAFETY: `run` wrote the job before the epoch we just saw (Release/Acquire) and keeps
        // it alive until `pending` reaches 0, which happens after this call.
        let job = unsafe { (*s.job.get()).expect("a job accompanies every epoch") };
        if catch_unwind(AssertUnwindSafe(|| unsafe { (*job.0)(tid) })).is_err() {
            s.panicked.store(true, Ordering::Relaxed);
        }
        s.pending.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        for w in &self.workers {
            w.thread().unpark();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("threads", &self.threads()).finish()
    }
}

/// A raw pointer that jobs share to write disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut<T>(*mut T);

// SAFETY: users only write disjoint elements (each job partitions the indices).
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    pub(crate) fn new(s: &mut [T]) -> SharedMut<T> {
        SharedMut(s.as_mut_ptr())
    }

    /// # Safety
    /// `start..start + len` lies inside the original slice and no other thread touches it
    /// while the returned slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(start), len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_runs_each_job_once() {
        for threads in [1, 2, 3] {
            let pool = Pool::new(threads);
            for _ in 0..200 {
                let hits: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
                pool.run(&|t| {
                    hits[t].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn chunks_are_each_written_once() {
        for (threads, len, chunk) in [(1, 10, 3), (2, 1000, 7), (3, 64, 64), (2, 5, 100), (2, 0, 4)] {
            let pool = Pool::new(threads);
            let mut data = vec![0usize; len];
            pool.for_each_chunk_mut(&mut data, chunk, &|i, piece| {
                assert!(piece.len() <= chunk);
                piece.iter_mut().for_each(|x| *x += i + 1);
            });
            assert!(data.iter().enumerate().all(|(j, &x)| x == j / chunk + 1), "{threads} {len} {chunk}");
        }
    }

    #[test]
    fn workers_park_and_wake_again() {
        let pool = Pool::new(2);
        let n = AtomicUsize::new(0);
        pool.run(&|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        thread::sleep(SPIN * 4);
        pool.run(&|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn nested_runs_execute_inline() {
        let pool = Pool::new(2);
        let n = AtomicUsize::new(0);
        pool.run(&|_| {
            pool.run(&|_| {
                n.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert_eq!(n.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_worker_panic_reaches_the_caller_and_the_pool_survives() {
        let pool = Pool::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(&|t| {
                if t == 1 {
                    panic!("boom");
                }
            })
        }));
        assert!(r.is_err());
        let n = AtomicUsize::new(0);
        pool.run(&|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 2);
    }
}

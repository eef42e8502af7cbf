//! Per-job controls inside one process: the job's rate limit (a token bucket), adaptive back-off when the storage
//! throttles (a concurrency window with multiplicative decrease and additive increase), and the fair share of a
//! worker between the jobs it runs.
//!
//! **Rate limit.** A job's limit (tasks per second) is for the job as a whole. Every process working on it reads
//! the limit and the number of workers holding live leases on the job's chunks about once a second
//! ([`REFRESH`]) and takes an equal share: `limit / holders` (a process that holds one of the job's chunks always
//! counts itself). Workers join and leave a job at chunk boundaries, so between two refreshes the sum of the
//! shares may be off by one worker's share for up to a second; over longer spans it is the limit. Every chunk of
//! the job in the process takes its tokens from the one bucket. The bucket holds at most a tenth of a second of
//! tokens (at least one), so a job never bursts far past its limit.
//!
//! **Adaptive back-off.** Each job has a window of tasks it may have in flight in this process, starting at the
//! process's `concurrency` (so without throttling nothing changes). A task attempt answered with throttling
//! (`SlowDown`, 503, 429, `Throttling`, …) halves the window, at most once per [`CUT_INTERVAL`] (the throttled
//! answers of one burst are one signal); every success grows it by `1/window`, about one task per window's worth
//! of successes, back up to `concurrency`. Retries of the throttled tasks keep their own bounded back-off.
//!
//! **Fairness.** The executor claims chunks round-robin over the Active jobs, the job with the fewest chunks held
//! here first, and every chunk waits for storage slots in one FIFO queue: equal jobs get equal shares.
//!
//! The bucket and the window take the time as a parameter ([`Duration`] since any fixed start), so they are tested
//! with simulated time; the executor passes tokio's clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use s3batch_storage::StorageError;
use tokio::sync::Notify;

/// How often a process re-reads the limits of the jobs it runs.
pub const REFRESH: Duration = Duration::from_secs(1);
/// Throttled answers closer together than this are one signal: one halving.
pub const CUT_INTERVAL: Duration = Duration::from_millis(100);
/// Longest sleep of a task waiting for a token before it looks again (so a raised limit applies at once).
const MAX_TOKEN_WAIT: Duration = Duration::from_millis(100);

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// A bucket for `rate` tokens a second (more than 0), starting with one token at `now`.
    pub fn new(rate: f64, now: Duration) -> TokenBucket {
        let mut b = TokenBucket { rate, burst: 1.0, tokens: 1.0, last: now };
        b.set_rate(rate, now);
        b
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Change the rate from `now` on; the tokens gathered so far are kept (up to the new burst).
    pub fn set_rate(&mut self, rate: f64, now: Duration) {
        self.refill(now);
        self.rate = rate.max(f64::MIN_POSITIVE);
        self.burst = (rate / 10.0).max(1.0);
        self.tokens = self.tokens.min(self.burst);
    }

    fn refill(&mut self, now: Duration) {
        if now > self.last {
            self.tokens = (self.tokens + (now - self.last).as_secs_f64() * self.rate).min(self.burst);
            self.last = now;
        }
    }

    /// Take a token at `now`; if there is none, how long until there is one.
    pub fn take(&mut self, now: Duration) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).max(1e-6)))
        }
    }
}

/// The adaptive concurrency window: halved on throttling, grown by `1/window` on success, within `1..=max`.
#[derive(Debug, Clone)]
pub struct Aimd {
    max: f64,
    window: f64,
    last_cut: Option<Duration>,
}

impl Aimd {
    pub fn new(max: usize) -> Aimd {
        let max = max.max(1) as f64;
        Aimd { max, window: max, last_cut: None }
    }

    /// Tasks that may be in flight.
    pub fn window(&self) -> usize {
        self.window.floor() as usize
    }

    /// The storage throttled a task at `now`. True if the window was cut.
    pub fn throttled(&mut self, now: Duration) -> bool {
        if self.last_cut.is_some_and(|t| now.saturating_sub(t) < CUT_INTERVAL) {
            return false;
        }
        self.last_cut = Some(now);
        self.window = (self.window / 2.0).max(1.0);
        true
    }

    /// A task attempt succeeded.
    pub fn succeeded(&mut self) {
        self.window = (self.window + 1.0 / self.window).min(self.max);
    }
}

pub use s3batch_storage::is_throttling;

#[derive(Debug)]
struct State {
    bucket: Option<TokenBucket>,
    aimd: Aimd,
    in_flight: usize,
    /// The job's limit and the workers sharing it, as last read.
    job_limit: Option<i64>,
    holders: i64,
}

/// One job's controls in this process, shared by all of its chunks here.
#[derive(Debug)]
pub struct JobControl {
    state: Mutex<State>,
    freed: Notify,
    start: tokio::time::Instant,
    /// The job's chunks held in this process (see [`Present`]).
    chunks_here: AtomicUsize,
}

impl JobControl {
    /// Controls for a job, with at most `concurrency` tasks in flight and no rate limit yet.
    pub fn new(concurrency: usize) -> JobControl {
        JobControl {
            state: Mutex::new(State {
                bucket: None,
                aimd: Aimd::new(concurrency),
                in_flight: 0,
                job_limit: None,
                holders: 1,
            }),
            freed: Notify::new(),
            start: tokio::time::Instant::now(),
            chunks_here: AtomicUsize::new(0),
        }
    }

    /// Whether a request of the job that just ended may hand its place (its slot in the window) straight to the
    /// next request of its chunk: the job has no rate limit (that counts every task) and its window has not shrunk
    /// below the requests in flight.
    pub fn keeps_places(&self) -> bool {
        let s = self.lock();
        s.bucket.is_none() && s.in_flight <= s.aimd.window()
    }

    fn now(&self) -> Duration {
        tokio::time::Instant::now() - self.start
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The job's limit (tasks per second for the whole job, `None`: none) shared by `holders` processes: this
    /// process's share is `limit / holders` (at least this process holds the job).
    pub fn set_limit(&self, job_limit: Option<i64>, holders: i64) {
        let now = self.now();
        let mut s = self.lock();
        let holders = holders.max(1);
        if (s.job_limit, s.holders) == (job_limit, holders) && (job_limit.is_some() == s.bucket.is_some()) {
            return;
        }
        s.job_limit = job_limit;
        s.holders = holders;
        match job_limit {
            None => s.bucket = None,
            Some(l) => {
                let share = l as f64 / holders as f64;
                match &mut s.bucket {
                    Some(b) => b.set_rate(share, now),
                    None => s.bucket = Some(TokenBucket::new(share, now)),
                }
            }
        }
        drop(s);
        self.freed.notify_waiters();
    }

    /// This process's share of the job's rate, if it is limited.
    pub fn rate(&self) -> Option<f64> {
        self.lock().bucket.as_ref().map(TokenBucket::rate)
    }

    /// The adaptive window: tasks of the job that may be in flight here.
    pub fn window(&self) -> usize {
        self.lock().aimd.window()
    }

    /// Wait until a task of the job may start: a slot in the window and a token of the rate limit.
    pub async fn admit(self: &Arc<Self>) -> Slot {
        // Most tasks find room at once: they take it without enlisting as a waiter.
        if let Ok(slot) = self.try_admit() {
            return slot;
        }
        loop {
            // Enlisted before looking, so that a slot freed after the look wakes this waiter.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let wait = match self.try_admit() {
                Ok(slot) => return slot,
                Err(wait) => wait,
            };
            match wait {
                // A full window: until a task ends (or, should a wake-up be missed, a little while).
                None => {
                    let _ = tokio::time::timeout(MAX_TOKEN_WAIT, freed).await;
                }
                Some(d) => tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = freed => {}
                },
            }
        }
    }

    /// A slot in the window and a token, if both are free now; else what to wait for: a slot (`None`) or a token
    /// (how long until there is one, at most [`MAX_TOKEN_WAIT`]).
    fn try_admit(self: &Arc<Self>) -> Result<Slot, Option<Duration>> {
        let mut s = self.lock();
        if s.in_flight >= s.aimd.window() {
            return Err(None);
        }
        match s.bucket.as_mut().map(|b| b.take(self.now())) {
            None | Some(Ok(())) => {
                s.in_flight += 1;
                Ok(Slot(self.clone()))
            }
            Some(Err(wait)) => Err(Some(wait.min(MAX_TOKEN_WAIT))),
        }
    }

    /// Wait until a request carrying `tasks` tasks may start (a batch delete: many keys in one DeleteObjects): one
    /// slot in the window, as a request holds, and `tasks` tokens of the rate limit, which counts tasks, not
    /// requests. The tokens are taken as they come (the bucket holds at most a tenth of a second's worth).
    pub async fn admit_tasks(self: &Arc<Self>, tasks: usize) -> Slot {
        let mut owed = tasks.saturating_sub(1);
        while owed > 0 {
            let wait = {
                let now = self.now();
                let mut s = self.lock();
                match s.bucket.as_mut() {
                    None => {
                        owed = 0;
                        None
                    }
                    Some(b) => loop {
                        if owed == 0 {
                            break None;
                        }
                        match b.take(now) {
                            Ok(()) => owed -= 1,
                            Err(wait) => break Some(wait.min(MAX_TOKEN_WAIT)),
                        }
                    },
                }
            };
            if let Some(d) = wait {
                tokio::time::sleep(d).await;
            }
        }
        // The last token with the slot.
        self.admit().await
    }

    /// A task attempt's answer, for the adaptive window.
    pub fn observe<T>(&self, r: &Result<T, StorageError>) {
        match r {
            Ok(_) => self.lock().aimd.succeeded(),
            Err(e) if is_throttling(e) => {
                let now = self.now();
                let mut s = self.lock();
                if s.aimd.throttled(now) {
                    tracing::info!(window = s.aimd.window(), error = %e, "storage throttling: fewer tasks in flight");
                }
            }
            Err(_) => {}
        }
    }
}

/// A task's place in its job's window; given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<JobControl>);

impl Drop for Slot {
    fn drop(&mut self) {
        let free = {
            let mut s = self.0.lock();
            s.in_flight -= 1;
            s.aimd.window().saturating_sub(s.in_flight)
        };
        // One slot freed: one waiter (the first) may take it; waking every waiter only sent all but one back to
        // sleep, a wake-up of each waiting chunk per task. More room (the window grew meanwhile): all may look.
        // A waiter woken here that gives up waiting (its chunk stops) passes the wake-up on to the next one.
        if free > 1 {
            self.0.freed.notify_waiters();
        } else {
            self.0.freed.notify_one();
        }
    }
}

/// A chunk of a job held by this process: counted in its job's controls and among all the chunks held here while
/// this lives.
#[derive(Debug)]
pub struct Present {
    job: Arc<JobControl>,
    all: Arc<AtomicUsize>,
}

impl Present {
    pub fn new(job: Arc<JobControl>, all: Arc<AtomicUsize>) -> Present {
        job.chunks_here.fetch_add(1, Ordering::AcqRel);
        all.fetch_add(1, Ordering::AcqRel);
        Present { job, all }
    }

    /// Whether every chunk held here is of this chunk's job: no other job waits for this process's request slots.
    pub fn alone(&self) -> bool {
        self.job.chunks_here.load(Ordering::Acquire) == self.all.load(Ordering::Acquire)
    }
}

impl Drop for Present {
    fn drop(&mut self) {
        self.job.chunks_here.fetch_sub(1, Ordering::AcqRel);
        self.all.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The controls of the jobs this process runs.
pub(crate) type Controls = Arc<Mutex<HashMap<String, Arc<JobControl>>>>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Greedy consumers against a bucket over `secs` of simulated time, stepping to each next token; `change` may
    /// alter the rate on the way. Returns the tokens taken.
    fn drain(
        b: &mut TokenBucket,
        from: Duration,
        secs: f64,
        mut change: impl FnMut(&mut TokenBucket, Duration),
    ) -> u64 {
        let end = from + Duration::from_secs_f64(secs);
        let (mut now, mut taken) = (from, 0u64);
        while now < end {
            change(b, now);
            match b.take(now) {
                Ok(()) => taken += 1,
                // Waiters wake a little late, as timers do.
                Err(wait) => now += wait + Duration::from_micros(50),
            }
        }
        taken
    }

    #[test]
    fn rate_is_held_within_ten_percent_over_ten_simulated_seconds() {
        for rate in [1.0, 7.0, 50.0, 1000.0, 20_000.0] {
            let mut b = TokenBucket::new(rate, Duration::ZERO);
            let taken = drain(&mut b, Duration::ZERO, 10.0, |_, _| {}) as f64;
            let want = rate * 10.0;
            assert!((taken - want).abs() <= want * 0.1, "rate {rate}: {taken} tokens in 10 s, want {want} ± 10 %");
        }
    }

    #[test]
    fn idle_time_does_not_build_a_large_burst() {
        let mut b = TokenBucket::new(100.0, Duration::ZERO);
        // An hour idle, then a greedy taker: at most a tenth of a second's worth at once.
        let t = Duration::from_secs(3600);
        let mut burst = 0;
        while b.take(t).is_ok() {
            burst += 1;
        }
        assert_eq!(burst, 10);
        let mut b = TokenBucket::new(2.0, Duration::ZERO);
        assert!(b.take(t).is_ok());
        assert!(b.take(t).is_err(), "a slow bucket holds one token");
    }

    #[test]
    fn a_rate_change_applies_from_then_on() {
        let mut b = TokenBucket::new(10.0, Duration::ZERO);
        let five = Duration::from_secs(5);
        let taken = drain(&mut b, Duration::ZERO, 10.0, |b, now| {
            if now >= five && b.rate() == 10.0 {
                b.set_rate(100.0, now);
            }
        }) as f64;
        let want = 10.0 * 5.0 + 100.0 * 5.0;
        assert!((taken - want).abs() <= want * 0.1, "{taken} tokens, want {want} ± 10 %");
        let mut b = TokenBucket::new(1000.0, Duration::ZERO);
        b.set_rate(1.0, Duration::ZERO);
        let taken = drain(&mut b, Duration::ZERO, 10.0, |_, _| {});
        assert!((9..=11).contains(&taken), "lowered to 1/s: {taken} in 10 s");
    }

    #[test]
    fn window_halves_on_throttling_once_per_interval_and_grows_back() {
        let mut a = Aimd::new(64);
        assert_eq!(a.window(), 64);
        let t = Duration::from_secs(1);
        assert!(a.throttled(t));
        // The rest of the same burst: no further cut.
        assert!(!a.throttled(t + Duration::from_millis(10)));
        assert_eq!(a.window(), 32);
        assert!(a.throttled(t + CUT_INTERVAL));
        assert_eq!(a.window(), 16);
        for i in 0..20 {
            a.throttled(t + CUT_INTERVAL * (2 + i));
        }
        assert_eq!(a.window(), 1, "never below one");
        // Additive increase: about one per window of successes.
        for _ in 0..3 {
            a.succeeded();
        }
        assert_eq!(a.window(), 2);
        for _ in 0..10_000 {
            a.succeeded();
        }
        assert_eq!(a.window(), 64, "back to the full concurrency, not past it");
    }

    /// A waker that counts its wake-ups.
    struct CountWakes(std::sync::atomic::AtomicUsize);

    impl CountWakes {
        fn count(&self) -> usize {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    impl std::task::Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_freed_slot_wakes_one_waiter_and_is_never_lost() {
        use std::future::Future;
        use std::pin::Pin;
        use std::task::{Context, Poll, Waker};
        type Waiter<'a> = Pin<Box<dyn Future<Output = Slot> + 'a>>;
        fn poll(w: &mut Waiter<'_>, n: &Arc<CountWakes>) -> Poll<Slot> {
            w.as_mut().poll(&mut Context::from_waker(&Waker::from(n.clone())))
        }
        let c = Arc::new(JobControl::new(1));
        let held = c.admit().await;
        let counters: Vec<Arc<CountWakes>> = (0..3).map(|_| Arc::new(CountWakes(0.into()))).collect();
        let mut waiters: Vec<Waiter<'_>> = (0..3).map(|_| Box::pin(c.admit()) as Waiter<'_>).collect();
        for (w, n) in waiters.iter_mut().zip(&counters) {
            assert!(poll(w, n).is_pending(), "a window of one is full");
        }
        drop(held);
        let woken: Vec<usize> = counters.iter().map(|n| n.count()).collect();
        assert_eq!(woken, [1, 0, 0], "one freed slot wakes the first waiter, not all of them");
        // The first waiter stops waiting without taking the slot: its wake-up passes to the next one.
        drop(waiters.remove(0));
        assert_eq!(counters[1].count(), 1, "the wake-up is passed on");
        let Poll::Ready(slot) = poll(&mut waiters[0], &counters[1]) else { panic!("the freed slot is taken") };
        assert!(poll(&mut waiters[1], &counters[2]).is_pending(), "one slot, taken");
        assert_eq!(counters[2].count(), 0);
        drop(slot);
        assert_eq!(counters[2].count(), 1, "the last waiter is woken when the slot is freed again");
        assert!(matches!(poll(&mut waiters[1], &counters[2]), Poll::Ready(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_takes_a_token_per_task_and_one_slot() {
        let c = Arc::new(JobControl::new(4));
        c.set_limit(Some(100), 1);
        let start = tokio::time::Instant::now();
        let mut tasks = 0;
        while tokio::time::Instant::now() - start < Duration::from_secs(10) {
            drop(c.admit_tasks(50).await);
            tasks += 50;
        }
        assert!((950..=1100).contains(&tasks), "{tasks} tasks admitted in 10 simulated seconds at 100/s");
        // Unlimited: a batch of 1,000 waits for nothing, and holds one slot of the window.
        c.set_limit(None, 1);
        let t = tokio::time::Instant::now();
        let slots: Vec<Slot> = futures::future::join_all((0..4).map(|_| c.admit_tasks(1000))).await;
        assert_eq!(tokio::time::Instant::now(), t);
        let c2 = c.clone();
        let fifth = tokio::spawn(async move { c2.admit_tasks(1000).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!fifth.is_finished(), "four requests fill a window of four");
        drop(slots);
        tokio::time::timeout(Duration::from_millis(1), fifth).await.expect("admitted once a slot is free").unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn admit_holds_the_share_of_the_rate_and_the_window() {
        let c = Arc::new(JobControl::new(8));
        // 40 tasks/s for the job, two workers on it: 20/s here.
        c.set_limit(Some(40), 2);
        assert_eq!(c.rate(), Some(20.0));
        let start = tokio::time::Instant::now();
        let mut n = 0;
        while tokio::time::Instant::now() - start < Duration::from_secs(10) {
            drop(c.admit().await);
            n += 1;
        }
        assert!((180..=220).contains(&n), "{n} admitted in 10 simulated seconds at 20/s");
        // Lifted: no waiting at all.
        c.set_limit(None, 2);
        let t = tokio::time::Instant::now();
        for _ in 0..1000 {
            drop(c.admit().await);
        }
        assert_eq!(tokio::time::Instant::now(), t);
        // The window: a ninth task waits for one of eight to end.
        let slots: Vec<Slot> = futures::future::join_all((0..8).map(|_| c.admit())).await;
        let c2 = c.clone();
        let ninth = tokio::spawn(async move { c2.admit().await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!ninth.is_finished());
        drop(slots);
        tokio::time::timeout(Duration::from_millis(1), ninth).await.expect("admitted once a slot is free").unwrap();
    }

    #[tokio::test]
    async fn places_are_kept_only_without_a_rate_limit_within_the_window_and_with_no_other_job_here() {
        let c = Arc::new(JobControl::new(4));
        let slots: Vec<Slot> = futures::future::join_all((0..4).map(|_| c.admit())).await;
        assert!(c.keeps_places(), "unlimited, four in a window of four");
        c.set_limit(Some(100), 1);
        assert!(!c.keeps_places(), "a rate limit counts every task: each takes its token");
        c.set_limit(None, 1);
        c.observe::<()>(&Err(StorageError::new("SlowDown", 503, "throttled")));
        assert_eq!(c.window(), 2);
        assert!(!c.keeps_places(), "four in flight in a window cut to two: places are given back");
        drop(slots);
        assert!(c.keeps_places());

        let all = Arc::new(AtomicUsize::new(0));
        let other = Arc::new(JobControl::new(4));
        let a = Present::new(c.clone(), all.clone());
        let b = Present::new(c.clone(), all.clone());
        assert!(a.alone() && b.alone(), "two chunks of one job");
        let o = Present::new(other.clone(), all.clone());
        assert!(!a.alone() && !o.alone(), "another job has a chunk here");
        drop(o);
        assert!(a.alone());
        drop((a, b));
        assert_eq!(all.load(Ordering::Acquire), 0);
    }
}

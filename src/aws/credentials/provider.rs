//! Runs a chain of [`CredentialsSource`]s and keeps its answer fresh in the background.
//!
//! # Design
//!
//! The provider caches the credentials the chain found. [`CredentialsProvider::credentials`]
//! hands out the cached ones while they are usable (not within [`RefreshTiming::margin`] of
//! their expiry) without touching the network or waiting on a load in progress, so no upload
//! waits on a metadata or STS call once credentials exist. Only when there are none, or the
//! cached ones have really expired, does the caller load synchronously (one caller loads,
//! the others wait for it rather than each asking the chain).
//!
//! When the cached credentials expire, the provider starts one background thread (on the
//! first load that returns an expiry) that sleeps until shortly before they do ([`refresh_at`]:
//! [`REFRESH_BEFORE_EXPIRY`] ahead, or half their lifetime for short-lived ones) and loads
//! the chain again. A failed refresh keeps the old credentials until they really expire,
//! is counted ([`CredentialsProvider::refresh_failures`]), is logged once per run of failures
//! (later attempts log at debug level), and is retried with jittered exponential backoff. When
//! a caller loads credentials itself meanwhile (the cached ones expired during the failures),
//! the refresher drops its backoff and plans the next refresh from the new expiry. The
//! thread exits when the credentials stop expiring or the provider is dropped.

use super::{Credentials, CredentialsError, CredentialsSource, default_chain};
use crate::aws::credentials::ChainSettings;
use crate::aws::env::Env;
use crate::aws::imds::ImdsClient;
use crate::aws::timestamp::format_rfc3339;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

/// How long before expiry temporary credentials are replaced (at most half their lifetime).
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// When and how often the background refresh runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshTiming {
    /// Refresh this long before expiry, or at half the lifetime when that is shorter.
    pub before_expiry: Duration,
    /// Credentials this close to expiry are no longer handed out: a request signed with them
    /// could arrive after they expire.
    pub margin: Duration,
    /// Never refresh sooner than this after the last load.
    pub min_interval: Duration,
    /// The first retry after a failed refresh waits about this long; each further one twice
    /// as long, up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest wait between retries.
    pub max_backoff: Duration,
}

impl Default for RefreshTiming {
    fn default() -> Self {
        RefreshTiming {
            before_expiry: REFRESH_BEFORE_EXPIRY,
            margin: Duration::from_secs(5),
            min_interval: Duration::from_secs(1),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// When credentials fetched at `fetched_at` and expiring at `expires_at` should be replaced:
/// `before_expiry` ahead of expiry, or halfway through their life when that is later, and
/// never sooner than `min_interval` after the fetch.
pub fn refresh_at(
    fetched_at: SystemTime,
    expires_at: SystemTime,
    timing: &RefreshTiming,
) -> SystemTime {
    let lifetime = expires_at.duration_since(fetched_at).unwrap_or_default();
    let lead = timing.before_expiry.min(lifetime / 2);
    (expires_at - lead).max(fetched_at + timing.min_interval)
}

/// The credentials every signed request uses; shared by all uploader threads.
pub struct CredentialsProvider {
    shared: Arc<Shared>,
}

struct Shared {
    sources: Vec<Box<dyn CredentialsSource>>,
    timing: RefreshTiming,
    state: Mutex<State>,
    /// Wakes the refresher early, to stop.
    wake: Condvar,
    /// Held while the chain loads, so only one load runs at a time.
    loading: Mutex<()>,
    /// Shared with whoever exports it (the relay's `/metrics`).
    refresh_failures: Arc<AtomicU64>,
}

#[derive(Default)]
struct State {
    current: Option<Credentials>,
    fetched_at: Option<SystemTime>,
    /// Failed refreshes since the last success.
    failures_in_a_row: u32,
    /// When to try again after a failed refresh.
    retry_at: Option<SystemTime>,
    refresher_running: bool,
    stopping: bool,
    /// Loads by callers (not the refresher); a change tells the refresher to plan again.
    foreground_loads: u64,
}

impl CredentialsProvider {
    /// A provider trying `sources` in order.
    pub fn new(sources: Vec<Box<dyn CredentialsSource>>) -> Self {
        CredentialsProvider::with_timing(sources, RefreshTiming::default())
    }

    /// A provider that adds its failed refreshes to `refresh_failures`, which others read
    /// (several providers may share one counter).
    pub fn counting_failures_in(
        sources: Vec<Box<dyn CredentialsSource>>,
        refresh_failures: Arc<AtomicU64>,
    ) -> Self {
        CredentialsProvider::build(sources, RefreshTiming::default(), refresh_failures)
    }

    /// A provider with other refresh timing.
    pub fn with_timing(sources: Vec<Box<dyn CredentialsSource>>, timing: RefreshTiming) -> Self {
        CredentialsProvider::build(sources, timing, Arc::new(AtomicU64::new(0)))
    }

    fn build(
        sources: Vec<Box<dyn CredentialsSource>>,
        timing: RefreshTiming,
        refresh_failures: Arc<AtomicU64>,
    ) -> Self {
        CredentialsProvider {
            shared: Arc::new(Shared {
                sources,
                timing,
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
                loading: Mutex::new(()),
                refresh_failures,
            }),
        }
    }

    /// A provider over the [`default_chain`].
    pub fn default_chain(settings: &ChainSettings) -> Self {
        CredentialsProvider::new(default_chain(settings))
    }

    /// A provider over the [`default_chain`] for `env`, calling STS in `region`, with its own
    /// instance metadata client.
    pub fn from_env(env: &Env, region: &str) -> Self {
        let imds = Arc::new(ImdsClient::from_env(env));
        CredentialsProvider::default_chain(&ChainSettings::new(env, region, imds))
    }

    /// The current credentials: the cached ones while usable, else loaded now.
    pub fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let shared = &self.shared;
        if let Some(credentials) = shared.usable(&shared.lock_state(), SystemTime::now()) {
            return Ok(credentials);
        }
        let _loading = shared
            .loading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Another caller may have loaded while this one waited.
        if let Some(credentials) = shared.usable(&shared.lock_state(), SystemTime::now()) {
            return Ok(credentials);
        }
        let credentials = shared.load_from_chain()?;
        let now = SystemTime::now();
        if credentials
            .expires_at
            .is_some_and(|expiry| expiry <= now + shared.timing.margin)
        {
            log::warn!(
                "AWS credentials (access key {}) expire at {}, in less than {} s",
                credentials.access_key_id,
                credentials
                    .expires_at
                    .map(format_rfc3339)
                    .unwrap_or_default(),
                shared.timing.margin.as_secs()
            );
        }
        let mut state = shared.lock_state();
        if state.failures_in_a_row > 0 {
            // The same line as a background recovery: the warning promised retries.
            log::info!(
                "Refreshed AWS credentials after {} failed attempts",
                state.failures_in_a_row
            );
        }
        state.current = Some(credentials.clone());
        state.fetched_at = Some(now);
        state.failures_in_a_row = 0;
        state.retry_at = None;
        state.foreground_loads = state.foreground_loads.wrapping_add(1);
        if credentials.expires_at.is_some() && !state.refresher_running && !state.stopping {
            state.refresher_running = start_refresher(shared.clone());
        }
        drop(state);
        // A refresher asleep on a long backoff would otherwise wake only after these new
        // credentials are due for refresh, or have expired.
        shared.wake.notify_all();
        Ok(credentials)
    }

    /// Background refreshes that failed since the provider was created (with
    /// [`CredentialsProvider::counting_failures_in`], those of every provider sharing the counter).
    pub fn refresh_failures(&self) -> u64 {
        self.shared.refresh_failures.load(Ordering::Relaxed)
    }
}

impl Drop for CredentialsProvider {
    fn drop(&mut self) {
        self.shared.lock_state().stopping = true;
        self.shared.wake.notify_all();
    }
}

impl std::fmt::Debug for CredentialsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .shared
            .sources
            .iter()
            .map(|source| source.name())
            .collect();
        f.debug_struct("CredentialsProvider")
            .field("sources", &names)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        // The state holds no invariant a panic elsewhere could break.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn usable(&self, state: &State, now: SystemTime) -> Option<Credentials> {
        let credentials = state.current.as_ref()?;
        match credentials.expires_at {
            Some(expiry) if expiry <= now + self.timing.margin => None,
            _ => Some(credentials.clone()),
        }
    }

    fn load_from_chain(&self) -> Result<Credentials, CredentialsError> {
        for source in &self.sources {
            if let Some(credentials) = source.load()? {
                log::debug!(
                    "Using AWS credentials from {} (access key {}{})",
                    source.name(),
                    credentials.access_key_id,
                    credentials
                        .expires_at
                        .map(|expiry| format!(", expiring at {}", format_rfc3339(expiry)))
                        .unwrap_or_default()
                );
                return Ok(credentials);
            }
        }
        Err(CredentialsError::NotFound {
            tried: self.sources.iter().map(|source| source.name()).collect(),
        })
    }

    /// How long the refresher should sleep, or None when there is nothing to refresh.
    fn next_wait(&self, state: &State, now: SystemTime) -> Option<Duration> {
        let due = match state.retry_at {
            Some(retry_at) => retry_at,
            None => {
                let expiry = state.current.as_ref()?.expires_at?;
                refresh_at(state.fetched_at.unwrap_or(now), expiry, &self.timing)
            }
        };
        Some(due.duration_since(now).unwrap_or_default())
    }

    /// One background refresh: load without holding the state lock, then record the outcome.
    fn refresh(&self) {
        let result = {
            let _loading = self.loading.lock().unwrap_or_else(PoisonError::into_inner);
            self.load_from_chain()
        };
        let now = SystemTime::now();
        let mut state = self.lock_state();
        match result {
            Ok(credentials) => {
                if state.failures_in_a_row > 0 {
                    log::info!(
                        "Refreshed AWS credentials after {} failed attempts",
                        state.failures_in_a_row
                    );
                }
                state.current = Some(credentials);
                state.fetched_at = Some(now);
                state.failures_in_a_row = 0;
                state.retry_at = None;
            }
            Err(error) => {
                self.refresh_failures.fetch_add(1, Ordering::Relaxed);
                state.failures_in_a_row = state.failures_in_a_row.saturating_add(1);
                let delay = backoff(state.failures_in_a_row, &self.timing);
                state.retry_at = Some(now + delay);
                let until = match state.current.as_ref().and_then(|c| c.expires_at) {
                    Some(expiry) if expiry > now => {
                        format!("until they expire at {}", format_rfc3339(expiry))
                    }
                    _ => "although they have expired".to_owned(),
                };
                if state.failures_in_a_row == 1 {
                    log::warn!(
                        "Refreshing AWS credentials failed; keeping the current ones {until} and retrying with backoff: {error}"
                    );
                } else {
                    log::debug!(
                        "Refreshing AWS credentials failed again (attempt {}, next in {} ms): {error}",
                        state.failures_in_a_row,
                        delay.as_millis()
                    );
                }
            }
        }
    }
}

/// Starts the refresher thread; false if the thread could not be started.
fn start_refresher(shared: Arc<Shared>) -> bool {
    let spawned = std::thread::Builder::new()
        .name("credentials-refresh".to_owned())
        .spawn(move || run_refresher(&shared));
    match spawned {
        Ok(_) => true,
        Err(error) => {
            log::warn!(
                "Cannot start the credentials refresh thread ({error}); credentials will be refreshed when they expire"
            );
            false
        }
    }
}

fn run_refresher(shared: &Shared) {
    loop {
        let state = shared.lock_state();
        let Some(wait) = shared.next_wait(&state, SystemTime::now()) else {
            let mut state = state;
            state.refresher_running = false;
            return;
        };
        let planned_after = state.foreground_loads;
        let (state, timeout) = shared
            .wake
            .wait_timeout_while(state, wait, |state| {
                !state.stopping && state.foreground_loads == planned_after
            })
            .unwrap_or_else(PoisonError::into_inner);
        if state.stopping {
            return;
        }
        if !timeout.timed_out() {
            // A caller loaded new credentials: their expiry decides the next refresh.
            continue;
        }
        drop(state);
        shared.refresh();
    }
}

/// `first_backoff × 2^(failures-1)`, capped, then jittered down by up to half.
fn backoff(failures: u32, timing: &RefreshTiming) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let full = timing
        .first_backoff
        .saturating_mul(1 << exponent)
        .min(timing.max_backoff);
    // A random 64-bit value from the standard library's randomly keyed hasher.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let fraction = 0.5 + (random % 1000) as f64 / 2000.0;
    full.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    type Answer = Box<dyn Fn(usize) -> Result<Option<Credentials>, CredentialsError> + Send + Sync>;

    /// Answers load number n (from 0) with `answer(n)` and counts loads.
    struct Scripted {
        name: &'static str,
        answer: Answer,
        calls: Arc<AtomicUsize>,
    }

    impl Scripted {
        fn new(
            name: &'static str,
            answer: impl Fn(usize) -> Result<Option<Credentials>, CredentialsError>
            + Send
            + Sync
            + 'static,
        ) -> (Box<Self>, Arc<AtomicUsize>) {
            let calls = Arc::new(AtomicUsize::new(0));
            let source = Scripted {
                name,
                answer: Box::new(answer),
                calls: calls.clone(),
            };
            (Box::new(source), calls)
        }
    }

    impl CredentialsSource for Scripted {
        fn name(&self) -> &'static str {
            self.name
        }
        fn load(&self) -> Result<Option<Credentials>, CredentialsError> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            (self.answer)(call)
        }
    }

    fn keys(id: &str) -> Credentials {
        Credentials::new(id, "secret", None)
    }

    fn broken(name: &'static str) -> CredentialsError {
        CredentialsError::Source {
            source: name,
            message: "broken".to_owned(),
        }
    }

    fn calls(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }

    /// Timing for tests: seconds become fractions of one.
    fn fast() -> RefreshTiming {
        RefreshTiming {
            before_expiry: Duration::from_secs(300),
            margin: Duration::from_millis(100),
            min_interval: Duration::from_millis(50),
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(200),
        }
    }

    #[test]
    fn the_first_source_with_credentials_wins() {
        let (first, first_calls) = Scripted::new("first", |_| Ok(None));
        let (second, _) = Scripted::new("second", |_| Ok(Some(keys("SECOND"))));
        let (third, third_calls) = Scripted::new("third", |_| Ok(Some(keys("THIRD"))));
        let provider = CredentialsProvider::new(vec![first, second, third]);
        assert_eq!(provider.credentials().unwrap().access_key_id, "SECOND");
        assert_eq!(calls(&first_calls), 1);
        assert_eq!(calls(&third_calls), 0);
    }

    #[test]
    fn a_failing_source_stops_the_chain() {
        let (first, _) = Scripted::new("first", |_| Err(broken("first")));
        let (second, second_calls) = Scripted::new("second", |_| Ok(Some(keys("SECOND"))));
        let provider = CredentialsProvider::new(vec![first, second]);
        assert_eq!(provider.credentials(), Err(broken("first")));
        assert_eq!(calls(&second_calls), 0);
    }

    #[test]
    fn nothing_found_lists_the_sources_tried() {
        let (first, _) = Scripted::new("first", |_| Ok(None));
        let (second, _) = Scripted::new("second", |_| Ok(None));
        let provider = CredentialsProvider::new(vec![first, second]);
        assert_eq!(
            provider.credentials(),
            Err(CredentialsError::NotFound {
                tried: vec!["first", "second"]
            })
        );
    }

    #[test]
    fn long_lived_credentials_are_loaded_once() {
        let (source, counter) =
            Scripted::new("only", |n| Ok(Some(keys(if n == 0 { "A" } else { "B" }))));
        let provider = CredentialsProvider::new(vec![source]);
        for _ in 0..3 {
            assert_eq!(provider.credentials().unwrap().access_key_id, "A");
        }
        assert_eq!(calls(&counter), 1);
        assert!(!provider.shared.lock_state().refresher_running);
    }

    #[test]
    fn refresh_time_is_minutes_ahead_or_half_the_lifetime() {
        let timing = RefreshTiming::default();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let hour = start + Duration::from_secs(3600);
        assert_eq!(
            refresh_at(start, hour, &timing),
            hour - REFRESH_BEFORE_EXPIRY
        );
        let short = start + Duration::from_secs(20);
        assert_eq!(
            refresh_at(start, short, &timing),
            start + Duration::from_secs(10)
        );
        // Already expired or about to: not sooner than the minimum interval.
        assert_eq!(
            refresh_at(start, start, &timing),
            start + timing.min_interval
        );
        assert_eq!(
            refresh_at(start, start - Duration::from_secs(5), &timing),
            start + timing.min_interval
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let timing = RefreshTiming::default();
        for (failures, full) in [(1, 1), (2, 2), (3, 4), (7, 60), (40, 60)] {
            let delay = backoff(failures, &timing);
            let full = Duration::from_secs(full);
            assert!(delay >= full / 2 && delay <= full, "{failures}: {delay:?}");
        }
    }

    #[test]
    fn temporary_credentials_are_refreshed_in_the_background() {
        let (source, counter) = Scripted::new("only", |n| {
            let expiry = SystemTime::now() + Duration::from_millis(600);
            Ok(Some(keys(&format!("KEY{n}")).expiring_at(expiry)))
        });
        let provider = CredentialsProvider::with_timing(vec![source], fast());
        assert_eq!(provider.credentials().unwrap().access_key_id, "KEY0");
        // Refreshed at half-life (300 ms) by the background thread, so a caller after 450 ms
        // gets the new keys without a load of its own.
        std::thread::sleep(Duration::from_millis(450));
        let loads_before = calls(&counter);
        assert!(loads_before >= 2, "no background refresh happened");
        let started = Instant::now();
        let credentials = provider.credentials().unwrap();
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_ne!(credentials.access_key_id, "KEY0");
        assert!(credentials.expires_at.unwrap() > SystemTime::now());
        // Across several expiries, every answer is unexpired.
        for _ in 0..10 {
            let credentials = provider.credentials().unwrap();
            assert!(credentials.expires_at.unwrap() > SystemTime::now() + fast().margin);
            std::thread::sleep(Duration::from_millis(150));
        }
        assert!(calls(&counter) >= 5, "{} loads", calls(&counter));
        assert_eq!(provider.refresh_failures(), 0);
    }

    #[test]
    fn callers_never_wait_on_a_slow_refresh_while_credentials_are_valid() {
        let (source, counter) = Scripted::new("slow", |n| {
            if n > 0 {
                std::thread::sleep(Duration::from_millis(800));
            }
            let expiry = SystemTime::now() + Duration::from_millis(1000);
            Ok(Some(keys(&format!("KEY{n}")).expiring_at(expiry)))
        });
        let provider = CredentialsProvider::with_timing(vec![source], fast());
        provider.credentials().unwrap();
        std::thread::sleep(Duration::from_millis(600)); // the refresh (at 500 ms) is running
        assert_eq!(calls(&counter), 2);
        let started = Instant::now();
        assert_eq!(provider.credentials().unwrap().access_key_id, "KEY0");
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_failed_refresh_keeps_the_credentials_until_they_expire_then_fails() {
        let (source, counter) = Scripted::new("flaky", |n| {
            if n == 0 {
                let expiry = SystemTime::now() + Duration::from_millis(800);
                Ok(Some(keys("FIRST").expiring_at(expiry)))
            } else {
                Err(broken("flaky"))
            }
        });
        let provider = CredentialsProvider::with_timing(vec![source], fast());
        assert_eq!(provider.credentials().unwrap().access_key_id, "FIRST");
        std::thread::sleep(Duration::from_millis(600));
        // The refresh at 400 ms failed and is being retried with backoff.
        assert_eq!(provider.credentials().unwrap().access_key_id, "FIRST");
        assert!(provider.refresh_failures() >= 1);
        let failures = provider.refresh_failures();
        assert!(calls(&counter) as u64 == failures + 1);
        std::thread::sleep(Duration::from_millis(300));
        // Within the margin of expiry: no longer handed out; the chain's error is.
        assert_eq!(provider.credentials(), Err(broken("flaky")));
    }

    #[test]
    fn a_refresh_that_recovers_replaces_the_credentials() {
        let (source, _) = Scripted::new("recovering", |n| match n {
            0 => Ok(Some(
                keys("FIRST").expiring_at(SystemTime::now() + Duration::from_millis(1000)),
            )),
            1 => Err(broken("recovering")),
            _ => Ok(Some(
                keys("LATER").expiring_at(SystemTime::now() + Duration::from_secs(60)),
            )),
        });
        let provider = CredentialsProvider::with_timing(vec![source], fast());
        provider.credentials().unwrap();
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(provider.refresh_failures(), 1);
        assert_eq!(provider.credentials().unwrap().access_key_id, "LATER");
    }

    #[test]
    fn credentials_loaded_by_a_caller_during_a_backoff_are_refreshed_in_time() {
        let (source, counter) = Scripted::new("down-then-up", |n| match n {
            0 => Ok(Some(
                keys("KEY0").expiring_at(SystemTime::now() + Duration::from_millis(400)),
            )),
            1 => Err(broken("down-then-up")),
            _ => Ok(Some(
                keys(&format!("KEY{n}"))
                    .expiring_at(SystemTime::now() + Duration::from_millis(600)),
            )),
        });
        // After the failed refresh at 200 ms the refresher waits 1 to 2 s before retrying.
        let timing = RefreshTiming {
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(2),
            ..fast()
        };
        let provider = CredentialsProvider::with_timing(vec![source], timing);
        assert_eq!(provider.credentials().unwrap().access_key_id, "KEY0");
        std::thread::sleep(Duration::from_millis(450));
        assert_eq!(provider.refresh_failures(), 1);
        // KEY0 is within the margin of its expiry: this caller loads KEY2 (refresh due in 300 ms).
        assert_eq!(provider.credentials().unwrap().access_key_id, "KEY2");
        std::thread::sleep(Duration::from_millis(450));
        assert_eq!(calls(&counter), 4, "the refresher kept its old backoff");
        assert_eq!(provider.credentials().unwrap().access_key_id, "KEY3");
        assert_eq!(calls(&counter), 4);
    }

    #[test]
    fn failed_refreshes_are_added_to_a_shared_counter() {
        let counter = Arc::new(AtomicU64::new(7));
        let (source, _) = Scripted::new("flaky", |n| match n {
            0 => Ok(Some(
                keys("FIRST").expiring_at(SystemTime::now() + Duration::from_millis(400)),
            )),
            _ => Err(broken("flaky")),
        });
        let provider = CredentialsProvider::build(vec![source], fast(), counter.clone());
        provider.credentials().unwrap();
        std::thread::sleep(Duration::from_millis(300)); // the refresh at 200 ms failed
        assert!(counter.load(Ordering::Relaxed) >= 8);
        assert_eq!(provider.refresh_failures(), counter.load(Ordering::Relaxed));
    }

    #[test]
    fn dropping_the_provider_stops_the_refresher() {
        let (source, counter) = Scripted::new("only", |_| {
            Ok(Some(keys("K").expiring_at(
                SystemTime::now() + Duration::from_millis(200),
            )))
        });
        let provider = CredentialsProvider::with_timing(vec![source], fast());
        provider.credentials().unwrap();
        drop(provider);
        std::thread::sleep(Duration::from_millis(50));
        let after_drop = calls(&counter);
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(calls(&counter), after_drop);
    }

    #[test]
    fn from_env_uses_environment_credentials() {
        let env = Env::from_pairs([
            ("AWS_ACCESS_KEY_ID", "ENVKEY"),
            ("AWS_SECRET_ACCESS_KEY", "ENVSECRET"),
            ("AWS_CONFIG_FILE", "/nonexistent/xray-relay/config"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/xray-relay/credentials",
            ),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]);
        let provider = CredentialsProvider::from_env(&env, "us-east-1");
        assert_eq!(provider.credentials().unwrap().access_key_id, "ENVKEY");
        assert!(!format!("{provider:?}").contains("ENVSECRET"));
    }

    #[test]
    fn the_provider_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CredentialsProvider>();
    }
}

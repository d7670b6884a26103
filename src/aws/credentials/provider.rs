//! Runs a chain of [`CredentialsSource`]s and caches the answer until shortly before it expires.

use super::{Credentials, CredentialsError, CredentialsSource, default_chain};
use crate::aws::env::Env;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// How long before expiry temporary credentials are replaced, so a request signed just
/// before the refresh does not arrive with credentials that have already expired.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// The credentials every signed request uses; shared by all uploader threads.
pub struct CredentialsProvider {
    sources: Vec<Box<dyn CredentialsSource>>,
    cached: Mutex<Option<Credentials>>,
}

impl CredentialsProvider {
    /// A provider trying `sources` in order.
    pub fn new(sources: Vec<Box<dyn CredentialsSource>>) -> Self {
        CredentialsProvider {
            sources,
            cached: Mutex::new(None),
        }
    }

    /// A provider over the [`default_chain`] for `env`.
    pub fn from_env(env: &Env) -> Self {
        CredentialsProvider::new(default_chain(env))
    }

    /// The current credentials, loading them on first use and again when they are within
    /// [`REFRESH_BEFORE_EXPIRY`] of expiring.
    pub fn credentials(&self) -> Result<Credentials, CredentialsError> {
        self.credentials_at(SystemTime::now())
    }

    fn credentials_at(&self, now: SystemTime) -> Result<Credentials, CredentialsError> {
        // Holding the lock while loading makes concurrent callers wait for one load instead
        // of each hitting the metadata service; the cache holds no invariant a panic could break.
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(credentials) = cached.as_ref()
            && !needs_refresh(credentials, now)
        {
            return Ok(credentials.clone());
        }
        match self.load_from_chain() {
            Ok(fresh) => {
                *cached = Some(fresh.clone());
                Ok(fresh)
            }
            Err(error) => match cached.as_ref() {
                // A failed early refresh should not stop uploads while the old keys still work.
                Some(old) if old.expires_at.is_some_and(|expiry| expiry > now) => {
                    log::warn!(
                        "Refreshing AWS credentials failed, using the current ones until they expire: {error}"
                    );
                    Ok(old.clone())
                }
                _ => Err(error),
            },
        }
    }

    fn load_from_chain(&self) -> Result<Credentials, CredentialsError> {
        for source in &self.sources {
            if let Some(credentials) = source.load()? {
                log::debug!(
                    "Using AWS credentials from {} (access key {})",
                    source.name(),
                    credentials.access_key_id
                );
                return Ok(credentials);
            }
        }
        Err(CredentialsError::NotFound {
            tried: self.sources.iter().map(|source| source.name()).collect(),
        })
    }
}

impl std::fmt::Debug for CredentialsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.sources.iter().map(|source| source.name()).collect();
        f.debug_struct("CredentialsProvider")
            .field("sources", &names)
            .finish_non_exhaustive()
    }
}

fn needs_refresh(credentials: &Credentials, now: SystemTime) -> bool {
    credentials
        .expires_at
        .is_some_and(|expiry| expiry <= now + REFRESH_BEFORE_EXPIRY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Hands out the queued answers in order and counts calls.
    struct Scripted {
        name: &'static str,
        answers: Mutex<Vec<Result<Option<Credentials>, CredentialsError>>>,
        calls: Arc<AtomicUsize>,
    }

    impl Scripted {
        fn new(
            name: &'static str,
            answers: Vec<Result<Option<Credentials>, CredentialsError>>,
        ) -> (Box<Self>, Arc<AtomicUsize>) {
            let calls = Arc::new(AtomicUsize::new(0));
            let source = Scripted {
                name,
                answers: Mutex::new(answers),
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
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut answers = self.answers.lock().unwrap();
            if answers.is_empty() {
                Ok(None)
            } else {
                answers.remove(0)
            }
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

    #[test]
    fn the_first_source_with_credentials_wins() {
        let (first, first_calls) = Scripted::new("first", vec![Ok(None)]);
        let (second, _) = Scripted::new("second", vec![Ok(Some(keys("SECOND")))]);
        let (third, third_calls) = Scripted::new("third", vec![Ok(Some(keys("THIRD")))]);
        let provider = CredentialsProvider::new(vec![first, second, third]);
        assert_eq!(provider.credentials().unwrap().access_key_id, "SECOND");
        assert_eq!(first_calls.load(Ordering::SeqCst), 1);
        assert_eq!(third_calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_failing_source_stops_the_chain() {
        let (first, _) = Scripted::new("first", vec![Err(broken("first"))]);
        let (second, second_calls) = Scripted::new("second", vec![Ok(Some(keys("SECOND")))]);
        let provider = CredentialsProvider::new(vec![first, second]);
        assert_eq!(provider.credentials(), Err(broken("first")));
        assert_eq!(second_calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn nothing_found_lists_the_sources_tried() {
        let (first, _) = Scripted::new("first", vec![]);
        let (second, _) = Scripted::new("second", vec![]);
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
        let (source, calls) = Scripted::new("only", vec![Ok(Some(keys("A"))), Ok(Some(keys("B")))]);
        let provider = CredentialsProvider::new(vec![source]);
        for _ in 0..3 {
            assert_eq!(provider.credentials().unwrap().access_key_id, "A");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn temporary_credentials_refresh_shortly_before_expiry() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let expiry = start + Duration::from_secs(3600);
        let (source, calls) = Scripted::new(
            "only",
            vec![
                Ok(Some(keys("FIRST").expiring_at(expiry))),
                Ok(Some(
                    keys("SECOND").expiring_at(expiry + Duration::from_secs(3600)),
                )),
            ],
        );
        let provider = CredentialsProvider::new(vec![source]);
        assert_eq!(
            provider.credentials_at(start).unwrap().access_key_id,
            "FIRST"
        );
        let well_before = expiry - REFRESH_BEFORE_EXPIRY - Duration::from_secs(1);
        assert_eq!(
            provider.credentials_at(well_before).unwrap().access_key_id,
            "FIRST"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let inside_window = expiry - REFRESH_BEFORE_EXPIRY + Duration::from_secs(1);
        assert_eq!(
            provider
                .credentials_at(inside_window)
                .unwrap()
                .access_key_id,
            "SECOND"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_failed_refresh_keeps_unexpired_credentials_then_fails_after_expiry() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let expiry = start + Duration::from_secs(600);
        let (source, _) = Scripted::new(
            "only",
            vec![
                Ok(Some(keys("FIRST").expiring_at(expiry))),
                Err(broken("only")),
                Err(broken("only")),
            ],
        );
        let provider = CredentialsProvider::new(vec![source]);
        assert_eq!(
            provider.credentials_at(start).unwrap().access_key_id,
            "FIRST"
        );
        let inside_window = expiry - Duration::from_secs(60);
        assert_eq!(
            provider
                .credentials_at(inside_window)
                .unwrap()
                .access_key_id,
            "FIRST"
        );
        assert_eq!(provider.credentials_at(expiry), Err(broken("only")));
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
        ]);
        let provider = CredentialsProvider::from_env(&env);
        assert_eq!(provider.credentials().unwrap().access_key_id, "ENVKEY");
        assert!(!format!("{provider:?}").contains("ENVSECRET"));
    }

    #[test]
    fn the_provider_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CredentialsProvider>();
    }
}

//! AWS credentials: the [`Credentials`] type, the [`CredentialsSource`] trait each way of
//! finding them implements, the [`default_chain`] order, and the caching [`CredentialsProvider`].

mod environment;
mod profile;
mod provider;

pub use environment::EnvironmentSource;
pub use profile::ProfileSource;
pub use provider::CredentialsProvider;

use super::env::Env;
use std::fmt;
use std::time::SystemTime;

/// An access key pair, with a session token and expiry when temporary.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AKIA…` / `ASIA…`; not secret, safe to log.
    pub access_key_id: String,
    /// The secret key; never printed.
    pub secret_access_key: String,
    /// The session token of temporary credentials; never printed.
    pub session_token: Option<String>,
    /// When temporary credentials stop working; None for long-lived keys.
    pub expires_at: Option<SystemTime>,
}

impl Credentials {
    /// Long-lived (or token-carrying but undated) credentials.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
            expires_at: None,
        }
    }

    /// The same credentials with an expiry.
    pub fn expiring_at(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }
}

// The secret and token must never reach a log line, even at debug level.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why credentials could not be obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsError {
    /// A source is configured but failed; the chain stops there, as the AWS SDKs do,
    /// rather than silently falling back to other credentials.
    Source {
        /// The source's [`CredentialsSource::name`].
        source: &'static str,
        /// What went wrong (never includes a secret).
        message: String,
    },
    /// No source in the chain had credentials.
    NotFound {
        /// The sources tried, in order.
        tried: Vec<&'static str>,
    },
}

impl fmt::Display for CredentialsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialsError::Source { source, message } => {
                write!(f, "credentials from {source}: {message}")
            }
            CredentialsError::NotFound { tried } => {
                write!(f, "no AWS credentials found (tried {})", tried.join(", "))
            }
        }
    }
}

impl std::error::Error for CredentialsError {}

/// One place credentials may come from.
pub trait CredentialsSource: Send + Sync {
    /// A short name for logs and errors, e.g. `"environment"`.
    fn name(&self) -> &'static str;

    /// `Ok(None)` means "not configured here, try the next source"; `Err` means it is
    /// configured but broken.
    fn load(&self) -> Result<Option<Credentials>, CredentialsError>;
}

/// The sources in the AWS SDKs' order: environment → web identity → profile → container →
/// instance metadata. Sources not yet implemented slot in here without changing callers.
pub fn default_chain(env: &Env) -> Vec<Box<dyn CredentialsSource>> {
    vec![
        Box::new(EnvironmentSource::new(env.clone())),
        Box::new(ProfileSource::new(env.clone())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_secret_or_token() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("IQoJb3JpZ2luX2VjEXAMPLETOKEN".to_owned()),
        );
        let printed = format!("{credentials:?} {credentials:#?}");
        assert!(printed.contains("AKIDEXAMPLE"));
        assert!(!printed.contains("wJalrXUtnFEMI"));
        assert!(!printed.contains("IQoJb3JpZ2lu"));
        assert!(printed.contains("redacted"));
    }

    #[test]
    fn errors_name_the_source() {
        let error = CredentialsError::Source {
            source: "profile",
            message: "profile `dev` has no aws_secret_access_key".to_owned(),
        };
        assert_eq!(
            error.to_string(),
            "credentials from profile: profile `dev` has no aws_secret_access_key"
        );
        let error = CredentialsError::NotFound {
            tried: vec!["environment", "profile"],
        };
        assert_eq!(
            error.to_string(),
            "no AWS credentials found (tried environment, profile)"
        );
    }

    #[test]
    fn default_chain_starts_with_the_environment_then_the_profile() {
        let names: Vec<&str> = default_chain(&Env::from_pairs([]))
            .iter()
            .map(|source| source.name())
            .collect();
        assert_eq!(names, ["environment", "profile"]);
    }
}

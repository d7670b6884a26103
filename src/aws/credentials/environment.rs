//! Credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.

use super::{Credentials, CredentialsError, CredentialsSource};
use crate::aws::env::Env;

/// Reads the key pair from the environment snapshot.
#[derive(Debug, Clone)]
pub struct EnvironmentSource {
    env: Env,
}

impl EnvironmentSource {
    /// A source reading `env`.
    pub fn new(env: Env) -> Self {
        EnvironmentSource { env }
    }
}

impl CredentialsSource for EnvironmentSource {
    fn name(&self) -> &'static str {
        "environment"
    }

    fn load(&self) -> Result<Option<Credentials>, CredentialsError> {
        // The older AWS_ACCESS_KEY / AWS_SECRET_KEY spellings are still honoured by the SDKs.
        let access_key_id = self.env.get_first(&["AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"]);
        let secret_access_key = self
            .env
            .get_first(&["AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY"]);
        let session_token = self.env.get("AWS_SESSION_TOKEN").map(str::to_owned);
        match (access_key_id, secret_access_key) {
            (None, None) => Ok(None),
            (Some(access_key_id), Some(secret_access_key)) => Ok(Some(Credentials::new(
                access_key_id,
                secret_access_key,
                session_token,
            ))),
            (Some(_), None) => Err(self.half_set("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")),
            (None, Some(_)) => Err(self.half_set("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")),
        }
    }
}

impl EnvironmentSource {
    fn half_set(&self, present: &str, missing: &str) -> CredentialsError {
        CredentialsError::Source {
            source: self.name(),
            message: format!("{present} is set but {missing} is not"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Option<Credentials>, CredentialsError> {
        EnvironmentSource::new(Env::from_pairs(pairs.iter().copied())).load()
    }

    #[test]
    fn unset_means_try_the_next_source() {
        assert_eq!(load(&[]), Ok(None));
        assert_eq!(load(&[("AWS_ACCESS_KEY_ID", "")]), Ok(None));
    }

    #[test]
    fn reads_the_key_pair_and_session_token() {
        let credentials = load(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "SECRET"),
            ("AWS_SESSION_TOKEN", "TOKEN"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(credentials.access_key_id, "AKID");
        assert_eq!(credentials.secret_access_key, "SECRET");
        assert_eq!(credentials.session_token.as_deref(), Some("TOKEN"));
        assert_eq!(credentials.expires_at, None);
    }

    #[test]
    fn the_session_token_is_optional() {
        let credentials = load(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "S"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(credentials.session_token, None);
    }

    #[test]
    fn legacy_names_are_used_when_the_current_ones_are_unset() {
        let credentials = load(&[("AWS_ACCESS_KEY", "OLD"), ("AWS_SECRET_KEY", "OLDSECRET")])
            .unwrap()
            .unwrap();
        assert_eq!(credentials.access_key_id, "OLD");
        let credentials = load(&[
            ("AWS_ACCESS_KEY", "OLD"),
            ("AWS_ACCESS_KEY_ID", "NEW"),
            ("AWS_SECRET_ACCESS_KEY", "S"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(credentials.access_key_id, "NEW");
    }

    #[test]
    fn half_a_key_pair_is_an_error_without_the_secret_in_it() {
        let error = load(&[("AWS_SECRET_ACCESS_KEY", "TOPSECRET")]).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("environment"), "{message}");
        assert!(message.contains("AWS_ACCESS_KEY_ID is not"), "{message}");
        assert!(!message.contains("TOPSECRET"));
        let error = load(&[("AWS_ACCESS_KEY_ID", "AKID")]).unwrap_err();
        assert!(error.to_string().contains("AWS_SECRET_ACCESS_KEY is not"));
    }
}

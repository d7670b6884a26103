//! Static keys from the selected profile of the shared config and credentials files.

use super::{Credentials, CredentialsError, CredentialsSource};
use crate::aws::env::Env;
use crate::aws::profile::{Profile, ProfileSet, selected_profile_name};

/// Profile properties that need a source this build does not have yet; they take
/// precedence over static keys in the SDKs, so a profile using them must not silently
/// fall back to other credentials.
const PRECEDING_UNSUPPORTED_PROPERTIES: &[&str] = &[
    "role_arn",
    "web_identity_token_file",
    "sso_session",
    "sso_start_url",
];

/// Reads `aws_access_key_id`, `aws_secret_access_key` and `aws_session_token` from the
/// profile named by `AWS_PROFILE` (default `default`). The files are re-read on every load.
#[derive(Debug, Clone)]
pub struct ProfileSource {
    env: Env,
}

impl ProfileSource {
    /// A source reading the files `env` points at.
    pub fn new(env: Env) -> Self {
        ProfileSource { env }
    }

    fn error(&self, message: String) -> CredentialsError {
        CredentialsError::Source {
            source: self.name(),
            message,
        }
    }

    fn static_keys(
        &self,
        name: &str,
        profile: &Profile,
    ) -> Result<Option<Credentials>, CredentialsError> {
        let access_key = profile.property("aws_access_key_id");
        let secret_key = profile.property("aws_secret_access_key");
        match (access_key, secret_key) {
            (Some(access_key), Some(secret_key)) => Ok(Some(Credentials::new(
                access_key.value.clone(),
                secret_key.value.clone(),
                profile.get("aws_session_token").map(str::to_owned),
            ))),
            (Some(present), None) => Err(self.error(format!(
                "profile `{name}` sets aws_access_key_id (in {}) but not aws_secret_access_key",
                present.file.display()
            ))),
            (None, Some(present)) => Err(self.error(format!(
                "profile `{name}` sets aws_secret_access_key (in {}) but not aws_access_key_id",
                present.file.display()
            ))),
            (None, None) => Ok(None),
        }
    }
}

impl CredentialsSource for ProfileSource {
    fn name(&self) -> &'static str {
        "profile"
    }

    fn load(&self) -> Result<Option<Credentials>, CredentialsError> {
        let set = ProfileSet::load(&self.env).map_err(|error| self.error(error.to_string()))?;
        let name = selected_profile_name(&self.env);
        let Some(profile) = set.profile(name) else {
            // Asking for a profile by name and not finding it is a mistake worth reporting;
            // a missing `default` just means "no profile configured".
            if self.env.get("AWS_PROFILE").is_some() {
                return Err(self.error(format!(
                    "profile `{name}` (from AWS_PROFILE) is not in the shared config or credentials file"
                )));
            }
            return Ok(None);
        };
        let unsupported = |property: &str| {
            self.error(format!(
                "profile `{name}` uses `{property}`, which xray-relay does not support yet"
            ))
        };
        if let Some(property) = PRECEDING_UNSUPPORTED_PROPERTIES
            .iter()
            .find(|property| profile.get(property).is_some())
        {
            return Err(unsupported(property));
        }
        let credentials = self.static_keys(name, profile)?;
        if credentials.is_none() && profile.get("credential_process").is_some() {
            return Err(unsupported("credential_process"));
        }
        Ok(credentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    struct Files {
        dir: PathBuf,
    }

    impl Files {
        fn new(name: &str, config: &str, credentials: &str) -> Files {
            let dir = std::env::temp_dir().join(format!(
                "xray-relay-profile-source-{name}-{}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("config"), config).unwrap();
            std::fs::write(dir.join("credentials"), credentials).unwrap();
            Files { dir }
        }

        fn env(&self, extra: &[(&str, &str)]) -> Env {
            let config = self.dir.join("config");
            let credentials = self.dir.join("credentials");
            let mut pairs = vec![
                ("AWS_CONFIG_FILE", config.to_str().unwrap().to_owned()),
                (
                    "AWS_SHARED_CREDENTIALS_FILE",
                    credentials.to_str().unwrap().to_owned(),
                ),
            ];
            pairs.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
            Env::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
        }

        fn load(&self, extra: &[(&str, &str)]) -> Result<Option<Credentials>, CredentialsError> {
            ProfileSource::new(self.env(extra)).load()
        }
    }

    #[test]
    fn reads_static_keys_from_the_default_profile() {
        let files = Files::new(
            "default",
            "",
            "[default]\naws_access_key_id = AKID\naws_secret_access_key = SECRET\naws_session_token = TOKEN\n",
        );
        let credentials = files.load(&[]).unwrap().unwrap();
        assert_eq!(credentials.access_key_id, "AKID");
        assert_eq!(credentials.secret_access_key, "SECRET");
        assert_eq!(credentials.session_token.as_deref(), Some("TOKEN"));
    }

    #[test]
    fn aws_profile_selects_the_profile() {
        let files = Files::new(
            "select",
            "[profile dev]\naws_access_key_id = FROMCONFIG\naws_secret_access_key = CONFIGSECRET\n",
            "[default]\naws_access_key_id = DEFAULT\naws_secret_access_key = S\n",
        );
        let credentials = files.load(&[("AWS_PROFILE", "dev")]).unwrap().unwrap();
        assert_eq!(credentials.access_key_id, "FROMCONFIG");
        assert_eq!(credentials.session_token, None);
    }

    #[test]
    fn the_credentials_file_wins_over_the_config_file() {
        let files = Files::new(
            "precedence",
            "[profile dev]\naws_access_key_id = CONFIG\naws_secret_access_key = CONFIGSECRET\n",
            "[dev]\naws_access_key_id = CREDS\naws_secret_access_key = CREDSSECRET\n",
        );
        let credentials = files.load(&[("AWS_PROFILE", "dev")]).unwrap().unwrap();
        assert_eq!(credentials.access_key_id, "CREDS");
        assert_eq!(credentials.secret_access_key, "CREDSSECRET");
    }

    #[test]
    fn no_default_profile_means_try_the_next_source() {
        let files = Files::new("none", "[profile other]\nregion = x\n", "");
        assert_eq!(files.load(&[]), Ok(None));
        let files = Files::new("regiononly", "[default]\nregion = x\n", "");
        assert_eq!(files.load(&[]), Ok(None));
    }

    #[test]
    fn a_named_profile_that_does_not_exist_is_an_error() {
        let files = Files::new(
            "missing",
            "",
            "[default]\naws_access_key_id = A\naws_secret_access_key = S\n",
        );
        let error = files.load(&[("AWS_PROFILE", "nope")]).unwrap_err();
        assert!(error.to_string().contains("profile `nope`"), "{error}");
    }

    #[test]
    fn a_missing_secret_is_an_error_naming_the_file() {
        let files = Files::new("half", "", "[default]\naws_access_key_id = AKID\n");
        let error = files.load(&[]).unwrap_err().to_string();
        assert!(error.starts_with("credentials from profile:"), "{error}");
        assert!(error.contains("credentials"), "{error}");
        assert!(error.contains("aws_secret_access_key"), "{error}");
        let files = Files::new(
            "half2",
            "[default]\naws_secret_access_key = TOPSECRET\n",
            "",
        );
        let error = files.load(&[]).unwrap_err().to_string();
        assert!(error.contains("not aws_access_key_id"), "{error}");
        assert!(!error.contains("TOPSECRET"));
    }

    #[test]
    fn parse_errors_are_reported_with_file_and_line() {
        let files = Files::new("parse", "[default]\nbroken line\n", "");
        let error = files.load(&[]).unwrap_err().to_string();
        assert!(error.contains("config:2:"), "{error}");
    }

    #[test]
    fn profiles_needing_unsupported_sources_fail_loudly() {
        let files = Files::new(
            "role",
            "[default]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = base\naws_access_key_id = A\naws_secret_access_key = S\n",
            "",
        );
        let error = files.load(&[]).unwrap_err().to_string();
        assert!(error.contains("`role_arn`"), "{error}");
        let files = Files::new(
            "process",
            "[default]\ncredential_process = /bin/creds\n",
            "",
        );
        let error = files.load(&[]).unwrap_err().to_string();
        assert!(error.contains("`credential_process`"), "{error}");
    }

    #[test]
    fn static_keys_win_over_credential_process() {
        let files = Files::new(
            "static-first",
            "[default]\ncredential_process = /bin/creds\naws_access_key_id = A\naws_secret_access_key = S\n",
            "",
        );
        assert_eq!(files.load(&[]).unwrap().unwrap().access_key_id, "A");
    }
}

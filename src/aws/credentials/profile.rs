//! Credentials from the selected profile of the shared config and credentials files.
//!
//! Within a profile, in the Go SDK v2's order: `role_arn` (with `web_identity_token_file`, or
//! on top of `source_profile` or `credential_source`, or else of what the profile itself has —
//! static keys, SSO, `credential_process` — or the container agent or instance metadata) → static
//! keys (`aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`) → SSO
//! (IAM Identity Center, [`super::sso`]) → `credential_process`. A source profile may itself
//! assume a role or use SSO; a profile naming itself as `source_profile` uses its own static
//! keys. Roles needing an MFA code are refused with an error rather than silently falling back
//! to other credentials.

use super::sso::{check_session_exists, is_sso_profile, sso_credentials};
use super::web_identity::{WebIdentityConfig, assume_with_web_identity};
use super::{
    ChainSettings, ContainerSource, Credentials, CredentialsError, CredentialsSource,
    EnvironmentSource, ImdsSource, generated_session_name, run_credential_process,
};
use crate::aws::profile::{Profile, ProfileSet, selected_profile_name};
use crate::aws::sts::{AssumeRoleRequest, Proof, take_answer};

const NAME: &str = "profile";

/// Reads the profile named by `AWS_PROFILE` (default `default`). The files are re-read on
/// every load.
#[derive(Debug, Clone)]
pub struct ProfileSource {
    settings: ChainSettings,
}

impl ProfileSource {
    /// A source reading the files `settings.env` points at.
    pub fn new(settings: ChainSettings) -> Self {
        ProfileSource { settings }
    }

    fn error(&self, message: String) -> CredentialsError {
        CredentialsError::Source {
            source: NAME,
            message,
        }
    }

    /// The credentials of profile `name`; `visited` holds the profiles that led here.
    fn resolve(
        &self,
        set: &ProfileSet,
        name: &str,
        visited: &mut Vec<String>,
    ) -> Result<Option<Credentials>, String> {
        let Some(profile) = set.profile(name) else {
            let via = visited.last().map(String::as_str).unwrap_or_default();
            return Err(format!(
                "source profile `{name}` (of profile `{via}`) is not in the shared config or credentials file"
            ));
        };
        // The SDK takes a source profile's static keys before it looks for the session.
        let is_source = !visited.is_empty();
        if !(is_source && has_static_keys(profile)) {
            check_session_exists(set, profile)?;
        }
        if let Some(role_arn) = profile.get("role_arn") {
            return self
                .assume_role(set, name, profile, role_arn, visited)
                .map(Some);
        }
        if profile.get("web_identity_token_file").is_some() {
            return Err(format!(
                "profile `{name}` sets web_identity_token_file but not role_arn"
            ));
        }
        if let Some(credentials) = static_keys(name, profile)? {
            return Ok(Some(credentials));
        }
        if is_sso_profile(profile) {
            return sso_credentials(&self.settings, set, name, profile)
                .map(Some)
                .map_err(|error| format!("profile `{name}`: {error}"));
        }
        if let Some(command) = profile.get("credential_process") {
            return run_credential_process(command)
                .map(Some)
                .map_err(|error| format!("profile `{name}`: credential_process {error}"));
        }
        Ok(None)
    }

    fn assume_role(
        &self,
        set: &ProfileSet,
        name: &str,
        profile: &Profile,
        role_arn: &str,
        visited: &mut Vec<String>,
    ) -> Result<Credentials, String> {
        let session_name = profile.get("role_session_name").map(str::to_owned);
        if let Some(token_file) = profile.get("web_identity_token_file") {
            let config = WebIdentityConfig {
                token_file: self.settings.env.expand_home(token_file),
                role_arn: role_arn.to_owned(),
                session_name,
            };
            return assume_with_web_identity(&self.settings.sts, &config)
                .map_err(|error| format!("profile `{name}`: {error}"));
        }
        if profile.get("mfa_serial").is_some() {
            return Err(format!(
                "profile `{name}` sets mfa_serial: roles that need an MFA code cannot be assumed by a daemon"
            ));
        }
        let base = match (
            profile.get("source_profile"),
            profile.get("credential_source"),
        ) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "profile `{name}` sets both source_profile and credential_source"
                ));
            }
            (Some(source), None) if source == name => {
                static_keys(name, profile)?.ok_or_else(|| {
                    format!("profile `{name}` is its own source_profile but has no static keys")
                })?
            }
            (Some(source), None) => {
                if visited.iter().any(|seen| seen == source) {
                    visited.push(name.to_owned());
                    return Err(format!(
                        "source_profile loop: {} -> {source}",
                        visited.join(" -> ")
                    ));
                }
                visited.push(name.to_owned());
                self.resolve(set, source, visited)?.ok_or_else(|| {
                    format!("source profile `{source}` (of profile `{name}`) has no credentials")
                })?
            }
            (None, Some(source)) => self.credential_source(name, source)?,
            (None, None) => self.own_base(set, name, profile)?,
        };
        let duration_seconds = match profile.get("duration_seconds") {
            Some(text) => Some(text.trim().parse::<u32>().map_err(|_| {
                format!("profile `{name}`: duration_seconds {text:?} is not a number of seconds")
            })?),
            None => None,
        };
        let request = AssumeRoleRequest {
            role_arn: role_arn.to_owned(),
            session_name: session_name.unwrap_or_else(generated_session_name),
            external_id: profile.get("external_id").map(str::to_owned),
            duration_seconds,
        };
        take_answer(
            self.settings.sts.assume_role(&base, &request),
            role_arn,
            &request.session_name,
            Proof::Credentials {
                credentials: &base,
                profile: Some(name),
            },
        )
        .map_err(|error| format!("profile `{name}`: {error}"))
    }

    /// The base of a role profile that names none, as the Go SDK v2 finds it: the profile's
    /// own static keys, SSO settings or credential_process, else the container agent, else
    /// instance metadata.
    fn own_base(
        &self,
        set: &ProfileSet,
        name: &str,
        profile: &Profile,
    ) -> Result<Credentials, String> {
        if let Some(keys) = static_keys(name, profile)? {
            return Ok(keys);
        }
        if is_sso_profile(profile) {
            return sso_credentials(&self.settings, set, name, profile)
                .map_err(|error| format!("profile `{name}`: {error}"));
        }
        if let Some(command) = profile.get("credential_process") {
            return run_credential_process(command)
                .map_err(|error| format!("profile `{name}`: credential_process {error}"));
        }
        let found = match ContainerSource::new(self.settings.env.clone()).load() {
            Ok(None) => ImdsSource::new(self.settings.imds.clone()).load(),
            other => other,
        };
        match found {
            Ok(Some(credentials)) => Ok(credentials),
            Ok(None) => Err(format!(
                "profile `{name}` sets role_arn but neither source_profile nor credential_source, and found no base credentials of its own, from the container agent or from instance metadata"
            )),
            Err(error) => Err(format!("profile `{name}`: role_arn's base: {error}")),
        }
    }

    fn credential_source(&self, name: &str, source: &str) -> Result<Credentials, String> {
        let env = &self.settings.env;
        let (label, loaded) = match source {
            "Environment" => (
                "the environment",
                EnvironmentSource::new(env.clone()).load(),
            ),
            "Ec2InstanceMetadata" => (
                "instance metadata",
                ImdsSource::new(self.settings.imds.clone()).load(),
            ),
            "EcsContainer" => (
                "the container agent",
                ContainerSource::new(env.clone()).load(),
            ),
            other => {
                return Err(format!(
                    "profile `{name}`: credential_source {other:?} is not Environment, Ec2InstanceMetadata or EcsContainer"
                ));
            }
        };
        match loaded {
            Ok(Some(credentials)) => Ok(credentials),
            Ok(None) => Err(format!(
                "profile `{name}`: credential_source {source} found no credentials in {label}"
            )),
            Err(error) => Err(format!(
                "profile `{name}`: credential_source {source}: {error}"
            )),
        }
    }
}

/// Whether the profile sets both halves of a key pair.
fn has_static_keys(profile: &Profile) -> bool {
    ["aws_access_key_id", "aws_secret_access_key"]
        .into_iter()
        .all(|key| profile.get(key).is_some())
}

/// `aws_access_key_id` + `aws_secret_access_key` (+ `aws_session_token`); half a pair is an error.
fn static_keys(name: &str, profile: &Profile) -> Result<Option<Credentials>, String> {
    let access_key = profile.property("aws_access_key_id");
    let secret_key = profile.property("aws_secret_access_key");
    match (access_key, secret_key) {
        (Some(access_key), Some(secret_key)) => Ok(Some(Credentials::new(
            access_key.value.clone(),
            secret_key.value.clone(),
            profile.get("aws_session_token").map(str::to_owned),
        ))),
        (Some(present), None) => Err(format!(
            "profile `{name}` sets aws_access_key_id (in {}) but not aws_secret_access_key",
            present.file.display()
        )),
        (None, Some(present)) => Err(format!(
            "profile `{name}` sets aws_secret_access_key (in {}) but not aws_access_key_id",
            present.file.display()
        )),
        (None, None) => Ok(None),
    }
}

impl CredentialsSource for ProfileSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn load(&self) -> Result<Option<Credentials>, CredentialsError> {
        let env = &self.settings.env;
        let set = ProfileSet::load(env).map_err(|error| self.error(error.to_string()))?;
        let name = selected_profile_name(env);
        if set.profile(name).is_none() {
            // Asking for a profile by name and not finding it is a mistake worth reporting;
            // a missing `default` just means "no profile configured".
            if env.get("AWS_PROFILE").is_some() {
                return Err(self.error(format!(
                    "profile `{name}` (from AWS_PROFILE) is not in the shared config or credentials file"
                )));
            }
            return Ok(None);
        }
        self.resolve(&set, name, &mut Vec::new())
            .map_err(|message| self.error(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::env::Env;
    use crate::aws::imds::ImdsClient;
    use crate::aws::test_http::{Seen, TestServer};
    use std::path::PathBuf;
    use std::sync::Arc;

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
            // Never reach for a real metadata service from a unit test.
            let mut pairs = vec![
                ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
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
            let env = self.env(extra);
            let imds = Arc::new(ImdsClient::from_env(&env));
            ProfileSource::new(ChainSettings::new(&env, "us-east-1", imds)).load()
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
    fn mfa_profiles_fail_loudly() {
        let files = Files::new(
            "mfa",
            "[default]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = base\nmfa_serial = arn:aws:iam::1:mfa/me\n[profile base]\naws_access_key_id = A\naws_secret_access_key = S\n",
            "",
        );
        let error = files.load(&[]).unwrap_err().to_string();
        assert!(error.contains("mfa_serial"), "{error}");
    }

    /// An STS stand-in answering every AssumeRole… call with keys named after the call number
    /// and the role's last path segment.
    fn sts() -> TestServer {
        let counter = std::sync::atomic::AtomicUsize::new(0);
        TestServer::start(move |request: &Seen| {
            let call = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let role = request
                .body
                .split('&')
                .find_map(|pair| pair.strip_prefix("RoleArn="))
                .and_then(|arn| arn.rsplit("%2F").next())
                .unwrap_or("none")
                .to_owned();
            let body = format!(
                "<R><Credentials><AccessKeyId>ASIA{call}{role}</AccessKeyId><SecretAccessKey>s</SecretAccessKey>\
                 <SessionToken>t</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration></Credentials></R>"
            );
            (200, body)
        })
    }

    fn caller(seen: &Seen) -> String {
        let authorization = seen.header("authorization").unwrap_or("unsigned");
        authorization
            .split("Credential=")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("unsigned")
            .to_owned()
    }

    #[test]
    fn a_role_profile_naming_no_source_uses_its_own_keys_even_as_a_source() {
        let server = sts();
        // `base` assumes role `b` with its own keys; `default` assumes `a` with those.
        let files = Files::new(
            "own-keys",
            "[default]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = base\n\
             [profile base]\nrole_arn = arn:aws:iam::1:role/b\n",
            "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = S\n",
        );
        let url = server.url();
        let credentials = files
            .load(&[("AWS_ENDPOINT_URL_STS", &url)])
            .unwrap()
            .unwrap();
        assert_eq!(credentials.access_key_id, "ASIA1a");
        let seen = server.seen();
        assert_eq!(caller(&seen[0]), "AKIDBASE");
        assert!(seen[0].body.contains("role%2Fb"), "{}", seen[0].body);
        assert_eq!(caller(&seen[1]), "ASIA0b");
    }

    #[test]
    fn a_role_profile_naming_no_source_falls_back_to_the_container_agent() {
        let server = sts();
        let agent = TestServer::start(|_: &Seen| {
            (
                200,
                r#"{"AccessKeyId":"ASIAECS","SecretAccessKey":"s","Token":"t"}"#.to_owned(),
            )
        });
        let files = Files::new(
            "own-container",
            "[default]\nrole_arn = arn:aws:iam::1:role/r\n",
            "",
        );
        let (sts_url, agent_url) = (server.url(), format!("{}/creds", agent.url()));
        let credentials = files
            .load(&[
                ("AWS_ENDPOINT_URL_STS", &sts_url),
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &agent_url),
            ])
            .unwrap()
            .unwrap();
        assert_eq!(credentials.access_key_id, "ASIA0r");
        assert_eq!(caller(&server.seen()[0]), "ASIAECS");
    }

    #[test]
    fn role_arn_with_source_profile_assumes_the_role_with_the_source_keys() {
        let server = sts();
        let files = Files::new(
            "role-source",
            "[profile dev]\nrole_arn = arn:aws:iam::1:role/dev\nsource_profile = base\nrole_session_name = me\nexternal_id = ext\nduration_seconds = 900\n\
             [profile base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = S\n",
            "",
        );
        let url = server.url();
        let credentials = files
            .load(&[("AWS_PROFILE", "dev"), ("AWS_ENDPOINT_URL_STS", &url)])
            .unwrap()
            .unwrap();
        assert_eq!(credentials.access_key_id, "ASIA0dev");
        let seen = server.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(caller(&seen[0]), "AKIDBASE");
        assert!(
            seen[0]
                .body
                .contains("RoleSessionName=me&ExternalId=ext&DurationSeconds=900"),
            "{}",
            seen[0].body
        );
    }

    #[test]
    fn role_chains_follow_source_profiles_in_order() {
        let server = sts();
        let files = Files::new(
            "chain",
            "[default]\nrole_arn = arn:aws:iam::1:role/second\nsource_profile = middle\n\
             [profile middle]\nrole_arn = arn:aws:iam::1:role/first\nsource_profile = base\n\
             [profile base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = S\n",
            "",
        );
        let url = server.url();
        let credentials = files
            .load(&[("AWS_ENDPOINT_URL_STS", &url)])
            .unwrap()
            .unwrap();
        assert_eq!(credentials.access_key_id, "ASIA1second");
        let seen = server.seen();
        assert_eq!(caller(&seen[0]), "AKIDBASE");
        assert_eq!(caller(&seen[1]), "ASIA0first");
    }

    #[test]
    fn a_profile_that_is_its_own_source_uses_its_static_keys() {
        let server = sts();
        let files = Files::new(
            "self",
            "[default]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = default\naws_access_key_id = AKIDSELF\naws_secret_access_key = S\n",
            "",
        );
        let url = server.url();
        let credentials = files
            .load(&[("AWS_ENDPOINT_URL_STS", &url)])
            .unwrap()
            .unwrap();
        assert_eq!(credentials.access_key_id, "ASIA0r");
        assert_eq!(caller(&server.seen()[0]), "AKIDSELF");
    }

    #[test]
    fn broken_role_configurations_are_explained() {
        let cases = [
            (
                "loop",
                "[default]\nrole_arn = a\nsource_profile = b\n[profile b]\nrole_arn = b\nsource_profile = default\n",
                "source_profile loop: default -> b -> default",
            ),
            (
                "missing-source",
                "[default]\nrole_arn = a\nsource_profile = gone\n",
                "source profile `gone` (of profile `default`) is not in",
            ),
            (
                "empty-source",
                "[default]\nrole_arn = a\nsource_profile = b\n[profile b]\nregion = x\n",
                "source profile `b` (of profile `default`) has no credentials",
            ),
            (
                "no-base",
                "[default]\nrole_arn = a\n",
                "neither source_profile nor credential_source",
            ),
            (
                "both",
                "[default]\nrole_arn = a\nsource_profile = b\ncredential_source = Environment\n",
                "both source_profile and credential_source",
            ),
            (
                "bad-source",
                "[default]\nrole_arn = a\ncredential_source = Magic\n",
                "credential_source \"Magic\" is not",
            ),
            (
                "web-no-role",
                "[default]\nweb_identity_token_file = /t\n",
                "web_identity_token_file but not role_arn",
            ),
            (
                "empty-env",
                "[default]\nrole_arn = a\ncredential_source = Environment\n",
                "found no credentials in the environment",
            ),
        ];
        for (name, config, expected) in cases {
            let files = Files::new(name, config, "");
            let error = files.load(&[]).unwrap_err().to_string();
            assert!(
                error.starts_with("credentials from profile: "),
                "{name}: {error}"
            );
            assert!(error.contains(expected), "{name}: {error}");
        }
    }

    #[test]
    fn credential_source_environment_is_the_base_of_the_role() {
        let server = sts();
        let files = Files::new(
            "env-source",
            "[default]\nrole_arn = arn:aws:iam::1:role/r\ncredential_source = Environment\n",
            "",
        );
        let url = server.url();
        let credentials = files
            .load(&[
                ("AWS_ENDPOINT_URL_STS", &url),
                ("AWS_ACCESS_KEY_ID", "AKIDENV"),
                ("AWS_SECRET_ACCESS_KEY", "S"),
            ])
            .unwrap()
            .unwrap();
        assert_eq!(credentials.access_key_id, "ASIA0r");
        assert_eq!(caller(&server.seen()[0]), "AKIDENV");
    }

    #[test]
    fn credential_source_ec2_instance_metadata_is_the_base_of_the_role() {
        let server = sts();
        let imds = TestServer::start(|request: &Seen| match request.path.as_str() {
            "/latest/api/token" => (200, "tok".to_owned()),
            "/latest/meta-data/iam/security-credentials/" => (200, "ec2role".to_owned()),
            _ => (
                200,
                r#"{"AccessKeyId":"ASIAIMDS","SecretAccessKey":"s","Token":"t"}"#.to_owned(),
            ),
        });
        let files = Files::new(
            "imds-source",
            "[default]\nrole_arn = arn:aws:iam::1:role/r\ncredential_source = Ec2InstanceMetadata\n",
            "",
        );
        let (sts_url, imds_url) = (server.url(), imds.url());
        let credentials = files
            .load(&[
                ("AWS_ENDPOINT_URL_STS", &sts_url),
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds_url),
                ("AWS_EC2_METADATA_DISABLED", "false"),
            ])
            .unwrap()
            .unwrap();
        assert_eq!(credentials.access_key_id, "ASIA0r");
        assert_eq!(caller(&server.seen()[0]), "ASIAIMDS");
    }

    #[test]
    fn web_identity_in_a_profile_is_unsigned_and_reads_the_token_file() {
        let server = sts();
        let files = Files::new("web", "", "");
        let token = files.dir.join("token");
        std::fs::write(&token, "oidc-token").unwrap();
        std::fs::write(
            files.dir.join("config"),
            format!(
                "[default]\nrole_arn = arn:aws:iam::1:role/web\nweb_identity_token_file = {}\nrole_session_name = pod\n",
                token.display()
            ),
        )
        .unwrap();
        let url = server.url();
        let credentials = files
            .load(&[("AWS_ENDPOINT_URL_STS", &url)])
            .unwrap()
            .unwrap();
        assert_eq!(credentials.access_key_id, "ASIA0web");
        let seen = server.seen();
        assert_eq!(caller(&seen[0]), "unsigned");
        assert!(seen[0].body.contains("Action=AssumeRoleWithWebIdentity"));
        assert!(seen[0].body.contains("WebIdentityToken=oidc-token"));
    }

    #[test]
    fn credential_process_runs_when_there_are_no_static_keys() {
        let files = Files::new(
            "process",
            "[default]\ncredential_process = printf '{\"Version\":1,\"AccessKeyId\":\"AKIAPROC\",\"SecretAccessKey\":\"s\"}'\n",
            "",
        );
        assert_eq!(files.load(&[]).unwrap().unwrap().access_key_id, "AKIAPROC");
        let failing = Files::new(
            "process-fail",
            "[default]\ncredential_process = exit 7\n",
            "",
        );
        let error = failing.load(&[]).unwrap_err().to_string();
        assert!(
            error.contains("profile `default`: credential_process `exit 7` failed"),
            "{error}"
        );
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

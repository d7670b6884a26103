//! AWS credentials: the [`Credentials`] type, the [`CredentialsSource`] trait each way of
//! finding them implements, the [`default_chain`] order, and the refreshing
//! [`CredentialsProvider`].

mod assume_role;
mod container;
mod environment;
mod imds;
mod process;
mod profile;
mod provider;
mod sso;
mod sso_token;
mod web_identity;

pub use assume_role::{AssumeRoleSource, RELAY_SESSION_NAME};
pub use container::{ContainerSource, container_uri};
pub use environment::EnvironmentSource;
pub use imds::ImdsSource;
pub use process::{parse_process_output, run_credential_process};
pub use profile::ProfileSource;
pub use provider::{CredentialsProvider, REFRESH_BEFORE_EXPIRY, RefreshTiming, refresh_at};
pub use web_identity::WebIdentitySource;

use super::env::Env;
use super::imds::ImdsClient;
use super::sts::StsClient;
use super::timestamp::parse_rfc3339;
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;
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

/// What the sources of a chain share: the environment, the STS client for the relay's region
/// and the instance metadata client.
#[derive(Debug, Clone)]
pub struct ChainSettings {
    /// The environment snapshot every source reads.
    pub env: Env,
    /// STS in the relay's region (web identity, profile roles).
    pub sts: Arc<StsClient>,
    /// Instance metadata, shared with the region and telemetry lookups.
    pub imds: Arc<ImdsClient>,
}

impl ChainSettings {
    /// Settings for `region`, with STS configured from `env`.
    pub fn new(env: &Env, region: &str, imds: Arc<ImdsClient>) -> Self {
        ChainSettings {
            env: env.clone(),
            sts: Arc::new(StsClient::new(region, env)),
            imds,
        }
    }
}

/// The sources in the AWS SDKs' order: environment → web identity → shared profile →
/// container → instance metadata. The first that has credentials wins; one that is
/// configured but fails stops the chain.
pub fn default_chain(settings: &ChainSettings) -> Vec<Box<dyn CredentialsSource>> {
    vec![
        Box::new(EnvironmentSource::new(settings.env.clone())),
        Box::new(WebIdentitySource::from_env(
            &settings.env,
            settings.sts.clone(),
        )),
        Box::new(ProfileSource::new(settings.clone())),
        Box::new(ContainerSource::new(settings.env.clone())),
        Box::new(ImdsSource::new(settings.imds.clone())),
    ]
}

/// The JSON the container endpoint and instance metadata answer with (and, with other
/// names, nothing else): `AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`, and
/// `Code`/`Message` on failure.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CredentialsDocument {
    code: Option<String>,
    message: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    token: Option<String>,
    expiration: Option<String>,
}

/// Parses the JSON credentials document that instance metadata (IMDS) and the container
/// endpoint answer with (`AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`, and
/// `Code`/`Message` on failure); errors never quote the document (it holds the secret).
/// Public for the fuzz target `credentials_document` (tests/fuzz).
pub fn parse_credentials_document(body: &str) -> Result<Credentials, String> {
    if !is_json_object(body) {
        return Err("the answer is not a credentials document (not a JSON object)".to_owned());
    }
    let document: CredentialsDocument = serde_json::from_str(body)
        .map_err(|error| format!("the answer is not a credentials document ({error})"))?;
    if let Some(code) = document.code.as_deref().filter(|code| *code != "Success") {
        let message = document.message.unwrap_or_default();
        return Err(format!("the answer reports {code}: {message}"));
    }
    let non_empty = |value: Option<String>, name: &str| {
        value
            .filter(|value| !value.is_empty())
            .ok_or_else(|| format!("the answer has no {name}"))
    };
    let access_key_id = non_empty(document.access_key_id, "AccessKeyId")?;
    let secret_access_key = non_empty(document.secret_access_key, "SecretAccessKey")?;
    let token = document.token.filter(|token| !token.is_empty());
    let credentials = Credentials::new(access_key_id, secret_access_key, token);
    match document.expiration {
        Some(expiration) => Ok(credentials.expiring_at(
            parse_rfc3339(&expiration).map_err(|error| format!("Expiration: {error}"))?,
        )),
        None => Ok(credentials),
    }
}

/// Whether `text` is (at most) a JSON object: its first character after JSON whitespace is
/// `{`. Checked before deserializing into a derived struct, which would also accept a JSON
/// array of the fields in declaration order (`[1, "AKIA…", "secret", null, null]`), a form no
/// SDK or endpoint uses (the fuzz targets `credential_process` and `credentials_document`
/// assert it is refused).
pub(crate) fn is_json_object(text: &str) -> bool {
    text.trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
}

/// A role session name for sources that need one and were given none:
/// `xray-relay-<milliseconds since the epoch>`, as the SDKs make theirs.
pub(crate) fn generated_session_name() -> String {
    let millis = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    format!("xray-relay-{millis}")
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
    fn default_chain_is_in_the_sdks_order() {
        let env = Env::from_pairs([("AWS_EC2_METADATA_DISABLED", "true")]);
        let settings = ChainSettings::new(&env, "us-east-1", Arc::new(ImdsClient::from_env(&env)));
        let names: Vec<&str> = default_chain(&settings)
            .iter()
            .map(|source| source.name())
            .collect();
        assert_eq!(
            names,
            [
                "environment",
                "web identity",
                "profile",
                "container",
                "instance metadata"
            ]
        );
    }

    #[test]
    fn credentials_documents() {
        let full = r#"{"Code":"Success","LastUpdated":"2024-01-01T00:00:00Z","Type":"AWS-HMAC",
            "AccessKeyId":"ASIAX","SecretAccessKey":"sekrit","Token":"tok",
            "Expiration":"2024-01-01T06:00:00Z"}"#;
        let credentials = parse_credentials_document(full).unwrap();
        assert_eq!(credentials.access_key_id, "ASIAX");
        assert_eq!(credentials.secret_access_key, "sekrit");
        assert_eq!(credentials.session_token.as_deref(), Some("tok"));
        assert_eq!(
            credentials.expires_at,
            Some(parse_rfc3339("2024-01-01T06:00:00Z").unwrap())
        );
        let long_lived = r#"{"AccessKeyId":"AKIA","SecretAccessKey":"s"}"#;
        assert_eq!(
            parse_credentials_document(long_lived).unwrap().expires_at,
            None
        );

        let failed = r#"{"Code":"AssumeRoleUnauthorizedAccess","Message":"denied"}"#;
        assert_eq!(
            parse_credentials_document(failed).unwrap_err(),
            "the answer reports AssumeRoleUnauthorizedAccess: denied"
        );
        let no_secret = r#"{"AccessKeyId":"AKIA","SecretAccessKey":""}"#;
        assert!(
            parse_credentials_document(no_secret)
                .unwrap_err()
                .contains("SecretAccessKey")
        );
        let bad_date = r#"{"AccessKeyId":"A","SecretAccessKey":"topsecret","Expiration":"never"}"#;
        let error = parse_credentials_document(bad_date).unwrap_err();
        assert!(
            error.contains("Expiration") && !error.contains("topsecret"),
            "{error}"
        );
        let not_json = parse_credentials_document("topsecret").unwrap_err();
        assert!(!not_json.contains("topsecret"), "{not_json}");
        let array = parse_credentials_document(r#"[null, null, "A", "topsecret", null, null]"#);
        assert!(array.unwrap_err().contains("not a JSON object"));
    }

    #[test]
    fn generated_session_names_are_valid_for_sts() {
        let name = generated_session_name();
        assert!(
            name.starts_with("xray-relay-") && name.len() <= 64,
            "{name}"
        );
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b))
        );
    }
}

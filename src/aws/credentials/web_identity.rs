//! Web identity (EKS IRSA): an OIDC token from `AWS_WEB_IDENTITY_TOKEN_FILE`, exchanged with
//! STS `AssumeRoleWithWebIdentity` for the role in `AWS_ROLE_ARN`, as session
//! `AWS_ROLE_SESSION_NAME` (or a generated name). The file is re-read on every load: the
//! kubelet rotates the token in place.

use super::{Credentials, CredentialsError, CredentialsSource, generated_session_name};
use crate::aws::env::Env;
use crate::aws::sts::{Proof, StsClient, take_answer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const NAME: &str = "web identity";

/// Where the token and the role come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebIdentityConfig {
    pub token_file: PathBuf,
    pub role_arn: String,
    pub session_name: Option<String>,
}

/// Credentials for the role named in the environment, in exchange for the token file.
#[derive(Debug, Clone)]
pub struct WebIdentitySource {
    /// None when the environment does not configure web identity; Err when it does so badly.
    config: Result<Option<WebIdentityConfig>, String>,
    sts: Arc<StsClient>,
}

impl WebIdentitySource {
    /// Reads `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN` and `AWS_ROLE_SESSION_NAME`.
    pub fn from_env(env: &Env, sts: Arc<StsClient>) -> Self {
        let config = match (
            env.get("AWS_WEB_IDENTITY_TOKEN_FILE"),
            env.get("AWS_ROLE_ARN"),
        ) {
            (None, _) => Ok(None),
            (Some(_), None) => {
                Err("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not".to_owned())
            }
            (Some(file), Some(role)) => Ok(Some(WebIdentityConfig {
                token_file: env.expand_home(file),
                role_arn: role.to_owned(),
                session_name: env.get("AWS_ROLE_SESSION_NAME").map(str::to_owned),
            })),
        };
        WebIdentitySource { config, sts }
    }
}

impl CredentialsSource for WebIdentitySource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn load(&self) -> Result<Option<Credentials>, CredentialsError> {
        let error = |message: String| CredentialsError::Source {
            source: NAME,
            message,
        };
        match &self.config {
            Ok(None) => Ok(None),
            Err(message) => Err(error(message.clone())),
            Ok(Some(config)) => assume_with_web_identity(&self.sts, config)
                .map(Some)
                .map_err(error),
        }
    }
}

/// Reads the token and calls STS; shared with profiles that set `web_identity_token_file`.
pub(crate) fn assume_with_web_identity(
    sts: &StsClient,
    config: &WebIdentityConfig,
) -> Result<Credentials, String> {
    let token = read_token(&config.token_file)?;
    let session_name = config
        .session_name
        .clone()
        .unwrap_or_else(generated_session_name);
    take_answer(
        sts.assume_role_with_web_identity(&config.role_arn, &session_name, &token),
        &config.role_arn,
        &session_name,
        Proof::WebIdentityToken(&config.token_file),
    )
}

fn read_token(path: &Path) -> Result<String, String> {
    let token = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read the token file {}: {error}", path.display()))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::test_http::TestServer;

    const RESPONSE: &str = "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>\
        <AccessKeyId>ASIAWEB</AccessKeyId><SecretAccessKey>web-secret</SecretAccessKey>\
        <SessionToken>web-session</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration>\
        </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";

    fn token_file(name: &str, contents: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "xray-relay-web-identity-{name}-{}",
            std::process::id()
        ));
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn source(server: &TestServer, pairs: &[(&str, &str)]) -> WebIdentitySource {
        let url = server.url();
        let mut all = vec![("AWS_ENDPOINT_URL_STS", url.as_str())];
        all.extend_from_slice(pairs);
        let env = Env::from_pairs(all);
        WebIdentitySource::from_env(&env, Arc::new(StsClient::new("us-west-2", &env)))
    }

    #[test]
    fn unconfigured_means_try_the_next_source() {
        let server = TestServer::start(|_| (500, String::new()));
        assert_eq!(source(&server, &[]).load(), Ok(None));
        assert_eq!(
            source(&server, &[("AWS_ROLE_ARN", "arn:aws:iam::1:role/r")]).load(),
            Ok(None)
        );
        assert!(server.seen().is_empty());
    }

    #[test]
    fn a_token_file_without_a_role_is_an_error() {
        let server = TestServer::start(|_| (500, String::new()));
        let error = source(&server, &[("AWS_WEB_IDENTITY_TOKEN_FILE", "/x")])
            .load()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "credentials from web identity: AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not"
        );
    }

    #[test]
    fn exchanges_the_token_for_the_role() {
        let server = TestServer::start(|_| (200, RESPONSE.to_owned()));
        let file = token_file("ok", "eyJhbGciOi.token.sig\n");
        let source = source(
            &server,
            &[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", file.to_str().unwrap()),
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/irsa"),
                ("AWS_ROLE_SESSION_NAME", "pod-1"),
            ],
        );
        let credentials = source.load().unwrap().unwrap();
        assert_eq!(credentials.access_key_id, "ASIAWEB");
        assert_eq!(credentials.session_token.as_deref(), Some("web-session"));
        assert!(credentials.expires_at.is_some());
        let body = &server.seen()[0].body;
        assert!(
            body.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Firsa"),
            "{body}"
        );
        assert!(body.contains("RoleSessionName=pod-1"), "{body}");
        assert!(
            body.contains("WebIdentityToken=eyJhbGciOi.token.sig"),
            "{body}"
        );
    }

    #[test]
    fn a_missing_or_empty_token_file_is_named_in_the_error() {
        let server = TestServer::start(|_| (200, RESPONSE.to_owned()));
        let role = ("AWS_ROLE_ARN", "arn:aws:iam::1:role/irsa");
        let missing = source(
            &server,
            &[
                (
                    "AWS_WEB_IDENTITY_TOKEN_FILE",
                    "/nonexistent/xray-relay/token",
                ),
                role,
            ],
        );
        let error = missing.load().unwrap_err().to_string();
        assert!(
            error.contains("cannot read the token file /nonexistent/xray-relay/token"),
            "{error}"
        );
        let empty = token_file("empty", "\n");
        let error = source(
            &server,
            &[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", empty.to_str().unwrap()),
                role,
            ],
        )
        .load()
        .unwrap_err()
        .to_string();
        assert!(error.contains("is empty"), "{error}");
        assert!(server.seen().is_empty());
    }

    #[test]
    fn a_generated_session_name_is_used_when_none_is_given() {
        let server = TestServer::start(|_| (200, RESPONSE.to_owned()));
        let file = token_file("generated", "tok");
        source(
            &server,
            &[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", file.to_str().unwrap()),
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/irsa"),
            ],
        )
        .load()
        .unwrap();
        assert!(
            server.seen()[0]
                .body
                .contains("RoleSessionName=xray-relay-")
        );
    }
}

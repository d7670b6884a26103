//! `-r/--role-arn`: STS `AssumeRole` on top of whatever the default chain found.

use super::{Credentials, CredentialsError, CredentialsProvider, CredentialsSource};
use crate::aws::sts::{AssumeRoleRequest, Proof, StsClient, take_answer};
use std::sync::Arc;

/// The role session name for `-r`: the original daemon's (3.6.0 and later name the session
/// `xray-daemon`), so trust policies that condition on `sts:RoleSessionName` and CloudTrail
/// queries on the assumed-role ARN keep working after the swap. The relay's User-Agent still
/// tells the two apart in CloudTrail.
pub const RELAY_SESSION_NAME: &str = "xray-daemon";

const NAME: &str = "assume role";

/// Assumes a role with the credentials of another provider (which refreshes on its own).
#[derive(Debug)]
pub struct AssumeRoleSource {
    base: Arc<CredentialsProvider>,
    sts: Arc<StsClient>,
    request: AssumeRoleRequest,
}

impl AssumeRoleSource {
    /// Assumes `role_arn` as session [`RELAY_SESSION_NAME`] with `base`'s credentials.
    pub fn new(base: Arc<CredentialsProvider>, sts: Arc<StsClient>, role_arn: &str) -> Self {
        AssumeRoleSource {
            base,
            sts,
            request: AssumeRoleRequest {
                role_arn: role_arn.to_owned(),
                session_name: RELAY_SESSION_NAME.to_owned(),
                external_id: None,
                duration_seconds: None,
            },
        }
    }
}

impl CredentialsSource for AssumeRoleSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn load(&self) -> Result<Option<Credentials>, CredentialsError> {
        let error = |message: String| CredentialsError::Source {
            source: NAME,
            message,
        };
        let base = self.base.credentials().map_err(|base_error| {
            error(format!(
                "no credentials to assume {} with: {base_error}",
                self.request.role_arn
            ))
        })?;
        take_answer(
            self.sts.assume_role(&base, &self.request),
            &self.request.role_arn,
            &self.request.session_name,
            Proof::Credentials {
                credentials: &base,
                profile: None,
            },
        )
        .map(Some)
        .map_err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::credentials::EnvironmentSource;
    use crate::aws::env::Env;
    use crate::aws::test_http::TestServer;

    const RESPONSE: &str = "<AssumeRoleResponse><AssumeRoleResult><Credentials>\
        <AccessKeyId>ASIAROLE</AccessKeyId><SecretAccessKey>role-secret</SecretAccessKey>\
        <SessionToken>role-session</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration>\
        </Credentials></AssumeRoleResult></AssumeRoleResponse>";

    fn source(server: &TestServer, base_pairs: &[(&str, &str)]) -> AssumeRoleSource {
        let url = server.url();
        let env = Env::from_pairs([("AWS_ENDPOINT_URL_STS", url.as_str())]);
        let base = Arc::new(CredentialsProvider::new(vec![Box::new(
            EnvironmentSource::new(Env::from_pairs(base_pairs.iter().copied())),
        )]));
        AssumeRoleSource::new(
            base,
            Arc::new(StsClient::new("eu-west-1", &env)),
            "arn:aws:iam::1:role/up",
        )
    }

    #[test]
    fn assumes_the_role_with_the_base_credentials() {
        let server = TestServer::start(|_| (200, RESPONSE.to_owned()));
        let source = source(
            &server,
            &[
                ("AWS_ACCESS_KEY_ID", "AKIDBASE"),
                ("AWS_SECRET_ACCESS_KEY", "base-secret"),
            ],
        );
        let credentials = source.load().unwrap().unwrap();
        assert_eq!(credentials.access_key_id, "ASIAROLE");
        assert_eq!(credentials.session_token.as_deref(), Some("role-session"));
        let seen = server.seen();
        assert!(
            seen[0].body.ends_with("&RoleSessionName=xray-daemon"),
            "{}",
            seen[0].body
        );
        let authorization = seen[0].header("authorization").unwrap();
        assert!(
            authorization.contains("Credential=AKIDBASE/"),
            "{authorization}"
        );
        assert!(authorization.contains("/eu-west-1/sts/"), "{authorization}");
    }

    #[test]
    fn missing_base_credentials_name_the_role() {
        let server = TestServer::start(|_| (200, RESPONSE.to_owned()));
        let error = source(&server, &[]).load().unwrap_err().to_string();
        assert!(
            error.starts_with("credentials from assume role: no credentials to assume arn:aws:iam::1:role/up with: no AWS credentials found"),
            "{error}"
        );
        assert!(server.seen().is_empty());
    }
}

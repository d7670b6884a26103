//! The EC2 instance profile's credentials, from instance metadata: the role name from
//! `/latest/meta-data/iam/security-credentials/`, then that role's credentials.

use super::{Credentials, CredentialsError, CredentialsSource, parse_credentials_document};
use crate::aws::imds::{ImdsClient, ImdsError};
use std::sync::Arc;

const NAME: &str = "instance metadata";
const ROLES_PATH: &str = "/latest/meta-data/iam/security-credentials/";

/// Instance-profile credentials through the shared [`ImdsClient`].
#[derive(Debug, Clone)]
pub struct ImdsSource {
    imds: Arc<ImdsClient>,
}

impl ImdsSource {
    /// A source asking `imds`.
    pub fn new(imds: Arc<ImdsClient>) -> Self {
        ImdsSource { imds }
    }

    fn error(&self, message: String) -> CredentialsError {
        CredentialsError::Source {
            source: NAME,
            message,
        }
    }
}

impl CredentialsSource for ImdsSource {
    fn name(&self) -> &'static str {
        NAME
    }

    /// `Ok(None)` only when metadata is disabled; otherwise the last source says why it
    /// found nothing (unreachable, no role attached, …).
    fn load(&self) -> Result<Option<Credentials>, CredentialsError> {
        let roles = match self.imds.get(ROLES_PATH) {
            Ok(roles) => roles,
            Err(ImdsError::Disabled) => return Ok(None),
            Err(ImdsError::Status { status: 404, .. }) => {
                return Err(self.error("no IAM role is attached to this instance".to_owned()));
            }
            Err(error) => return Err(self.error(error.to_string())),
        };
        let Some(role) = roles.lines().map(str::trim).find(|line| !line.is_empty()) else {
            return Err(self.error("no IAM role is attached to this instance".to_owned()));
        };
        let document = self
            .imds
            .get(&format!("{ROLES_PATH}{role}"))
            .map_err(|error| self.error(error.to_string()))?;
        let credentials = parse_credentials_document(&document)
            .map_err(|message| self.error(format!("role {role}: {message}")))?;
        log::debug!("Fetched the credentials of instance role {role}");
        Ok(Some(credentials))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::env::Env;
    use crate::aws::test_http::{Seen, TestServer};

    fn source(server: &TestServer) -> ImdsSource {
        let url = server.url();
        let env = Env::from_pairs([("AWS_EC2_METADATA_SERVICE_ENDPOINT", url.as_str())]);
        ImdsSource::new(Arc::new(ImdsClient::from_env(&env)))
    }

    #[test]
    fn token_then_role_then_credentials() {
        let server = TestServer::start(|request: &Seen| {
            match (request.method.as_str(), request.path.as_str()) {
                ("PUT", "/latest/api/token") => (200, "tok".to_owned()),
                _ if request.header("x-aws-ec2-metadata-token") != Some("tok") => (401, String::new()),
                ("GET", ROLES_PATH) => (200, "relay-instance-role\n".to_owned()),
                ("GET", "/latest/meta-data/iam/security-credentials/relay-instance-role") => (
                    200,
                    r#"{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAEC2","SecretAccessKey":"ec2-secret","Token":"ec2-token","Expiration":"2030-01-01T00:00:00Z"}"#.to_owned(),
                ),
                _ => (404, String::new()),
            }
        });
        let credentials = source(&server).load().unwrap().unwrap();
        assert_eq!(credentials.access_key_id, "ASIAEC2");
        assert_eq!(credentials.session_token.as_deref(), Some("ec2-token"));
        let paths: Vec<String> = server.seen().into_iter().map(|r| r.path).collect();
        assert_eq!(
            paths,
            [
                "/latest/api/token",
                ROLES_PATH,
                "/latest/meta-data/iam/security-credentials/relay-instance-role"
            ]
        );
    }

    #[test]
    fn no_role_is_an_error_saying_so() {
        let server = TestServer::start(|request: &Seen| match request.method.as_str() {
            "PUT" => (200, "tok".to_owned()),
            _ => (404, String::new()),
        });
        assert_eq!(
            source(&server).load().unwrap_err().to_string(),
            "credentials from instance metadata: no IAM role is attached to this instance"
        );
    }

    #[test]
    fn disabled_metadata_means_no_credentials_here() {
        let env = Env::from_pairs([("AWS_EC2_METADATA_DISABLED", "true")]);
        let source = ImdsSource::new(Arc::new(ImdsClient::from_env(&env)));
        assert_eq!(source.load(), Ok(None));
    }
}

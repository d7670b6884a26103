//! Container credentials (ECS task roles, EKS Pod Identity, Greengrass and other local agents).
//!
//! `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` is a path on the ECS agent, `http://169.254.170.2`;
//! else `AWS_CONTAINER_CREDENTIALS_FULL_URI` is a whole URL, which must be `https` or point at
//! this host (127.0.0.0/8, `::1`, `localhost`) or at the ECS or EKS Pod Identity agents
//! (`169.254.170.2`, `169.254.170.23`, `fd00:ec2::23`), so credentials are never sent to an
//! arbitrary host in clear text. The `Authorization` header is the contents of
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (re-read on every load: agents rotate it), else
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN`.

use super::{Credentials, CredentialsError, CredentialsSource, parse_credentials_document};
use crate::aws::env::Env;
use crate::aws::proxy::EnvProxies;
use crate::aws::small_http::SmallHttp;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

const NAME: &str = "container";
const ECS_AGENT: &str = "http://169.254.170.2";
const TIMEOUT: Duration = Duration::from_secs(2);

/// Credentials from the container agent the environment points at.
#[derive(Debug, Clone)]
pub struct ContainerSource {
    env: Env,
    http: SmallHttp,
}

impl ContainerSource {
    /// A source reading its settings from `env`.
    pub fn new(env: Env) -> Self {
        ContainerSource {
            // Proxied like any HTTP client's call: the ECS agent's 169.254.170.2 goes through
            // HTTP_PROXY unless NO_PROXY names it, as for the original's Go SDK.
            http: SmallHttp::new(
                TIMEOUT,
                2,
                EnvProxies::from_env(&env),
                "xray-relay-container-credentials",
            ),
            env,
        }
    }

    fn error(&self, message: String) -> CredentialsError {
        CredentialsError::Source {
            source: NAME,
            message,
        }
    }
}

impl CredentialsSource for ContainerSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn load(&self) -> Result<Option<Credentials>, CredentialsError> {
        let Some(uri) = container_uri(&self.env).map_err(|message| self.error(message))? else {
            return Ok(None);
        };
        let authorization = authorization(&self.env).map_err(|message| self.error(message))?;
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|token| ("Authorization", token))
            .into_iter()
            .collect();
        let reply = self
            .http
            .send("GET", &uri, &headers, None)
            .map_err(|error| self.error(error.0))?;
        if !reply.is_success() {
            let detail = parse_credentials_document(&reply.body)
                .err()
                .filter(|detail| detail.starts_with("the answer reports"))
                .map(|detail| format!(": {detail}"))
                .unwrap_or_default();
            return Err(self.error(format!("{uri} answered HTTP {}{detail}", reply.status)));
        }
        let credentials = parse_credentials_document(&reply.body)
            .map_err(|message| self.error(format!("{uri}: {message}")))?;
        log::debug!("Fetched container credentials from {uri}");
        Ok(Some(credentials))
    }
}

/// The URL to fetch credentials from: None when neither variable is set; Err when
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI` is not allowed.
pub fn container_uri(env: &Env) -> Result<Option<String>, String> {
    if let Some(relative) = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        let separator = if relative.starts_with('/') { "" } else { "/" };
        return Ok(Some(format!("{ECS_AGENT}{separator}{relative}")));
    }
    let Some(full) = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") else {
        return Ok(None);
    };
    let refuse = |why: &str| Err(format!("AWS_CONTAINER_CREDENTIALS_FULL_URI {full:?} {why}"));
    let Some((scheme, rest)) = full.split_once("://") else {
        return refuse("is not a URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return refuse("must not carry user info");
    }
    let host = host_of(authority);
    if host.is_empty() {
        return refuse("has no host");
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(Some(full.to_owned())),
        "http" if is_allowed_http_host(host) => Ok(Some(full.to_owned())),
        "http" => refuse(
            "must use https, or http to a loopback address or the ECS / EKS Pod Identity agent",
        ),
        _ => refuse("must be an http or https URL"),
    }
}

/// `[::1]:80` → `::1`; `host:80` → `host`.
fn host_of(authority: &str) -> &str {
    if let Some(bracketed) = authority.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or_default();
    }
    authority.split(':').next().unwrap_or_default()
}

fn is_allowed_http_host(host: &str) -> bool {
    const EKS_POD_IDENTITY_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            ip.is_loopback()
                || ip.octets() == [169, 254, 170, 2]
                || ip.octets() == [169, 254, 170, 23]
        }
        Ok(IpAddr::V6(ip)) => ip.is_loopback() || ip == EKS_POD_IDENTITY_V6,
        Err(_) => false,
    }
}

/// The `Authorization` header value, if one is configured. The token file wins.
fn authorization(env: &Env) -> Result<Option<String>, String> {
    let token = if let Some(path) = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        let text = std::fs::read_to_string(path).map_err(|error| {
            format!("cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {path}: {error}")
        })?;
        let token = text.trim().to_owned();
        if token.contains(['\r', '\n']) {
            return Err(format!(
                "the token in AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {path} spans several lines"
            ));
        }
        token
    } else if let Some(token) = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN") {
        if token.contains(['\r', '\n']) {
            return Err("AWS_CONTAINER_AUTHORIZATION_TOKEN contains a line break".to_owned());
        }
        token.to_owned()
    } else {
        return Ok(None);
    };
    Ok(Some(token).filter(|token| !token.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::test_http::{Seen, TestServer};

    fn uri(pairs: &[(&str, &str)]) -> Result<Option<String>, String> {
        container_uri(&Env::from_pairs(pairs.iter().copied()))
    }

    fn full(url: &str) -> Result<Option<String>, String> {
        uri(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", url)])
    }

    #[test]
    fn the_relative_uri_is_on_the_ecs_agent_and_wins() {
        assert_eq!(uri(&[]), Ok(None));
        assert_eq!(
            uri(&[
                (
                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                    "/v2/credentials/abc"
                ),
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/x"),
            ]),
            Ok(Some("http://169.254.170.2/v2/credentials/abc".to_owned()))
        );
    }

    #[test]
    fn full_uris_to_local_or_agent_hosts_are_allowed() {
        for url in [
            "http://127.0.0.1:51679/creds",
            "http://127.1.2.3/creds",
            "http://localhost:8080/creds?x=1",
            "http://LOCALHOST/creds",
            "http://[::1]:8080/creds",
            "http://169.254.170.2/v2/credentials",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/v1/credentials",
            "https://creds.example.com/role",
            "HTTPS://creds.example.com",
        ] {
            assert_eq!(full(url), Ok(Some(url.to_owned())), "{url}");
        }
    }

    #[test]
    fn full_uris_to_other_hosts_in_clear_text_are_refused() {
        for url in [
            "http://creds.example.com/role",
            "http://10.0.0.1/creds",
            "http://169.254.169.254/latest",
            "http://[fd00:ec2::254]/x",
            "http://127.0.0.1.example.com/x",
            "http://user@127.0.0.1/x",
            "ftp://127.0.0.1/x",
            "127.0.0.1/creds",
            "http:///creds",
        ] {
            let error = full(url).unwrap_err();
            assert!(
                error.starts_with("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
                "{url}: {error}"
            );
        }
    }

    fn temp_file(name: &str, contents: &str) -> String {
        let path = std::env::temp_dir().join(format!(
            "xray-relay-container-{name}-{}",
            std::process::id()
        ));
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }

    #[test]
    fn the_token_file_wins_over_the_token_variable() {
        let file = temp_file("token", "from-file\n");
        let env = Env::from_pairs([
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", file.as_str()),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "from-env"),
        ]);
        assert_eq!(authorization(&env), Ok(Some("from-file".to_owned())));
        let env = Env::from_pairs([("AWS_CONTAINER_AUTHORIZATION_TOKEN", "from-env")]);
        assert_eq!(authorization(&env), Ok(Some("from-env".to_owned())));
        let split = temp_file("split", "a\nb");
        let env = Env::from_pairs([("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", split.as_str())]);
        assert!(authorization(&env).unwrap_err().contains("several lines"));
        let env = Env::from_pairs([("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/nonexistent/t")]);
        assert!(authorization(&env).unwrap_err().contains("/nonexistent/t"));
    }

    const DOCUMENT: &str = r#"{"AccessKeyId":"ASIACONTAINER","SecretAccessKey":"container-secret","Token":"container-token","Expiration":"2030-01-01T00:00:00Z","RoleArn":"arn:aws:iam::1:role/task"}"#;

    /// A container agent that wants `Authorization: good-token`.
    fn agent() -> TestServer {
        TestServer::start(|request: &Seen| match request.header("authorization") {
            Some("good-token") => (200, DOCUMENT.to_owned()),
            _ => (
                401,
                r#"{"Code":"AccessDeniedException","Message":"bad token"}"#.to_owned(),
            ),
        })
    }

    #[test]
    fn fetches_credentials_with_the_authorization_header() {
        let server = agent();
        let url = format!("{}/v1/credentials", server.url());
        let env = Env::from_pairs([
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", url.as_str()),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "good-token"),
        ]);
        let credentials = ContainerSource::new(env).load().unwrap().unwrap();
        assert_eq!(credentials.access_key_id, "ASIACONTAINER");
        assert_eq!(
            credentials.session_token.as_deref(),
            Some("container-token")
        );
        assert!(credentials.expires_at.is_some());
        assert_eq!(server.seen()[0].path, "/v1/credentials");
    }

    #[test]
    fn a_refusal_names_the_uri_and_the_agents_reason_but_not_the_token() {
        let server = agent();
        let url = format!("{}/v1/credentials", server.url());
        let env = Env::from_pairs([
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", url.as_str()),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong-token"),
        ]);
        let error = ContainerSource::new(env).load().unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "credentials from container: {url} answered HTTP 401: the answer reports AccessDeniedException: bad token"
            )
        );
        assert!(!error.contains("wrong-token"));
    }

    #[test]
    fn unset_means_try_the_next_source_and_a_bad_uri_stops_the_chain() {
        assert_eq!(ContainerSource::new(Env::from_pairs([])).load(), Ok(None));
        let env = Env::from_pairs([("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.1.2.3/x")]);
        let error = ContainerSource::new(env).load().unwrap_err().to_string();
        assert!(
            error.starts_with("credentials from container: AWS_CONTAINER_CREDENTIALS_FULL_URI"),
            "{error}"
        );
    }
}

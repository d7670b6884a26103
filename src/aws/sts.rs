//! The two STS calls the credential sources need, over the Query API: `AssumeRole` (signed
//! with the caller's credentials) and `AssumeRoleWithWebIdentity` (unsigned; the token is the
//! proof). Requests are form-encoded POSTs; answers are small XML documents from which a few
//! elements are taken.
//!
//! The endpoint is regional, `https://sts.{region}.{partition suffix}`, unless
//! `AWS_ENDPOINT_URL_STS` or else `AWS_ENDPOINT_URL` names another (ignored when
//! `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), as in current AWS SDKs. Requests go through
//! `HTTPS_PROXY` unless `NO_PROXY` names the host, as the Go SDK's default HTTP client does.

use super::client::user_agent;
use super::credentials::Credentials;
use super::endpoint::{Partition, endpoint_from_env};
use super::env::Env;
use super::proxy::EnvProxies;
use super::signing::{RequestToSign, Signer};
use super::small_http::SmallHttp;
use super::timestamp::parse_rfc3339;
use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The signing name of STS.
pub const STS_SERVICE: &str = "sts";
/// The Query API version.
const API_VERSION: &str = "2011-06-15";
/// The whole-request timeout of one attempt.
const STS_TIMEOUT: Duration = Duration::from_secs(5);

/// The STS endpoint for `region`; see the module documentation.
pub fn sts_endpoint(region: &str, env: &Env) -> String {
    if let Some(endpoint) = endpoint_from_env(env, "STS") {
        return endpoint.trim().trim_end_matches('/').to_owned();
    }
    let suffix = Partition::of_region(region).dns_suffix();
    format!("https://sts.{region}.{suffix}")
}

/// An STS call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsError {
    /// `AssumeRole` or `AssumeRoleWithWebIdentity`.
    pub action: &'static str,
    /// The endpoint called.
    pub endpoint: String,
    /// What went wrong; STS's error code and message when it sent them.
    pub reason: String,
}

impl fmt::Display for StsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "STS {} at {}: {}",
            self.action, self.endpoint, self.reason
        )
    }
}

impl std::error::Error for StsError {}

/// The parameters of an `AssumeRole` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRoleRequest {
    /// The role to assume.
    pub role_arn: String,
    /// `RoleSessionName`, shown in CloudTrail and the assumed-role ARN.
    pub session_name: String,
    /// `ExternalId`, when the role's trust policy asks for one.
    pub external_id: Option<String>,
    /// `DurationSeconds`; STS's default (1 h) when None.
    pub duration_seconds: Option<u32>,
}

/// Calls STS in one region (or at a configured endpoint).
#[derive(Debug, Clone)]
pub struct StsClient {
    endpoint: String,
    signer: Signer,
    http: SmallHttp,
}

impl StsClient {
    /// A client for STS in `region`, configured from `env`.
    pub fn new(region: &str, env: &Env) -> Self {
        StsClient {
            endpoint: sts_endpoint(region, env),
            signer: Signer::new(region, STS_SERVICE),
            // The environment's proxies, as for the original's SDK STS client; the -p proxy is
            // for X-Ray only there too.
            http: SmallHttp::new(STS_TIMEOUT, 2, EnvProxies::from_env(env), &user_agent(env)),
        }
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The HTTP client (the environment's proxies, 5 s per attempt, one retry), for the other
    /// small AWS calls of the credential sources that should behave alike (SSO).
    pub fn http(&self) -> &SmallHttp {
        &self.http
    }

    /// `AssumeRole`, signed with `caller`.
    pub fn assume_role(
        &self,
        caller: &Credentials,
        request: &AssumeRoleRequest,
    ) -> Result<Credentials, StsError> {
        let duration = request.duration_seconds.map(|seconds| seconds.to_string());
        let mut params = vec![
            ("Action", "AssumeRole"),
            ("Version", API_VERSION),
            ("RoleArn", request.role_arn.as_str()),
            ("RoleSessionName", request.session_name.as_str()),
        ];
        if let Some(external_id) = &request.external_id {
            params.push(("ExternalId", external_id));
        }
        if let Some(duration) = &duration {
            params.push(("DurationSeconds", duration));
        }
        self.call("AssumeRole", &params, Some(caller))
    }

    /// `AssumeRoleWithWebIdentity`, unsigned: `token` (an OIDC token) is the proof.
    pub fn assume_role_with_web_identity(
        &self,
        role_arn: &str,
        session_name: &str,
        token: &str,
    ) -> Result<Credentials, StsError> {
        let params = [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", API_VERSION),
            ("RoleArn", role_arn),
            ("RoleSessionName", session_name),
            ("WebIdentityToken", token),
        ];
        self.call("AssumeRoleWithWebIdentity", &params, None)
    }

    fn call(
        &self,
        action: &'static str,
        params: &[(&str, &str)],
        signed_by: Option<&Credentials>,
    ) -> Result<Credentials, StsError> {
        let fail = |reason: String| StsError {
            action,
            endpoint: self.endpoint.clone(),
            reason,
        };
        let body = form_encode(params);
        let url = format!("{}/", self.endpoint);
        let content_type = (
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        );
        let mut headers: Vec<(&str, String)> = vec![(content_type.0, content_type.1.to_owned())];
        if let Some(caller) = signed_by {
            let request = RequestToSign {
                method: "POST",
                url: &url,
                headers: &[content_type],
                body: body.as_bytes(),
            };
            let signature = self
                .signer
                .sign(&request, caller, SystemTime::now())
                .map_err(|error| fail(error.to_string()))?;
            headers.extend(signature);
        }
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let reply = self
            .http
            .send("POST", &url, &headers, Some(body.as_bytes()))
            .map_err(|error| fail(error.0))?;
        if !reply.is_success() {
            return Err(fail(match parse_error(&reply.body) {
                Some((code, message)) => format!("HTTP {}: {code}: {message}", reply.status),
                None => format!("HTTP {} without an STS error document", reply.status),
            }));
        }
        parse_credentials(&reply.body).map_err(fail)
    }
}

/// What entitled the caller to a role, as [`take_answer`] logs it.
#[derive(Debug, Clone, Copy)]
pub enum Proof<'a> {
    /// `AssumeRole` signed with these credentials, found through `profile` if a profile's
    /// `role_arn` asked for the role.
    Credentials {
        /// The credentials that signed the call.
        credentials: &'a Credentials,
        /// The profile whose `role_arn` this is, if any.
        profile: Option<&'a str>,
    },
    /// `AssumeRoleWithWebIdentity` with the token read from this file.
    WebIdentityToken(&'a Path),
}

impl fmt::Display for Proof<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proof::Credentials {
                credentials,
                profile,
            } => {
                write!(
                    f,
                    "the credentials of access key {}",
                    credentials.access_key_id
                )?;
                match profile {
                    Some(profile) => write!(f, " (profile `{profile}`)"),
                    None => Ok(()),
                }
            }
            Proof::WebIdentityToken(file) => {
                write!(f, "the web identity token in {}", file.display())
            }
        }
    }
}

/// What every credential source does with an STS answer: the error as text, for the source to
/// wrap in its own error (the text names the action and endpoint), and on success one debug
/// line naming the role, the session and what proved the right to it.
pub fn take_answer(
    answer: Result<Credentials, StsError>,
    role_arn: &str,
    session_name: &str,
    proof: Proof<'_>,
) -> Result<Credentials, String> {
    let credentials = answer.map_err(|error| error.to_string())?;
    log::debug!("Assumed {role_arn} as session {session_name} with {proof}");
    Ok(credentials)
}

/// `application/x-www-form-urlencoded`, with every byte but RFC 3986's unreserved ones escaped.
pub fn form_encode(params: &[(&str, &str)]) -> String {
    let mut encoded = String::new();
    for (index, (name, value)) in params.iter().enumerate() {
        if index > 0 {
            encoded.push('&');
        }
        percent_encode_into(&mut encoded, name);
        encoded.push('=');
        percent_encode_into(&mut encoded, value);
    }
    encoded
}

fn percent_encode_into(out: &mut String, text: &str) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// The temporary credentials in an `AssumeRole…Response`: `Credentials/{AccessKeyId,
/// SecretAccessKey, SessionToken, Expiration}`.
pub fn parse_credentials(xml: &str) -> Result<Credentials, String> {
    let scope = element_raw(xml, "Credentials").ok_or("the answer has no <Credentials> element")?;
    let field = |name: &str| -> Result<String, String> {
        let raw = element_raw(scope, name)
            .ok_or_else(|| format!("the answer's <Credentials> has no <{name}>"))?;
        let text = decode_text(raw).map_err(|error| format!("<{name}>: {error}"))?;
        let text = text.trim();
        if text.is_empty() {
            return Err(format!("the answer's <{name}> is empty"));
        }
        Ok(text.to_owned())
    };
    let expiration = field("Expiration")?;
    let expires_at =
        parse_rfc3339(&expiration).map_err(|error| format!("<Expiration>: {error}"))?;
    Ok(Credentials::new(
        field("AccessKeyId")?,
        field("SecretAccessKey")?,
        Some(field("SessionToken")?),
    )
    .expiring_at(expires_at))
}

/// `ErrorResponse/Error/{Code, Message}` of a failed call, when present.
pub fn parse_error(xml: &str) -> Option<(String, String)> {
    let scope = element_raw(xml, "Error")?;
    let text = |name: &str| {
        element_raw(scope, name)
            .and_then(|raw| decode_text(raw).ok())
            .map(|text| text.trim().to_owned())
    };
    let code = text("Code")?;
    Some((code, text("Message").unwrap_or_default()))
}

/// The raw content between the first `<name …>` and the following `</name>`.
fn element_raw<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let mut from = 0;
    loop {
        let start = from + xml[from..].find('<')?;
        let after_name = start + 1 + name.len();
        let is_open_tag = xml[start + 1..].starts_with(name)
            && matches!(
                xml.as_bytes().get(after_name),
                Some(b'>' | b'/' | b' ' | b'\t' | b'\r' | b'\n')
            );
        if !is_open_tag {
            from = start + 1;
            continue;
        }
        let content_start = after_name + xml[after_name..].find('>')? + 1;
        if xml[..content_start - 1].ends_with('/') {
            return Some(""); // <name/>
        }
        let close = format!("</{name}>");
        let content_end = content_start + xml[content_start..].find(&close)?;
        return Some(&xml[content_start..content_end]);
    }
}

/// Text content with XML's five named entities and numeric references decoded; markup in it
/// is an error (the elements read here hold text only).
fn decode_text(raw: &str) -> Result<String, String> {
    if raw.contains('<') {
        return Err("expected text, found markup".to_owned());
    }
    let mut text = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        text.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find(';').ok_or("an unterminated entity reference")?;
        let entity = &after[..end];
        let decoded = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(decimal) = entity.strip_prefix('#') {
                    decimal.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| format!("an unknown entity reference &{entity};"))?
            }
        };
        text.push(decoded);
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::test_http::TestServer;

    #[test]
    fn an_answer_is_the_credentials_or_the_error_as_text() {
        let keys = Credentials::new("ASIAROLE", "secret", Some("token".to_owned()));
        let caller = Credentials::new("AKIDCALLER", "caller-secret", None);
        let proof = Proof::Credentials {
            credentials: &caller,
            profile: Some("xray"),
        };
        assert_eq!(
            take_answer(Ok(keys.clone()), "arn:aws:iam::1:role/r", "s", proof),
            Ok(keys)
        );
        let refused = StsError {
            action: "AssumeRoleWithWebIdentity",
            endpoint: "https://sts.example".to_owned(),
            reason: "HTTP 403: AccessDenied: no".to_owned(),
        };
        let token = Proof::WebIdentityToken(Path::new("/var/run/token"));
        assert_eq!(
            take_answer(Err(refused), "arn:aws:iam::1:role/r", "s", token),
            Err(
                "STS AssumeRoleWithWebIdentity at https://sts.example: HTTP 403: AccessDenied: no"
                    .to_owned()
            )
        );
        assert_eq!(
            proof.to_string(),
            "the credentials of access key AKIDCALLER (profile `xray`)"
        );
        assert_eq!(
            token.to_string(),
            "the web identity token in /var/run/token"
        );
    }

    const ASSUME_ROLE_RESPONSE: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>Alice</SourceIdentity>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/demo/TestAR</Arn>
      <AssumedRoleId>ARO123EXAMPLE123:TestAR</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <SessionToken>
       AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW
       LWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGd
      </SessionToken>
      <Expiration>2019-11-09T13:34:41Z</Expiration>
    </Credentials>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata>
    <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
  </ResponseMetadata>
</AssumeRoleResponse>"#;

    const ERROR_RESPONSE: &str = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>AccessDenied</Code>
    <Message>User: arn:aws:iam::1:user/x is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::1:role/y &amp; more</Message>
  </Error>
  <RequestId>4d3d5e6f</RequestId>
</ErrorResponse>"#;

    #[test]
    fn parses_the_credentials_of_an_assume_role_response() {
        let credentials = parse_credentials(ASSUME_ROLE_RESPONSE).unwrap();
        assert_eq!(credentials.access_key_id, "ASIAIOSFODNN7EXAMPLE");
        assert_eq!(
            credentials.secret_access_key,
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
        );
        // Whitespace around the token is dropped, inner line breaks are the document's.
        let token = credentials.session_token.unwrap();
        assert!(token.starts_with("AQoDYXdzEPT//"), "{token}");
        assert!(token.ends_with("kMcGd"), "{token}");
        assert_eq!(
            credentials.expires_at,
            Some(parse_rfc3339("2019-11-09T13:34:41Z").unwrap())
        );
    }

    #[test]
    fn missing_or_broken_elements_are_named() {
        assert!(
            parse_credentials("<x/>")
                .unwrap_err()
                .contains("<Credentials>")
        );
        let no_token = ASSUME_ROLE_RESPONSE.replace("SessionToken", "Other");
        assert!(
            parse_credentials(&no_token)
                .unwrap_err()
                .contains("<SessionToken>")
        );
        let bad_date = ASSUME_ROLE_RESPONSE.replace("2019-11-09T13:34:41Z", "tomorrow");
        assert!(
            parse_credentials(&bad_date)
                .unwrap_err()
                .contains("<Expiration>")
        );
        let empty = ASSUME_ROLE_RESPONSE.replace(
            "<AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>",
            "<AccessKeyId/>",
        );
        assert!(
            parse_credentials(&empty)
                .unwrap_err()
                .contains("<AccessKeyId> is empty")
        );
        let nested = ASSUME_ROLE_RESPONSE.replace("ASIAIOSFODNN7EXAMPLE", "<b>x</b>");
        assert!(parse_credentials(&nested).unwrap_err().contains("markup"));
        let unterminated = ASSUME_ROLE_RESPONSE.replace("</Credentials>", "");
        assert!(parse_credentials(&unterminated).is_err());
    }

    #[test]
    fn the_error_messages_never_contain_the_secret() {
        let bad_date = ASSUME_ROLE_RESPONSE.replace("2019-11-09T13:34:41Z", "soon");
        let error = parse_credentials(&bad_date).unwrap_err();
        assert!(!error.contains("wJalrXUtnFEMI"), "{error}");
        assert!(!error.contains("AQoDYXdzEPT"), "{error}");
    }

    #[test]
    fn decodes_entities() {
        assert_eq!(
            decode_text("a&amp;b&lt;c&gt;d&quot;e&apos;f&#65;&#x42;").unwrap(),
            "a&b<c>d\"e'fAB"
        );
        assert!(decode_text("&bogus;").is_err());
        assert!(decode_text("&amp").is_err());
        assert!(decode_text("&#xD800;").is_err());
    }

    #[test]
    fn element_lookup_matches_whole_names_and_attributes() {
        let xml =
            r#"<CredentialsExtra>no</CredentialsExtra><Credentials a="1"><X>y</X></Credentials>"#;
        assert_eq!(element_raw(xml, "Credentials"), Some("<X>y</X>"));
        assert_eq!(element_raw(xml, "Missing"), None);
    }

    #[test]
    fn parses_error_documents() {
        let (code, message) = parse_error(ERROR_RESPONSE).unwrap();
        assert_eq!(code, "AccessDenied");
        assert!(message.ends_with("role/y & more"), "{message}");
        assert_eq!(parse_error("<html>Bad Gateway</html>"), None);
    }

    #[test]
    fn form_encoding_escapes_all_but_unreserved_bytes() {
        assert_eq!(
            form_encode(&[("RoleArn", "arn:aws:iam::1:role/a b"), ("X", "~-._é+=&")]),
            "RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fa%20b&X=~-._%C3%A9%2B%3D%26"
        );
    }

    #[test]
    fn endpoint_is_regional_unless_configured() {
        let none = Env::from_pairs([]);
        assert_eq!(
            sts_endpoint("eu-west-1", &none),
            "https://sts.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            sts_endpoint("cn-north-1", &none),
            "https://sts.cn-north-1.amazonaws.com.cn"
        );
        let general = Env::from_pairs([("AWS_ENDPOINT_URL", "http://localhost:4566/")]);
        assert_eq!(sts_endpoint("us-east-1", &general), "http://localhost:4566");
        let both = Env::from_pairs([
            ("AWS_ENDPOINT_URL", "http://localhost:4566"),
            ("AWS_ENDPOINT_URL_STS", "http://localhost:5000"),
        ]);
        assert_eq!(sts_endpoint("us-east-1", &both), "http://localhost:5000");
        let ignored = Env::from_pairs([
            ("AWS_ENDPOINT_URL_STS", "http://localhost:5000"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]);
        assert_eq!(
            sts_endpoint("us-west-2", &ignored),
            "https://sts.us-west-2.amazonaws.com"
        );
    }

    fn client_for(server: &TestServer) -> StsClient {
        let url = server.url();
        StsClient::new(
            "us-east-1",
            &Env::from_pairs([("AWS_ENDPOINT_URL_STS", url.as_str())]),
        )
    }

    #[test]
    fn assume_role_is_a_signed_form_post() {
        let server = TestServer::start(|_| (200, ASSUME_ROLE_RESPONSE.to_owned()));
        let sts = client_for(&server);
        let caller = Credentials::new(
            "AKIDCALLER",
            "caller-secret",
            Some("caller-token".to_owned()),
        );
        let request = AssumeRoleRequest {
            role_arn: "arn:aws:iam::123456789012:role/xray".to_owned(),
            session_name: "xray-relay".to_owned(),
            external_id: Some("ext 1".to_owned()),
            duration_seconds: Some(900),
        };
        let credentials = sts.assume_role(&caller, &request).unwrap();
        assert_eq!(credentials.access_key_id, "ASIAIOSFODNN7EXAMPLE");
        let seen = server.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            (seen[0].method.as_str(), seen[0].path.as_str()),
            ("POST", "/")
        );
        assert_eq!(
            seen[0].body,
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fxray&RoleSessionName=xray-relay&ExternalId=ext%201&DurationSeconds=900"
        );
        let authorization = seen[0].header("authorization").unwrap();
        assert!(
            authorization.contains("Credential=AKIDCALLER/")
                && authorization.contains("/us-east-1/sts/aws4_request"),
            "{authorization}"
        );
        assert_eq!(seen[0].header("x-amz-security-token"), Some("caller-token"));
    }

    #[test]
    fn web_identity_is_unsigned() {
        let server = TestServer::start(|_| {
            (
                200,
                ASSUME_ROLE_RESPONSE.replace("AssumeRole", "AssumeRoleWithWebIdentity"),
            )
        });
        let sts = client_for(&server);
        let credentials = sts
            .assume_role_with_web_identity("arn:aws:iam::1:role/r", "s", "eyJ.token")
            .unwrap();
        assert_eq!(credentials.access_key_id, "ASIAIOSFODNN7EXAMPLE");
        let seen = server.seen();
        assert_eq!(seen[0].header("authorization"), None);
        assert!(
            seen[0]
                .body
                .starts_with("Action=AssumeRoleWithWebIdentity&"),
            "{}",
            seen[0].body
        );
        assert!(
            seen[0].body.ends_with("&WebIdentityToken=eyJ.token"),
            "{}",
            seen[0].body
        );
    }

    #[test]
    fn sts_errors_carry_code_message_and_endpoint() {
        let server = TestServer::start(|_| (403, ERROR_RESPONSE.to_owned()));
        let sts = client_for(&server);
        let caller = Credentials::new("AKID", "secret", None);
        let request = AssumeRoleRequest {
            role_arn: "arn:aws:iam::1:role/y".to_owned(),
            session_name: "s".to_owned(),
            external_id: None,
            duration_seconds: None,
        };
        let error = sts.assume_role(&caller, &request).unwrap_err().to_string();
        assert!(
            error.starts_with("STS AssumeRole at http://127.0.0.1:"),
            "{error}"
        );
        assert!(
            error.contains("HTTP 403: AccessDenied: User: arn:aws:iam::1:user/x"),
            "{error}"
        );
        let server = TestServer::start(|_| (502, "<html>bad gateway</html>".to_owned()));
        let error = client_for(&server)
            .assume_role(&caller, &request)
            .unwrap_err();
        assert!(
            error
                .reason
                .contains("HTTP 502 without an STS error document"),
            "{error}"
        );
        assert_eq!(server.seen().len(), 2, "a 5xx is retried once");
    }
}

//! IAM Identity Center (SSO) profiles: the role credentials the SSO portal hands out for the
//! access token `aws sso login` cached, as the AWS SDK for Go v2 resolves them.
//!
//! Two profile forms: `sso_session = NAME` with a `[sso-session NAME]` section holding
//! `sso_region` and `sso_start_url` (the token is refreshed when expired), or the legacy one
//! with `sso_start_url` and `sso_region` in the profile (no refresh). Both need
//! `sso_account_id` and `sso_role_name`. The portal is
//! `https://portal.sso.<sso_region>.<suffix>` and SSO OIDC `https://oidc.<sso_region>.<suffix>`
//! unless `AWS_ENDPOINT_URL_SSO` / `AWS_ENDPOINT_URL_SSO_OIDC` (or `AWS_ENDPOINT_URL`) say
//! otherwise.

use super::sso_token::{self, json_object, text};
use super::{ChainSettings, Credentials};
use crate::aws::endpoint::{Partition, endpoint_from_env};
use crate::aws::profile::{Profile, ProfileSet};
use crate::aws::small_http::SmallHttp;
use crate::aws::sts::form_encode;
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// Whether a profile is configured for SSO (any of the keys of either form).
pub(crate) fn is_sso_profile(profile: &Profile) -> bool {
    [
        "sso_session",
        "sso_start_url",
        "sso_region",
        "sso_account_id",
        "sso_role_name",
    ]
    .into_iter()
    .any(|key| profile.get(key).is_some())
}

/// The `[sso-session]` section a profile names must exist, even when the profile gets its
/// credentials elsewhere: the SDK fails to load such a profile at all.
pub(crate) fn check_session_exists(set: &ProfileSet, profile: &Profile) -> Result<(), String> {
    match profile.get("sso_session") {
        Some(session) if set.sso_session(session).is_none() => {
            Err(format!("failed to find SSO session section, {session}"))
        }
        _ => Ok(()),
    }
}

/// What one SSO profile resolves to.
struct SsoConfig<'a> {
    region: &'a str,
    account_id: &'a str,
    role_name: &'a str,
    /// The session name (sso-session form) or the start URL (legacy): names the cache file.
    cache_key: &'a str,
    /// Only sso-session tokens are refreshed.
    refreshable: bool,
}

/// Validates profile `name` as the SDK does and says which form it uses.
fn sso_config<'a>(
    set: &'a ProfileSet,
    name: &str,
    profile: &'a Profile,
) -> Result<SsoConfig<'a>, String> {
    let session_name = profile.get("sso_session");
    // sso_region and sso_start_url come from the session's section when there is one.
    let session = match session_name {
        Some(session) => set
            .sso_session(session)
            .ok_or_else(|| format!("failed to find SSO session section, {session}"))?,
        None => profile,
    };
    let get = |key: &str| match key {
        "sso_region" | "sso_start_url" => session.get(key),
        _ => profile.get(key),
    };
    // The SDK checks the last two for the legacy form only; the portal would refuse the call.
    let keys = [
        "sso_region",
        "sso_start_url",
        "sso_account_id",
        "sso_role_name",
    ];
    let mut missing = String::new();
    for key in keys.into_iter().filter(|key| get(key).is_none()) {
        missing.push_str(if missing.is_empty() { "" } else { ", " });
        missing.push_str(key);
    }
    if !missing.is_empty() {
        return Err(format!(
            "profile {name:?} is configured to use SSO but is missing required configuration: {missing}"
        ));
    }
    if session_name.is_some() {
        for key in ["sso_region", "sso_start_url"] {
            if profile
                .get(key)
                .is_some_and(|value| Some(value) != get(key))
            {
                return Err(format!(
                    "{key} in profile {name:?} must match {key} in sso-session"
                ));
            }
        }
    }
    let value = |key| get(key).unwrap_or_default();
    Ok(SsoConfig {
        region: value("sso_region"),
        account_id: value("sso_account_id"),
        role_name: value("sso_role_name"),
        cache_key: session_name.unwrap_or(value("sso_start_url")),
        refreshable: session_name.is_some(),
    })
}

/// The endpoint of an SSO service (`portal.sso` or `oidc`) in `region`, or the configured one.
fn endpoint(settings: &ChainSettings, env_service: &str, host: &str, region: &str) -> String {
    match endpoint_from_env(&settings.env, env_service) {
        Some(configured) => configured.trim().trim_end_matches('/').to_owned(),
        None => format!(
            "https://{host}.{region}.{}",
            Partition::of_region(region).dns_suffix()
        ),
    }
}

/// The role credentials of SSO profile `name`.
pub(crate) fn sso_credentials(
    settings: &ChainSettings,
    set: &ProfileSet,
    name: &str,
    profile: &Profile,
) -> Result<Credentials, String> {
    let config = sso_config(set, name, profile)?;
    // The environment's proxies, timeouts and retries: the STS client's, as in the SDK.
    let http = settings.sts.http();
    let login = format!("; run `aws sso login --profile {name}`");
    let token = access_token(settings, &config, http)
        .map_err(|error| format!("the SSO session has expired or is invalid: {error}{login}"))?;
    let portal = endpoint(settings, "SSO", "portal.sso", config.region);
    let (account, role) = (config.account_id, config.role_name);
    role_credentials(http, &portal, &config, &token).map_err(|(status, error)| {
        // 401: the portal no longer accepts the token (signed out, or revoked). A 403 is about
        // the account and role, which the message names.
        let hint = if status == 401 { login.as_str() } else { "" };
        format!(
            "SSO GetRoleCredentials for account {account} role {role} at {portal}: {error}{hint}"
        )
    })
}

/// The cached token, refreshed first when it is an expired sso-session token.
fn access_token(
    settings: &ChainSettings,
    config: &SsoConfig,
    http: &SmallHttp,
) -> Result<String, String> {
    let path = sso_token::cache_path(settings.env.home(), config.cache_key)?;
    let token = sso_token::load(&path)?;
    if !token.is_expired(SystemTime::now()) {
        return Ok(token.access_token);
    }
    if !config.refreshable {
        return Err(format!("the token in {} has expired", path.display()));
    }
    let oidc = endpoint(settings, "SSO_OIDC", "oidc", config.region);
    sso_token::refresh(token, &path, http, &oidc)
        .map(|token| token.access_token)
        .map_err(|error| format!("refresh cached SSO token failed, {error}"))
}

/// `GET /federation/credentials` with the bearer token: the answer's `roleCredentials`, or
/// the HTTP status (0: no answer) and what went wrong.
fn role_credentials(
    http: &SmallHttp,
    portal: &str,
    config: &SsoConfig,
    access_token: &str,
) -> Result<Credentials, (u16, String)> {
    let query = form_encode(&[
        ("account_id", config.account_id),
        ("role_name", config.role_name),
    ]);
    let url = format!("{portal}/federation/credentials?{query}");
    let reply = http
        .send(
            "GET",
            &url,
            &[("x-amz-sso_bearer_token", access_token)],
            None,
        )
        .map_err(|error| (0, error.0))?;
    let answer = json_object(&reply.body);
    if !reply.is_success() {
        // The error type travels in a header; the portal's statuses each have one.
        let code = match reply.status {
            400 => "InvalidRequestException",
            401 => "UnauthorizedException",
            403 => "ForbiddenException",
            404 => "ResourceNotFoundException",
            429 => "TooManyRequestsException",
            _ => "error",
        };
        let message = text(&answer, "message");
        return Err((
            reply.status,
            format!("HTTP {}: {code}: {message}", reply.status),
        ));
    }
    let none = serde_json::Map::new();
    let role = answer
        .get("roleCredentials")
        .and_then(Value::as_object)
        .unwrap_or(&none);
    let (access_key, secret) = (text(role, "accessKeyId"), text(role, "secretAccessKey"));
    let expiration = role.get("expiration").and_then(Value::as_u64);
    let (false, false, Some(expiration)) = (access_key.is_empty(), secret.is_empty(), expiration)
    else {
        return Err((
            reply.status,
            "the answer has no complete roleCredentials".to_owned(),
        ));
    };
    let Some(expires_at) = SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(expiration))
    else {
        return Err((
            reply.status,
            format!("expiration {expiration} is out of range"),
        ));
    };
    let session_token = Some(text(role, "sessionToken")).filter(|token| !token.is_empty());
    Ok(
        Credentials::new(access_key, secret, session_token.map(str::to_owned))
            .expiring_at(expires_at),
    )
}

#[cfg(test)]
mod tests {
    use crate::aws::credentials::{ChainSettings, Credentials, CredentialsSource, ProfileSource};
    use crate::aws::env::Env;
    use crate::aws::imds::ImdsClient;
    use crate::aws::test_http::{Seen, TestServer};
    use crate::aws::timestamp::parse_rfc3339;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    const SESSION: &str = "[sso-session corp]\nsso_region = eu-west-1\nsso_start_url = https://corp.awsapps.com/start\n";
    const GOOD: &str = r#"{"startUrl":"https://corp.awsapps.com/start","region":"eu-west-1","accessToken":"bearer-1","expiresAt":"2099-01-01T00:00:00Z"}"#;

    /// A home directory with `.aws/config` and, when given, the cache file for `key`.
    struct Home {
        dir: PathBuf,
    }

    impl Home {
        fn new(name: &str, config: &str, key: &str, token: Option<&str>) -> Home {
            let dir =
                std::env::temp_dir().join(format!("xray-relay-sso-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join(".aws/sso/cache")).unwrap();
            std::fs::write(dir.join(".aws/config"), config).unwrap();
            let home = Home { dir };
            if let Some(token) = token {
                std::fs::write(home.token_path(key), token).unwrap();
            }
            home
        }

        fn token_path(&self, key: &str) -> PathBuf {
            super::sso_token::cache_path(Some(&self.dir), key).unwrap()
        }

        fn load(&self, server: &TestServer, profile: &str) -> Result<Credentials, String> {
            let url = server.url();
            let env = Env::from_pairs([
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("AWS_PROFILE", profile),
                ("AWS_ENDPOINT_URL", url.as_str()),
            ])
            .with_home(&self.dir);
            let imds = Arc::new(ImdsClient::from_env(&env));
            ProfileSource::new(ChainSettings::new(&env, "us-east-1", imds))
                .load()
                .map(Option::unwrap)
                .map_err(|error| error.to_string())
        }
    }

    /// The portal (bearer token `bearer-N` accepted for any N), OIDC (refresh token `refresh-1`
    /// gives `bearer-2`) and STS (AssumeRole signed by anyone), answering by path.
    fn services() -> TestServer {
        TestServer::start(|request: &Seen| {
            let path = request.path.as_str();
            if path.starts_with("/federation/credentials?") {
                let token = request.header("x-amz-sso_bearer_token").unwrap_or_default();
                if !token.starts_with("bearer-") {
                    let body = r#"{"message":"Session token not found or invalid"}"#;
                    return (401, body.to_owned());
                }
                return (
                    200,
                    format!(
                        r#"{{"roleCredentials":{{"accessKeyId":"ASIASSO{token}","secretAccessKey":"sso-secret","sessionToken":"sso-session-token","expiration":4102444800000}}}}"#
                    ),
                );
            }
            if path == "/token" {
                if request.body.contains(r#""refreshToken":"refresh-forever""#) {
                    let body = r#"{"accessToken":"bearer-3","expiresIn":18446744073709551615}"#;
                    return (200, body.to_owned());
                }
                if !request.body.contains(r#""refreshToken":"refresh-1""#) {
                    let body = r#"{"error":"invalid_grant","error_description":"Invalid refresh token provided"}"#;
                    return (400, body.to_owned());
                }
                let body = r#"{"accessToken":"bearer-2","tokenType":"Bearer","expiresIn":3600,"refreshToken":"refresh-2"}"#;
                return (200, body.to_owned());
            }
            let body = "<R><Credentials><AccessKeyId>ASIAROLE</AccessKeyId><SecretAccessKey>s</SecretAccessKey>\
                 <SessionToken>t</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration></Credentials></R>";
            (200, body.to_owned())
        })
    }

    #[test]
    fn sso_session_profiles_get_the_portal_role_credentials() {
        let config = format!(
            "[profile dev]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = Dev Ops\n{SESSION}"
        );
        let home = Home::new("session", &config, "corp", Some(GOOD));
        let server = services();
        let credentials = home.load(&server, "dev").unwrap();
        assert_eq!(credentials.access_key_id, "ASIASSObearer-1");
        assert_eq!(credentials.secret_access_key, "sso-secret");
        assert_eq!(
            credentials.session_token.as_deref(),
            Some("sso-session-token")
        );
        assert_eq!(
            credentials.expires_at,
            Some(parse_rfc3339("2100-01-01T00:00:00Z").unwrap())
        );
        let seen = server.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].method, "GET");
        assert_eq!(
            seen[0].path,
            "/federation/credentials?account_id=123456789012&role_name=Dev%20Ops"
        );
        assert_eq!(seen[0].header("x-amz-sso_bearer_token"), Some("bearer-1"));
        // The token file is read, not rewritten.
        assert_eq!(
            std::fs::read_to_string(home.token_path("corp")).unwrap(),
            GOOD
        );
    }

    #[test]
    fn legacy_profiles_use_the_start_url_as_the_cache_key() {
        let config = "[default]\nsso_start_url = https://old.awsapps.com/start\nsso_region = us-west-2\n\
                      sso_account_id = 1\nsso_role_name = r\n";
        let home = Home::new(
            "legacy",
            config,
            "https://old.awsapps.com/start",
            Some(GOOD),
        );
        let server = services();
        assert_eq!(
            home.load(&server, "default").unwrap().access_key_id,
            "ASIASSObearer-1"
        );
        // Expired: no refresh for the legacy form, even with a refresh token.
        std::fs::write(
            home.token_path("https://old.awsapps.com/start"),
            r#"{"accessToken":"bearer-1","expiresAt":"2020-01-01T00:00:00Z","refreshToken":"refresh-1","clientId":"c","clientSecret":"s"}"#,
        )
        .unwrap();
        let error = home.load(&server, "default").unwrap_err();
        assert!(
            error.contains("the SSO session has expired or is invalid: the token in")
                && error.ends_with("has expired; run `aws sso login --profile default`"),
            "{error}"
        );
        assert!(server.seen().iter().all(|seen| seen.path != "/token"));
    }

    #[test]
    fn an_expired_session_token_is_refreshed_and_the_cache_rewritten() {
        use std::os::unix::fs::PermissionsExt;
        let config = format!(
            "[profile dev]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = r\n{SESSION}"
        );
        let expired = r#"{"startUrl":"https://corp.awsapps.com/start","region":"eu-west-1","accessToken":"old",
            "expiresAt":"2020-01-01T00:00:00Z","clientId":"client-id","clientSecret":"client-secret",
            "registrationExpiresAt":"2099-01-01T00:00:00Z","refreshToken":"refresh-1"}"#;
        let home = Home::new("refresh", &config, "corp", Some(expired));
        let server = services();
        let before = SystemTime::now();
        let credentials = home.load(&server, "dev").unwrap();
        assert_eq!(credentials.access_key_id, "ASIASSObearer-2");
        let seen = server.seen();
        assert_eq!(seen[0].method, "POST");
        assert_eq!(seen[0].path, "/token");
        let request: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
        assert_eq!(
            request,
            serde_json::json!({"clientId": "client-id", "clientSecret": "client-secret",
                "grantType": "refresh_token", "refreshToken": "refresh-1"})
        );
        assert_eq!(seen[1].header("x-amz-sso_bearer_token"), Some("bearer-2"));

        let path = home.token_path("corp");
        let text = std::fs::read_to_string(&path).unwrap();
        let written: serde_json::Value = serde_json::from_str(&text).unwrap();
        let expires_at = parse_rfc3339(written["expiresAt"].as_str().unwrap()).unwrap();
        assert!(
            expires_at >= before + Duration::from_secs(3599)
                && expires_at <= SystemTime::now() + Duration::from_secs(3600),
            "{text}"
        );
        let mut expected: serde_json::Value = serde_json::from_str(expired).unwrap();
        expected["accessToken"] = "bearer-2".into();
        expected["refreshToken"] = "refresh-2".into();
        expected["expiresAt"] = written["expiresAt"].clone();
        assert_eq!(written, expected);
        assert!(text.ends_with("}\n"), "{text}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");

        // The refreshed token is now used as it is.
        assert_eq!(
            home.load(&server, "dev").unwrap().access_key_id,
            "ASIASSObearer-2"
        );
        assert_eq!(server.seen().len(), 3);
    }

    #[test]
    fn an_expired_token_that_cannot_be_refreshed_says_to_log_in() {
        let config = format!(
            "[profile dev]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = r\n{SESSION}"
        );
        let server = services();
        let no_refresh = r#"{"accessToken":"old","expiresAt":"2020-01-01T00:00:00Z"}"#;
        let home = Home::new("norefresh", &config, "corp", Some(no_refresh));
        let error = home.load(&server, "dev").unwrap_err();
        assert_eq!(
            error,
            "credentials from profile: profile `dev`: the SSO session has expired or is invalid: \
             refresh cached SSO token failed, cached SSO token is expired, or not present, and \
             cannot be refreshed; run `aws sso login --profile dev`"
        );
        let refused = r#"{"accessToken":"old","expiresAt":"2020-01-01T00:00:00Z","clientId":"c",
            "clientSecret":"topsecret","refreshToken":"revoked-refresh"}"#;
        std::fs::write(home.token_path("corp"), refused).unwrap();
        let error = home.load(&server, "dev").unwrap_err();
        assert!(
            error.contains("unable to refresh SSO token, SSO OIDC CreateToken at")
                && error.contains("HTTP 400: invalid_grant Invalid refresh token provided")
                && error.ends_with("run `aws sso login --profile dev`"),
            "{error}"
        );
        assert!(!error.contains("topsecret") && !error.contains("revoked-refresh"));
        // An expiry no clock can hold is refused rather than added.
        let forever = r#"{"accessToken":"old","expiresAt":"2020-01-01T00:00:00Z","clientId":"c",
            "clientSecret":"s","refreshToken":"refresh-forever"}"#;
        std::fs::write(home.token_path("corp"), forever).unwrap();
        let error = home.load(&server, "dev").unwrap_err();
        assert!(
            error.contains("expiresIn 18446744073709551615 is out of range"),
            "{error}"
        );
        let home = Home::new("notoken", &config, "corp", None);
        let error = home.load(&server, "dev").unwrap_err();
        assert!(
            error.contains("cached SSO token file")
                && error.ends_with("(os error 2); run `aws sso login --profile dev`"),
            "{error}"
        );
        // The two refresh attempts; no portal call.
        assert_eq!(server.seen().len(), 2);
    }

    #[test]
    fn portal_refusals_are_explained_without_the_token() {
        let config = format!(
            "[profile dev]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = r\n{SESSION}"
        );
        let revoked = r#"{"accessToken":"revoked-token","expiresAt":"2099-01-01T00:00:00Z"}"#;
        let home = Home::new("portal", &config, "corp", Some(revoked));
        let server = services();
        let error = home.load(&server, "dev").unwrap_err();
        assert!(
            error.contains("SSO GetRoleCredentials for account 1 role r at http://127.0.0.1:")
                && error.ends_with(
                    "HTTP 401: UnauthorizedException: Session token not found or invalid; run `aws sso login --profile dev`"
                ),
            "{error}"
        );
        assert!(!error.contains("revoked-token"), "{error}");
        let forbidden = TestServer::start(|_| (403, r#"{"message":"No access"}"#.to_owned()));
        let error = home.load(&forbidden, "dev").unwrap_err();
        assert!(
            error.contains("SSO GetRoleCredentials for account 1 role r at")
                && error.ends_with(": HTTP 403: ForbiddenException: No access"),
            "{error}"
        );
    }

    #[test]
    fn broken_sso_profiles_get_the_sdks_errors() {
        let cases = [
            (
                "[default]\nsso_start_url = u\nsso_role_name = r\n",
                "profile \"default\" is configured to use SSO but is missing required configuration: sso_region, sso_account_id",
            ),
            (
                "[default]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = r\n",
                "failed to find SSO session section, corp",
            ),
            (
                "[default]\nsso_session = corp\naws_access_key_id = A\naws_secret_access_key = S\n",
                "failed to find SSO session section, corp",
            ),
            (
                "[default]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = r\n[sso-session corp]\nsso_start_url = u\n",
                "is configured to use SSO but is missing required configuration: sso_region",
            ),
            (
                "[default]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = r\nsso_region = us-east-1\n[sso-session corp]\nsso_start_url = u\nsso_region = eu-west-1\n",
                "sso_region in profile \"default\" must match sso_region in sso-session",
            ),
            (
                "[default]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = r\nsso_start_url = other\n[sso-session corp]\nsso_start_url = u\nsso_region = eu-west-1\n",
                "sso_start_url in profile \"default\" must match sso_start_url in sso-session",
            ),
            (
                "[default]\nsso_session = corp\nsso_role_name = r\n[sso-session corp]\nsso_start_url = u\nsso_region = eu-west-1\n",
                "missing required configuration: sso_account_id",
            ),
        ];
        let server = TestServer::start(|_| (500, String::new()));
        for (index, (config, expected)) in cases.into_iter().enumerate() {
            let home = Home::new(&format!("broken{index}"), config, "corp", Some(GOOD));
            let error = home.load(&server, "default").unwrap_err();
            assert!(error.contains(expected), "{index}: {error}");
        }
        assert!(server.seen().is_empty());
    }

    #[test]
    fn sso_is_a_source_profile_or_the_base_of_its_own_role() {
        let config = format!(
            "[profile xray]\nrole_arn = arn:aws:iam::1:role/xray\nsource_profile = sso\n\
             [profile sso]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = r\n\
             [profile own]\nrole_arn = arn:aws:iam::1:role/own\nsso_session = corp\nsso_account_id = 1\nsso_role_name = r\n\
             [profile static]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = r\n\
             aws_access_key_id = AKIASTATIC\naws_secret_access_key = S\n{SESSION}"
        );
        let home = Home::new("source", &config, "corp", Some(GOOD));
        for profile in ["xray", "own"] {
            let server = services();
            assert_eq!(
                home.load(&server, profile).unwrap().access_key_id,
                "ASIAROLE"
            );
            let seen = server.seen();
            assert!(seen[0].path.starts_with("/federation/credentials"));
            let signed = seen[1].header("authorization").unwrap_or_default();
            assert!(signed.contains("Credential=ASIASSObearer-1/"), "{signed}");
        }
        // Static keys come before SSO, as in the SDK; in a source profile they are used even
        // when its session section is missing.
        let config = format!(
            "{config}[profile viakeys]\nrole_arn = arn:aws:iam::1:role/k\nsource_profile = keys\n\
             [profile keys]\nsso_session = gone\naws_access_key_id = AKIAKEYS\naws_secret_access_key = S\n"
        );
        std::fs::write(home.dir.join(".aws/config"), config).unwrap();
        let server = services();
        assert_eq!(
            home.load(&server, "viakeys").unwrap().access_key_id,
            "ASIAROLE"
        );
        let signed = server.seen()[0]
            .header("authorization")
            .unwrap_or_default()
            .to_owned();
        assert!(signed.contains("Credential=AKIAKEYS/"), "{signed}");
        let error = home.load(&server, "keys").unwrap_err();
        assert!(
            error.ends_with("failed to find SSO session section, gone"),
            "{error}"
        );
        let server = services();
        assert_eq!(
            home.load(&server, "static").unwrap().access_key_id,
            "AKIASTATIC"
        );
        assert!(server.seen().is_empty());
    }
}

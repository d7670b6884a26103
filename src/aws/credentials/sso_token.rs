//! The SSO access token `aws sso login` caches in `~/.aws/sso/cache/<sha1 hex of key>.json`:
//! reading it and, for `sso-session` profiles, refreshing it with SSO OIDC `CreateToken` and
//! writing the cache file back, as the AWS SDK for Go v2 (`ssocreds`) does.

use crate::aws::small_http::SmallHttp;
use crate::aws::timestamp::{format_rfc3339, parse_rfc3339};
use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The cache file for `key` (the session name, or the start URL of a legacy profile):
/// `<home>/.aws/sso/cache/<lower-case hex SHA-1 of key>.json`, as the AWS CLI writes it.
pub(crate) fn cache_path(home: Option<&Path>, key: &str) -> Result<PathBuf, String> {
    let home = home.ok_or("unable to get USER's home directory for cached token")?;
    // SHA-1 names the file only; it protects nothing.
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, key.as_bytes());
    let mut name: String = digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    name.push_str(".json");
    Ok(home.join(".aws").join("sso").join("cache").join(name))
}

/// A cached token: its access token, expiry, and every field of the file (kept so a rewrite
/// loses nothing the AWS CLI stored, such as `startUrl` or `region`).
pub(crate) struct CachedToken {
    /// The bearer token for the SSO portal; never printed.
    pub access_token: String,
    /// When the access token stops working.
    pub expires_at: SystemTime,
    fields: Map<String, Value>,
}

// The tokens must never reach a log line.
impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl CachedToken {
    /// A string field of the file; one of another type is an error.
    fn text(fields: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
        match fields.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone()).filter(|text| !text.is_empty())),
            Some(_) => Err(format!("field {name:?}, expect value to be string")),
        }
    }

    /// Whether the token has passed its expiry (the SDK refreshes only then).
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now > self.expires_at
    }
}

/// Reads and checks the cache file; errors read as the SDK's.
pub(crate) fn load(path: &Path) -> Result<CachedToken, String> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        format!(
            "failed to read cached SSO token file {}, {error}",
            path.display()
        )
    })?;
    // Never quote the file: it holds the tokens.
    let fields: Map<String, Value> = serde_json::from_str(&text).map_err(|_| {
        format!(
            "failed to parse cached SSO token file {}, not a JSON object",
            path.display()
        )
    })?;
    let parse = || -> Result<CachedToken, String> {
        let access_token = CachedToken::text(&fields, "accessToken")?;
        let expires_at = match CachedToken::text(&fields, "expiresAt")? {
            Some(text) => Some(
                parse_rfc3339(&text)
                    .map_err(|error| format!("field \"expiresAt\", expected {error}"))?,
            ),
            None => None,
        };
        for name in ["refreshToken", "clientId", "clientSecret"] {
            CachedToken::text(&fields, name)?;
        }
        match (access_token, expires_at) {
            (Some(access_token), Some(expires_at)) => Ok(CachedToken {
                access_token,
                expires_at,
                fields: fields.clone(),
            }),
            _ => Err("cached SSO token must contain accessToken and expiresAt fields".to_owned()),
        }
    };
    parse().map_err(|error| {
        format!(
            "failed to parse cached SSO token file {}, {error}",
            path.display()
        )
    })
}

/// Exchanges the refresh token for a new access token at SSO OIDC (`endpoint`), writes the
/// cache file back and returns the new token.
pub(crate) fn refresh(
    token: CachedToken,
    path: &Path,
    http: &SmallHttp,
    endpoint: &str,
) -> Result<CachedToken, String> {
    let field = |name| CachedToken::text(&token.fields, name).ok().flatten();
    let (Some(client_id), Some(client_secret), Some(refresh_token)) = (
        field("clientId"),
        field("clientSecret"),
        field("refreshToken"),
    ) else {
        return Err(
            "cached SSO token is expired, or not present, and cannot be refreshed".to_owned(),
        );
    };
    let body = serde_json::json!({
        "clientId": client_id,
        "clientSecret": client_secret,
        "grantType": "refresh_token",
        "refreshToken": refresh_token,
    })
    .to_string();
    let url = format!("{endpoint}/token");
    let failed = |reason: String| {
        format!("unable to refresh SSO token, SSO OIDC CreateToken at {endpoint}: {reason}")
    };
    let reply = http
        .send(
            "POST",
            &url,
            &[("Content-Type", "application/json")],
            Some(body.as_bytes()),
        )
        .map_err(|error| failed(error.0))?;
    let answer: Map<String, Value> = serde_json::from_str(&reply.body).unwrap_or_default();
    let text = |name: &str| answer.get(name).and_then(Value::as_str).unwrap_or_default();
    if !reply.is_success() {
        // OIDC errors are {"error": code, "error_description": text}.
        return Err(failed(format!(
            "HTTP {}: {} {}",
            reply.status,
            text("error"),
            text("error_description")
        )));
    }
    let access_token = text("accessToken").to_owned();
    let expires_in = answer.get("expiresIn").and_then(Value::as_u64);
    let (false, Some(expires_in)) = (access_token.is_empty(), expires_in) else {
        return Err(failed(
            "the answer has no accessToken and expiresIn".to_owned(),
        ));
    };
    let expires_at = SystemTime::now() + Duration::from_secs(expires_in);
    let mut fields = token.fields;
    fields.insert("accessToken".to_owned(), Value::from(access_token.clone()));
    fields.insert(
        "expiresAt".to_owned(),
        Value::from(format_rfc3339(expires_at)),
    );
    // As the SDK: the answer's refresh token replaces the old one, and none removes it.
    match text("refreshToken") {
        "" => fields.remove("refreshToken"),
        new => fields.insert("refreshToken".to_owned(), Value::from(new)),
    };
    store(path, &fields)
        .map_err(|error| format!("unable to cache refreshed SSO token, {error}"))?;
    Ok(CachedToken {
        access_token,
        expires_at,
        fields,
    })
}

/// Replaces the cache file atomically: a new file (mode 0600: it holds tokens) next to it,
/// then a rename over the old one.
fn store(path: &Path, fields: &Map<String, Value>) -> Result<(), String> {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp-{nanos}"));
    let temporary = PathBuf::from(temporary);
    let mut text = Value::Object(fields.clone()).to_string();
    text.push('\n');
    let written =
        write_private(&temporary, text.as_bytes()).and_then(|()| std::fs::rename(&temporary, path));
    written.map_err(|error| {
        let _ = std::fs::remove_file(&temporary);
        format!("cannot write {}: {error}", path.display())
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_file_names_are_the_sha1_of_the_key() {
        let home = Path::new("/home/me");
        // sha1("corp") and sha1 of a start URL, as `hashlib.sha1(key.encode()).hexdigest()`.
        assert_eq!(
            cache_path(Some(home), "corp").unwrap(),
            Path::new("/home/me/.aws/sso/cache/ee0bfd2552fbd840c02cc48b6e823320543c450f.json")
        );
        assert_eq!(
            cache_path(Some(home), "https://corp.awsapps.com/start").unwrap(),
            Path::new("/home/me/.aws/sso/cache/a51746d4aa793ae07b25e90c3a5db96fc7832bd7.json")
        );
        assert!(
            cache_path(None, "corp")
                .unwrap_err()
                .contains("home directory")
        );
    }

    fn file(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "xray-relay-sso-token-{name}-{}.json",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn load_reads_the_token_and_names_what_is_wrong() {
        let path = file(
            "ok",
            r#"{"startUrl":"u","region":"r","accessToken":"tok","expiresAt":"2030-01-02T03:04:05Z"}"#,
        );
        let token = load(&path).unwrap();
        assert_eq!(token.access_token, "tok");
        assert_eq!(
            token.expires_at,
            parse_rfc3339("2030-01-02T03:04:05Z").unwrap()
        );
        assert!(!token.is_expired(SystemTime::now()));
        let cases = [
            (
                r#"{"accessToken":"topsecret"}"#,
                "must contain accessToken and expiresAt",
            ),
            (
                r#"{"accessToken":"topsecret","expiresAt":"2019-11-14T04:05:45UTC"}"#,
                "field \"expiresAt\", expected not an RFC 3339 timestamp",
            ),
            (
                r#"{"accessToken":7,"expiresAt":"2030-01-02T03:04:05Z"}"#,
                "field \"accessToken\", expect value to be string",
            ),
            ("topsecret", "not a JSON object"),
        ];
        for (index, (text, expected)) in cases.into_iter().enumerate() {
            let path = file(&format!("bad{index}"), text);
            let error = load(&path).unwrap_err();
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains("topsecret"), "{error}");
        }
        let error = load(Path::new("/nonexistent/xray-relay/x.json")).unwrap_err();
        assert!(
            error
                .starts_with("failed to read cached SSO token file /nonexistent/xray-relay/x.json"),
            "{error}"
        );
    }
}

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
    let mut name = String::from(".aws/sso/cache/");
    for byte in digest.as_ref() {
        name.push_str(&format!("{byte:02x}"));
    }
    name.push_str(".json");
    Ok(home.join(name))
}

/// A cached token: its access token, expiry, and every field of the file (kept so a rewrite
/// loses nothing the AWS CLI stored, such as `startUrl` or `registrationExpiresAt`).
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
    /// Whether the token has passed its expiry (the SDK refreshes only then).
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now > self.expires_at
    }
}

/// The JSON object in `text`; empty when it is not one (the caller then finds no fields).
pub(crate) fn json_object(text: &str) -> Map<String, Value> {
    match serde_json::from_slice(text.as_bytes()) {
        Ok(Value::Object(object)) => object,
        _ => Map::new(),
    }
}

/// The string field `name` of `object`; empty when absent or not a string.
pub(crate) fn text<'a>(object: &'a Map<String, Value>, name: &str) -> &'a str {
    object.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// Reads and checks the cache file; errors never quote it (it holds the tokens).
pub(crate) fn load(path: &Path) -> Result<CachedToken, String> {
    let fail = |why: String| format!("cached SSO token file {}: {why}", path.display());
    let contents = std::fs::read_to_string(path).map_err(|error| fail(error.to_string()))?;
    let fields = json_object(&contents);
    let (access_token, expires_at) = (text(&fields, "accessToken"), text(&fields, "expiresAt"));
    if access_token.is_empty() || expires_at.is_empty() {
        return Err(fail(
            "it must contain accessToken and expiresAt fields".to_owned(),
        ));
    }
    // RFC 3339 only, as the Go SDK: the `…UTC` form some old CLIs wrote is refused there too.
    let expires_at =
        parse_rfc3339(expires_at).map_err(|error| fail(format!("expiresAt is {error}")))?;
    Ok(CachedToken {
        access_token: access_token.to_owned(),
        expires_at,
        fields,
    })
}

/// Exchanges the refresh token for a new access token at SSO OIDC (`endpoint`), writes the
/// cache file back and returns the new token.
pub(crate) fn refresh(
    mut token: CachedToken,
    path: &Path,
    http: &SmallHttp,
    endpoint: &str,
) -> Result<CachedToken, String> {
    let field = |name| text(&token.fields, name);
    let (id, secret, refresh_token) = (
        field("clientId"),
        field("clientSecret"),
        field("refreshToken"),
    );
    if id.is_empty() || secret.is_empty() || refresh_token.is_empty() {
        return Err(
            "cached SSO token is expired, or not present, and cannot be refreshed".to_owned(),
        );
    }
    // Value's Display writes JSON, quotes and escapes included.
    let (id, secret, refresh_token) = (
        Value::from(id),
        Value::from(secret),
        Value::from(refresh_token),
    );
    let body = format!(
        r#"{{"clientId":{id},"clientSecret":{secret},"grantType":"refresh_token","refreshToken":{refresh_token}}}"#
    );
    let failed = |reason: String| {
        format!("unable to refresh SSO token, SSO OIDC CreateToken at {endpoint}: {reason}")
    };
    let reply = http
        .send(
            "POST",
            &format!("{endpoint}/token"),
            &[("Content-Type", "application/json")],
            Some(body.as_bytes()),
        )
        .map_err(|error| failed(error.0))?;
    let answer = json_object(&reply.body);
    let access_token = text(&answer, "accessToken");
    let (true, false, Some(expires_in)) = (
        reply.is_success(),
        access_token.is_empty(),
        answer.get("expiresIn").and_then(Value::as_u64),
    ) else {
        // OIDC errors are {"error": code, "error_description": text}.
        return Err(failed(format!(
            "HTTP {}: {} {}",
            reply.status,
            text(&answer, "error"),
            text(&answer, "error_description")
        )));
    };
    // An answer's `expiresIn` past what a clock can hold is refused, not added (it would
    // overflow).
    let Some(expires_at) = SystemTime::now().checked_add(Duration::from_secs(expires_in)) else {
        return Err(failed(format!("expiresIn {expires_in} is out of range")));
    };
    token.access_token = access_token.to_owned();
    token.expires_at = expires_at;
    let fields = &mut token.fields;
    fields.insert("accessToken".to_owned(), access_token.into());
    fields.insert(
        "expiresAt".to_owned(),
        format_rfc3339(token.expires_at).into(),
    );
    // As the SDK: the answer's refresh token replaces the old one, and none removes it.
    match text(&answer, "refreshToken") {
        "" => fields.remove("refreshToken"),
        new => fields.insert("refreshToken".to_owned(), new.into()),
    };
    // The caller needs only the access token; a later load reads the file again.
    let document = Value::Object(std::mem::take(fields));
    store(path, &document).map_err(|error| {
        format!(
            "unable to cache refreshed SSO token in {}: {error}",
            path.display()
        )
    })?;
    Ok(token)
}

/// Replaces the cache file atomically: a new file (mode 0600: it holds tokens) next to it,
/// then a rename over the old one.
fn store(path: &Path, document: &Value) -> std::io::Result<()> {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp-{nanos}"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        writeln!(file, "{document}")?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
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
            r#"{"accessToken":"topsecret"}"#,
            r#"{"accessToken":7,"expiresAt":"2030-01-02T03:04:05Z"}"#,
            "topsecret",
        ];
        for (index, text) in cases.into_iter().enumerate() {
            let path = file(&format!("bad{index}"), text);
            let error = load(&path).unwrap_err();
            assert!(
                error.ends_with("it must contain accessToken and expiresAt fields"),
                "{error}"
            );
            assert!(!error.contains("topsecret"), "{error}");
        }
        let path = file(
            "utc",
            r#"{"accessToken":"topsecret","expiresAt":"2019-11-14T04:05:45UTC"}"#,
        );
        let error = load(&path).unwrap_err();
        assert!(
            error.ends_with("expiresAt is not an RFC 3339 timestamp: \"2019-11-14T04:05:45UTC\""),
            "{error}"
        );
        let error = load(Path::new("/nonexistent/xray-relay/x.json")).unwrap_err();
        assert!(
            error.starts_with("cached SSO token file /nonexistent/xray-relay/x.json: "),
            "{error}"
        );
    }
}

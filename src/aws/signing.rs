//! AWS Signature Version 4 for any request: what to sign goes in, the headers to add come out.
//!
//! Used by the upload client and, unchanged, by a proxy that signs forwarded requests,
//! so headers are an arbitrary list rather than a fixed set.

use super::credentials::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::fmt;
use std::time::SystemTime;

/// The signing name of the X-Ray service.
pub const XRAY_SERVICE: &str = "xray";

/// The parts of a request that the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct RequestToSign<'a> {
    /// `POST`, `GET`, …
    pub method: &'a str,
    /// The full, already percent-encoded URL (`https://host[:port]/path[?query]`).
    pub url: &'a str,
    /// Headers that will be sent. `Host` is derived from the URL when absent; the
    /// signer leaves out `Authorization`, `User-Agent`, `X-Amzn-Trace-Id` and
    /// `Transfer-Encoding`, which proxies may change.
    pub headers: &'a [(&'a str, &'a str)],
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// Signing failed: the URL, a header or the credentials could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningError {
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for SigningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot sign request: {}", self.message)
    }
}

impl std::error::Error for SigningError {}

/// Signs requests for one service in one region.
#[derive(Debug, Clone)]
pub struct Signer {
    region: String,
    service: String,
    content_sha256_header: bool,
}

impl Signer {
    /// A signer for `service` (e.g. [`XRAY_SERVICE`]) in `region`.
    pub fn new(region: impl Into<String>, service: impl Into<String>) -> Self {
        Signer {
            region: region.into(),
            service: service.into(),
            content_sha256_header: false,
        }
    }

    /// Also send (and sign) `x-amz-content-sha256`. X-Ray does not need it; S3-style
    /// services do.
    pub fn with_content_sha256_header(mut self, enabled: bool) -> Self {
        self.content_sha256_header = enabled;
        self
    }

    /// The region signatures are scoped to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The headers to add to `request`: `authorization`, `x-amz-date`, and
    /// `x-amz-security-token` / `x-amz-content-sha256` when they apply.
    pub fn sign(
        &self,
        request: &RequestToSign<'_>,
        credentials: &Credentials,
        time: SystemTime,
    ) -> Result<Vec<(&'static str, String)>, SigningError> {
        let fail = |message: String| SigningError { message };
        let identity: Identity = aws_credential_types::Credentials::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.clone(),
            credentials.session_token.clone(),
            credentials.expires_at,
            "xray-relay",
        )
        .into();
        let mut settings = SigningSettings::default();
        if self.content_sha256_header {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|error| fail(error.to_string()))?
            .into();
        let signable = SignableRequest::new(
            request.method,
            request.url,
            request.headers.iter().copied(),
            SignableBody::Precomputed(payload_sha256_hex(request.body)),
        )
        .map_err(|error| fail(format!("{} {}: {error}", request.method, request.url)))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|error| fail(format!("{} {}: {error}", request.method, request.url)))?
            .into_parts();
        let (headers, _query) = instructions.into_parts();
        Ok(headers
            .into_iter()
            .map(|header| (header.name(), header.value().to_owned()))
            .collect())
    }
}

/// The SHA-256 of `body` in lower-case hex, as the canonical request carries it.
///
/// Hashed with ring's assembly SHA-256 (in the binary already, for TLS) rather than letting
/// aws-sigv4 hash with the portable `sha2` crate: the body is the one large input the signer
/// hashes, and ring uses the CPU's SHA instructions where it has them.
fn payload_sha256_hex(body: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    let mut hex = String::with_capacity(64);
    for &byte in digest.as_ref() {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn header<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    #[test]
    fn payload_hash_is_lower_case_hex_sha256() {
        assert_eq!(
            payload_sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            payload_sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// 2024-01-02T03:04:05Z
    fn fixed_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_164_645)
    }

    const BODY: &[u8] = br#"{"TraceSegmentDocuments":["{\"name\":\"a\"}"]}"#;

    fn known_request_headers() -> [(&'static str, &'static str); 2] {
        [
            ("Content-Type", "application/json"),
            ("X-Amzn-Xray-Timestamp", "1704164645.000000000"),
        ]
    }

    /// The expected values were computed independently with botocore's `SigV4Auth`
    /// (botocore 1.43.11, `AWSRequest` with the same method, URL, headers and body).
    #[test]
    fn matches_botocore_for_long_lived_credentials() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
        );
        let headers = known_request_headers();
        let request = RequestToSign {
            method: "POST",
            url: "https://xray.us-west-2.amazonaws.com/TraceSegments",
            headers: &headers,
            body: BODY,
        };
        let signed = Signer::new("us-west-2", XRAY_SERVICE)
            .sign(&request, &credentials, fixed_time())
            .unwrap();
        assert_eq!(header(&signed, "x-amz-date"), Some("20240102T030405Z"));
        assert_eq!(header(&signed, "x-amz-security-token"), None);
        assert_eq!(header(&signed, "x-amz-content-sha256"), None);
        assert_eq!(
            header(&signed, "authorization"),
            Some(BOTOCORE_AUTHORIZATION_LONG_LIVED)
        );
    }

    #[test]
    fn matches_botocore_with_a_session_token_and_port() {
        let credentials = Credentials::new(
            "ASIAEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("FQoGZXIvYXdzEXAMPLETOKEN//+==".to_owned()),
        );
        let headers = known_request_headers();
        let request = RequestToSign {
            method: "POST",
            url: "http://127.0.0.1:2000/TelemetryRecords",
            headers: &headers,
            body: BODY,
        };
        let signed = Signer::new("eu-central-1", XRAY_SERVICE)
            .sign(&request, &credentials, fixed_time())
            .unwrap();
        assert_eq!(
            header(&signed, "x-amz-security-token"),
            Some("FQoGZXIvYXdzEXAMPLETOKEN//+==")
        );
        assert_eq!(
            header(&signed, "authorization"),
            Some(BOTOCORE_AUTHORIZATION_SESSION)
        );
    }

    const BOTOCORE_AUTHORIZATION_LONG_LIVED: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240102/us-west-2/xray/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amzn-xray-timestamp, Signature=122c742847f3ae3b14f3d33760b5db981a03e87de0d4dee245574e458efa5037";
    const BOTOCORE_AUTHORIZATION_SESSION: &str = "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20240102/eu-central-1/xray/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amzn-xray-timestamp, Signature=8c668ee7265660cc18425cd532e9acc8cd5bf3577d2da0b2ec4959c722d1cb6c";

    #[test]
    fn signed_headers_cover_host_date_and_the_given_headers() {
        let credentials = Credentials::new("AKID", "SECRET", Some("TOKEN".to_owned()));
        let headers = [("Content-Type", "application/json"), ("User-Agent", "x")];
        let request = RequestToSign {
            method: "POST",
            url: "https://xray.us-east-1.amazonaws.com/TraceSegments",
            headers: &headers,
            body: b"{}",
        };
        let signed = Signer::new("us-east-1", XRAY_SERVICE)
            .sign(&request, &credentials, fixed_time())
            .unwrap();
        let authorization = header(&signed, "authorization").unwrap();
        assert!(authorization.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKID/20240102/us-east-1/xray/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
        ), "{authorization}");
    }

    #[test]
    fn the_content_hash_header_is_added_on_request() {
        let credentials = Credentials::new("AKID", "SECRET", None);
        let request = RequestToSign {
            method: "GET",
            url: "https://example.amazonaws.com/",
            headers: &[],
            body: b"",
        };
        let signed = Signer::new("us-east-1", "s3")
            .with_content_sha256_header(true)
            .sign(&request, &credentials, fixed_time())
            .unwrap();
        assert_eq!(
            header(&signed, "x-amz-content-sha256"),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert!(
            header(&signed, "authorization")
                .unwrap()
                .contains("x-amz-content-sha256")
        );
    }

    #[test]
    fn a_bad_url_is_an_error_naming_it() {
        let credentials = Credentials::new("AKID", "SECRET", None);
        let request = RequestToSign {
            method: "POST",
            url: "not a url",
            headers: &[],
            body: b"",
        };
        let error = Signer::new("us-east-1", XRAY_SERVICE)
            .sign(&request, &credentials, fixed_time())
            .unwrap_err();
        assert!(error.to_string().contains("not a url"), "{error}");
    }
}

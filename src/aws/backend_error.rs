//! Why a call to X-Ray failed, sorted into the classes the telemetry record counts
//! (`BackendConnectionErrors`: timeout, refused, 4xx, 5xx, unknown host, other).

use super::credentials::CredentialsError;
use super::signing::SigningError;
pub use crate::stats::ErrorClass;
use std::fmt;
use std::io;

/// A failed call to X-Ray.
#[derive(Debug)]
pub enum BackendError {
    /// X-Ray answered with a status outside 2xx.
    Http {
        /// The HTTP status.
        status: u16,
        /// From the `x-amzn-ErrorType` header or the body's `__type` / `code`, without
        /// the namespace (`InvalidRequestException`).
        error_type: Option<String>,
        /// The JSON body's `message` (empty when it has none), or the start of a body
        /// that is not JSON.
        message: String,
        /// X-Ray's `x-amzn-RequestId` header, empty when absent.
        request_id: String,
        /// Why a non-empty body was not JSON, in the words of Go's JSON decoder.
        undecodable: Option<String>,
    },
    /// The request did not get an answer.
    Transport {
        /// What kind of failure.
        class: ErrorClass,
        /// The underlying error.
        detail: String,
    },
    /// No credentials to sign with.
    Credentials(CredentialsError),
    /// The request could not be signed.
    Signing(SigningError),
}

/// How much of a non-JSON error body goes into the message.
const MAX_MESSAGE_CHARS: usize = 512;

impl BackendError {
    /// The telemetry class of this failure.
    pub fn class(&self) -> ErrorClass {
        match self {
            BackendError::Http { status, .. } => match status {
                400..=499 => ErrorClass::Http4xx,
                500..=599 => ErrorClass::Http5xx,
                _ => ErrorClass::Other,
            },
            BackendError::Transport { class, .. } => *class,
            BackendError::Credentials(_) | BackendError::Signing(_) => ErrorClass::Other,
        }
    }

    /// Builds the error for a non-2xx answer from its status, `x-amzn-ErrorType` and
    /// `x-amzn-RequestId` headers and body.
    pub fn from_response(
        status: u16,
        error_type_header: Option<&str>,
        request_id: Option<&str>,
        body: &[u8],
    ) -> Self {
        let parsed = serde_json::from_slice::<serde_json::Value>(body);
        let undecodable = match &parsed {
            Err(error) if !body.iter().all(|b| is_json_space(*b)) => {
                Some(go_json_error(body, error))
            }
            _ => None,
        };
        let json = parsed.ok();
        let json_text = |keys: &[&str]| {
            keys.iter().find_map(|key| {
                json.as_ref()?
                    .get(key)?
                    .as_str()
                    .filter(|text| !text.is_empty())
                    .map(str::to_owned)
            })
        };
        let error_type = error_type_header
            .filter(|header| !header.is_empty())
            .map(str::to_owned)
            // Go's decoder, as the SDK uses it, takes `code` before `__type`.
            .or_else(|| json_text(&["code", "Code", "__type"]))
            .map(|raw| short_error_type(&raw).to_owned());
        let message = if undecodable.is_some() {
            let text = String::from_utf8_lossy(body);
            text.trim().chars().take(MAX_MESSAGE_CHARS).collect()
        } else {
            json_text(&["message", "Message"]).unwrap_or_default()
        };
        BackendError::Http {
            status,
            error_type,
            message,
            request_id: request_id.unwrap_or_default().to_owned(),
            undecodable,
        }
    }

    /// Sorts a ureq failure of `method url` into its telemetry class, described as Go's
    /// HTTP client describes it (`Post "https://…": dial tcp …: connect: connection refused`).
    pub fn from_transport(error: ureq::Error, method: &str, url: &str) -> Self {
        let class = classify_transport(&error);
        let address = super::endpoint::EndpointUrl::parse(url).ok();
        let cause = match (class, &address) {
            (ErrorClass::Timeout, _) => {
                "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                    .to_owned()
            }
            (ErrorClass::ConnectionRefused, Some(address)) => format!(
                "dial tcp {}:{}: connect: connection refused",
                address.host, address.port
            ),
            (ErrorClass::UnknownHost, Some(address)) => {
                format!("dial tcp: lookup {}: no such host", address.host)
            }
            _ => error.to_string(),
        };
        BackendError::Transport {
            class,
            detail: format!("{} \"{url}\": {cause}", go_method(method)),
        }
    }

    /// This failure as the AWS SDK for Go v2 words it for `operation` of X-Ray, which the
    /// original logs after `Sending segment batch failed with: ` — for example
    /// `operation error XRay: PutTraceSegments, https response error StatusCode: 400,
    /// RequestID: 2f1c…, InvalidRequestException: …`. The SDK's own retries (its
    /// `exceeded maximum number of attempts, 2, ` part) are not the relay's, so that part
    /// is not written.
    pub fn sdk_text(&self, operation: &str) -> String {
        let cause = match self {
            BackendError::Http {
                status,
                error_type,
                message,
                request_id,
                undecodable,
            } => {
                let api = match (undecodable, error_type.as_deref()) {
                    (Some(why), _) => {
                        format!("deserialization failed, failed to decode response body, {why}")
                    }
                    // The exceptions X-Ray's model lists for both upload operations.
                    (None, Some(code))
                        if code.eq_ignore_ascii_case("InvalidRequestException")
                            || code.eq_ignore_ascii_case("ThrottledException") =>
                    {
                        let code = if code.eq_ignore_ascii_case("ThrottledException") {
                            "ThrottledException"
                        } else {
                            "InvalidRequestException"
                        };
                        format!("{code}: {message}")
                    }
                    (None, code) => {
                        let code = code.unwrap_or("UnknownError");
                        let message = if message.is_empty() { code } else { message };
                        format!("api error {code}: {message}")
                    }
                };
                format!("https response error StatusCode: {status}, RequestID: {request_id}, {api}")
            }
            BackendError::Transport { detail, .. } => {
                format!(
                    "https response error StatusCode: 0, RequestID: , request send failed, {detail}"
                )
            }
            BackendError::Credentials(error) => {
                format!(
                    "get identity: get credentials: failed to refresh cached credentials, {error}"
                )
            }
            BackendError::Signing(error) => format!("sign request: {error}"),
        };
        format!("operation error XRay: {operation}, {cause}")
    }
}

/// Go's `url.Error` names the method as `Post`, `Get`.
fn go_method(method: &str) -> String {
    let mut chars = method.chars();
    match chars.next() {
        Some(first) => {
            first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
        }
        None => String::new(),
    }
}

fn is_json_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// What Go's `encoding/json` says about a body that is not JSON, for the cases an
/// error page produces (HTML, plain text, a cut-off document); otherwise serde's words.
fn go_json_error(body: &[u8], error: &serde_json::Error) -> String {
    let first = body.iter().copied().find(|b| !is_json_space(*b));
    match first {
        Some(byte)
            if !matches!(
                byte,
                b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
            ) =>
        {
            let shown = match byte {
                b'\'' => "\\'".to_owned(),
                0x20..=0x7e => char::from(byte).to_string(),
                0x00..=0x1f | 0x7f => format!("\\x{byte:02x}"),
                _ => char::from(byte).to_string(),
            };
            format!("invalid character '{shown}' looking for beginning of value")
        }
        _ if error.is_eof() => "unexpected EOF".to_owned(),
        _ => error.to_string(),
    }
}

/// `InvalidRequestException:http://internal…` or `com.amazonaws.xray#Throttled` → the name.
fn short_error_type(raw: &str) -> &str {
    let without_uri = raw.split(':').next().unwrap_or(raw);
    without_uri.rsplit('#').next().unwrap_or(without_uri).trim()
}

fn classify_transport(error: &ureq::Error) -> ErrorClass {
    match error {
        ureq::Error::Timeout(_) => ErrorClass::Timeout,
        ureq::Error::HostNotFound => ErrorClass::UnknownHost,
        ureq::Error::Io(io_error) => classify_io(io_error),
        _ => ErrorClass::Other,
    }
}

fn classify_io(error: &io::Error) -> ErrorClass {
    match error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ErrorClass::Timeout,
        io::ErrorKind::ConnectionRefused => ErrorClass::ConnectionRefused,
        // std reports getaddrinfo failures with an uncategorised kind; its message is stable.
        _ if error.to_string().contains("failed to lookup address") => ErrorClass::UnknownHost,
        _ => ErrorClass::Other,
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Http {
                status,
                error_type,
                message,
                ..
            } => {
                write!(f, "X-Ray answered HTTP {status}")?;
                if let Some(error_type) = error_type {
                    write!(f, " {error_type}")?;
                }
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            BackendError::Transport { class, detail } => {
                write!(f, "request to X-Ray failed ({class:?}): {detail}")
            }
            BackendError::Credentials(error) => write!(f, "{error}"),
            BackendError::Signing(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for BackendError {}

#[cfg(test)]
mod tests {
    use super::*;

    const UPLOAD_URL: &str = "https://xray.us-east-1.amazonaws.com/TraceSegments";

    /// The original 3.6.6's `Sending segment batch failed with: …` texts (aws-sdk-go-v2
    /// v1.38 / smithy-go v1.22 error formatting), without its SDK-retry part.
    #[test]
    fn upload_failures_are_worded_as_the_aws_sdk_for_go_words_them() {
        let text = |status, header, body: &[u8]| {
            BackendError::from_response(status, header, Some("5f3a-11"), body)
                .sdk_text("PutTraceSegments")
        };
        assert_eq!(
            text(400, None, br#"{"__type":"com.amazonaws.xray#InvalidRequestException","message":"Invalid segment"}"#),
            "operation error XRay: PutTraceSegments, https response error StatusCode: 400, \
             RequestID: 5f3a-11, InvalidRequestException: Invalid segment"
        );
        assert_eq!(
            text(
                429,
                Some("ThrottledException:http://internal.amazon.com/"),
                br#"{"message":"Rate exceeded"}"#
            ),
            "operation error XRay: PutTraceSegments, https response error StatusCode: 429, \
             RequestID: 5f3a-11, ThrottledException: Rate exceeded"
        );
        // Codes the model does not list are smithy's generic API error.
        assert_eq!(
            text(403, None, br#"{"message":"The security token included in the request is invalid.","__type":"UnrecognizedClientException"}"#),
            "operation error XRay: PutTraceSegments, https response error StatusCode: 403, \
             RequestID: 5f3a-11, api error UnrecognizedClientException: The security token \
             included in the request is invalid."
        );
        // No code and no message: `UnknownError`, which is also the message.
        assert_eq!(
            text(503, None, b""),
            "operation error XRay: PutTraceSegments, https response error StatusCode: 503, \
             RequestID: 5f3a-11, api error UnknownError: UnknownError"
        );
        // A body that is not JSON fails the SDK's error decoding.
        assert_eq!(
            text(502, None, b"<html>Bad Gateway</html>"),
            "operation error XRay: PutTraceSegments, https response error StatusCode: 502, \
             RequestID: 5f3a-11, deserialization failed, failed to decode response body, \
             invalid character '<' looking for beginning of value"
        );
        let no_id = BackendError::from_response(400, Some("InvalidRequestException"), None, b"{}");
        assert_eq!(
            no_id.sdk_text("PutTelemetryRecords"),
            "operation error XRay: PutTelemetryRecords, https response error StatusCode: 400, \
             RequestID: , InvalidRequestException: "
        );
    }

    #[test]
    fn send_failures_are_worded_as_go_s_http_client_words_them() {
        let text = |error| {
            BackendError::from_transport(error, "POST", "http://localhost:4566/TraceSegments")
                .sdk_text("PutTraceSegments")
        };
        let prefix = "operation error XRay: PutTraceSegments, https response error StatusCode: 0, \
                      RequestID: , request send failed, Post \"http://localhost:4566/TraceSegments\": ";
        assert_eq!(
            text(ureq::Error::Io(io::Error::from(
                io::ErrorKind::ConnectionRefused
            ))),
            format!("{prefix}dial tcp localhost:4566: connect: connection refused")
        );
        assert_eq!(
            text(ureq::Error::HostNotFound),
            format!("{prefix}dial tcp: lookup localhost: no such host")
        );
        assert_eq!(
            text(ureq::Error::Timeout(ureq::Timeout::Global)),
            format!(
                "{prefix}context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )
        );
    }

    #[test]
    fn the_request_id_header_is_kept() {
        let BackendError::Http { request_id, .. } =
            BackendError::from_response(400, None, Some("abc-123"), b"{}")
        else {
            panic!("not an HTTP error");
        };
        assert_eq!(request_id, "abc-123");
    }

    #[test]
    fn http_statuses_map_to_4xx_5xx_or_other() {
        assert_eq!(
            BackendError::from_response(400, None, None, b"").class(),
            ErrorClass::Http4xx
        );
        assert_eq!(
            BackendError::from_response(429, None, None, b"").class(),
            ErrorClass::Http4xx
        );
        assert_eq!(
            BackendError::from_response(503, None, None, b"").class(),
            ErrorClass::Http5xx
        );
        assert_eq!(
            BackendError::from_response(302, None, None, b"").class(),
            ErrorClass::Other
        );
    }

    #[test]
    fn error_type_comes_from_the_header_first_then_the_body() {
        let body =
            br#"{"__type":"com.amazonaws.xray#InvalidRequestException","message":"bad segment"}"#;
        let BackendError::Http {
            error_type,
            message,
            ..
        } = BackendError::from_response(400, None, None, body)
        else {
            panic!("not an HTTP error");
        };
        assert_eq!(error_type.as_deref(), Some("InvalidRequestException"));
        assert_eq!(message, "bad segment");

        let from_header = BackendError::from_response(
            400,
            Some("ThrottledException:http://internal.amazon.com/coral/com.amazonaws.xray/"),
            None,
            body,
        );
        assert_eq!(
            from_header.to_string(),
            "X-Ray answered HTTP 400 ThrottledException: bad segment"
        );

        let coded = BackendError::from_response(
            403,
            None,
            None,
            br#"{"code":"AccessDenied","Message":"no"}"#,
        );
        assert_eq!(
            coded.to_string(),
            "X-Ray answered HTTP 403 AccessDenied: no"
        );
    }

    #[test]
    fn non_json_bodies_become_a_bounded_message() {
        let error = BackendError::from_response(502, None, None, b"  <html>Bad Gateway</html>\n");
        assert_eq!(
            error.to_string(),
            "X-Ray answered HTTP 502: <html>Bad Gateway</html>"
        );
        let long = vec![b'x'; 5000];
        let BackendError::Http { message, .. } =
            BackendError::from_response(500, None, None, &long)
        else {
            panic!("not an HTTP error");
        };
        assert_eq!(message.len(), MAX_MESSAGE_CHARS);
        assert_eq!(
            BackendError::from_response(500, None, None, b"").to_string(),
            "X-Ray answered HTTP 500"
        );
    }

    #[test]
    fn transport_errors_are_classified() {
        let class = |error| BackendError::from_transport(error, "POST", UPLOAD_URL).class();
        assert_eq!(
            class(ureq::Error::Timeout(ureq::Timeout::Global)),
            ErrorClass::Timeout
        );
        assert_eq!(class(ureq::Error::HostNotFound), ErrorClass::UnknownHost);
        assert_eq!(
            class(ureq::Error::Io(io::Error::from(
                io::ErrorKind::ConnectionRefused
            ))),
            ErrorClass::ConnectionRefused
        );
        assert_eq!(
            class(ureq::Error::Io(io::Error::from(io::ErrorKind::TimedOut))),
            ErrorClass::Timeout
        );
        assert_eq!(
            class(ureq::Error::Io(io::Error::other(
                "failed to lookup address information: Name or service not known"
            ))),
            ErrorClass::UnknownHost
        );
        assert_eq!(
            class(ureq::Error::Io(io::Error::other("reset"))),
            ErrorClass::Other
        );
        assert_eq!(class(ureq::Error::ConnectionFailed), ErrorClass::Other);
    }

    #[test]
    fn credentials_and_signing_failures_are_other() {
        let error = BackendError::Credentials(CredentialsError::NotFound {
            tried: vec!["environment"],
        });
        assert_eq!(error.class(), ErrorClass::Other);
        assert!(error.to_string().contains("no AWS credentials"));
        let error = BackendError::Signing(SigningError {
            message: "bad".to_owned(),
        });
        assert_eq!(error.class(), ErrorClass::Other);
    }
}

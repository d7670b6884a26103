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
        /// The body's `message`, or the start of the body as text.
        message: String,
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

    /// Builds the error for a non-2xx answer from its status, `x-amzn-ErrorType` header
    /// and body.
    pub fn from_response(status: u16, error_type_header: Option<&str>, body: &[u8]) -> Self {
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
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
            .or_else(|| json_text(&["__type", "code", "Code"]))
            .map(|raw| short_error_type(&raw).to_owned());
        let message = json_text(&["message", "Message"]).unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            text.trim().chars().take(MAX_MESSAGE_CHARS).collect()
        });
        BackendError::Http {
            status,
            error_type,
            message,
        }
    }

    /// Sorts a ureq failure into its telemetry class.
    pub fn from_transport(error: ureq::Error) -> Self {
        let class = classify_transport(&error);
        BackendError::Transport {
            class,
            detail: error.to_string(),
        }
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

    #[test]
    fn http_statuses_map_to_4xx_5xx_or_other() {
        assert_eq!(
            BackendError::from_response(400, None, b"").class(),
            ErrorClass::Http4xx
        );
        assert_eq!(
            BackendError::from_response(429, None, b"").class(),
            ErrorClass::Http4xx
        );
        assert_eq!(
            BackendError::from_response(503, None, b"").class(),
            ErrorClass::Http5xx
        );
        assert_eq!(
            BackendError::from_response(302, None, b"").class(),
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
        } = BackendError::from_response(400, None, body)
        else {
            panic!("not an HTTP error");
        };
        assert_eq!(error_type.as_deref(), Some("InvalidRequestException"));
        assert_eq!(message, "bad segment");

        let from_header = BackendError::from_response(
            400,
            Some("ThrottledException:http://internal.amazon.com/coral/com.amazonaws.xray/"),
            body,
        );
        assert_eq!(
            from_header.to_string(),
            "X-Ray answered HTTP 400 ThrottledException: bad segment"
        );

        let coded =
            BackendError::from_response(403, None, br#"{"code":"AccessDenied","Message":"no"}"#);
        assert_eq!(
            coded.to_string(),
            "X-Ray answered HTTP 403 AccessDenied: no"
        );
    }

    #[test]
    fn non_json_bodies_become_a_bounded_message() {
        let error = BackendError::from_response(502, None, b"  <html>Bad Gateway</html>\n");
        assert_eq!(
            error.to_string(),
            "X-Ray answered HTTP 502: <html>Bad Gateway</html>"
        );
        let long = vec![b'x'; 5000];
        let BackendError::Http { message, .. } = BackendError::from_response(500, None, &long)
        else {
            panic!("not an HTTP error");
        };
        assert_eq!(message.len(), MAX_MESSAGE_CHARS);
        assert_eq!(
            BackendError::from_response(500, None, b"").to_string(),
            "X-Ray answered HTTP 500"
        );
    }

    #[test]
    fn transport_errors_are_classified() {
        let class = |error| BackendError::from_transport(error).class();
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

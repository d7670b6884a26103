//! Writing answers: status line, headers and body framing, each write within a deadline.

use smol::io::{AsyncWrite, AsyncWriteExt};
use std::io;
use std::time::Duration;

/// How a response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// No body at all (`HEAD`, 204, 304); headers pass as they are.
    NoBody,
}

/// A complete answer made by the relay itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// `Content-Type` of the body.
    pub content_type: &'static str,
    /// Further headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// A JSON answer.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// An error in X-Ray's own shape, `{"__type": kind, "message": …}` with the
    /// `x-amzn-ErrorType` header, so SDKs report it like any X-Ray error.
    pub fn error(status: u16, kind: &'static str, message: &str) -> Answer {
        let body = serde_json::json!({ "__type": kind, "message": message }).to_string();
        let mut answer = Answer::json(status, body);
        answer.headers.push(("x-amzn-ErrorType", kind.to_owned()));
        answer
    }

    /// A 503 in X-Ray's shape that asks the client to try again in a second: the relay is
    /// busy, not broken.
    pub fn busy(message: &str) -> Answer {
        Answer::error(503, "ServiceUnavailableException", message).with_header("Retry-After", "1")
    }

    /// A refusal Go's server (the original's) writes itself, before any handler runs: plain
    /// text `{status} {reason}: {text}` (`400 Bad Request: malformed Host header`).
    pub fn go_server_error(status: u16, text: &str) -> Answer {
        let reason = reason(status).unwrap_or("status code");
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: format!("{status} {reason}: {text}").into_bytes(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    /// The bytes on the wire.
    pub fn encode(&self, keep_alive: bool) -> Vec<u8> {
        let mut headers: Vec<(&str, &[u8])> = vec![("Content-Type", self.content_type.as_bytes())];
        headers.extend(self.headers.iter().map(|(n, v)| (*n, v.as_bytes())));
        let mut bytes = encode_head(
            self.status,
            headers.into_iter(),
            Framing::Length(self.body.len() as u64),
            keep_alive,
        );
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Status line and headers, then the framing and connection headers, then the blank line.
pub fn encode_head<'a>(
    status: u16,
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    framing: Framing,
    keep_alive: bool,
) -> Vec<u8> {
    let mut head = match reason(status) {
        Some(reason) => format!("HTTP/1.1 {status} {reason}\r\n"),
        // What Go's server (the original's) writes for a status it has no phrase for.
        None => format!("HTTP/1.1 {status:03} status code {status}\r\n"),
    }
    .into_bytes();
    for (name, value) in headers {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(length) => {
            head.extend_from_slice(format!("Content-Length: {length}\r\n").as_bytes())
        }
        Framing::Chunked => head.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::NoBody => {}
    }
    if !keep_alive {
        head.extend_from_slice(b"Connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// `answer` (status line first) for a request of HTTP/1.`minor`: Go's server, the
/// original's, answers an HTTP/1.0 request with an `HTTP/1.0` status line.
pub fn for_version(mut answer: Vec<u8>, minor: u8) -> Vec<u8> {
    if minor == 0 && answer.starts_with(b"HTTP/1.1 ") {
        answer[7] = b'0';
    }
    answer
}

/// Writes all of `bytes` within `timeout`; a timeout is [`io::ErrorKind::TimedOut`].
pub async fn write_within<W: AsyncWrite + Unpin>(
    io: &mut W,
    bytes: &[u8],
    timeout: Duration,
) -> io::Result<()> {
    let write = async {
        io.write_all(bytes).await?;
        io.flush().await
    };
    smol::future::or(write, async {
        smol::Timer::after(timeout).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("client did not read the answer within {timeout:?}"),
        ))
    })
    .await
}

/// One chunk of a chunked body (an empty `data` is the last chunk).
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut bytes = format!("{:x}\r\n", data.len()).into_bytes();
    bytes.extend_from_slice(data);
    bytes.extend_from_slice(b"\r\n");
    bytes
}

/// The reason phrase of a status: Go's `http.StatusText`, which the original's server writes
/// (`413 Request Entity Too Large` rather than RFC 9110's `Content Too Large`, for one).
pub fn reason(status: u16) -> Option<&'static str> {
    Some(match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Entity",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_1_0_request_gets_an_http_1_0_status_line() {
        let answer = Answer::json(200, "{}").encode(false);
        assert!(for_version(answer.clone(), 0).starts_with(b"HTTP/1.0 200 OK\r\n"));
        assert_eq!(for_version(answer.clone(), 1), answer);
    }

    #[test]
    fn an_error_answer_is_x_ray_shaped() {
        let bytes = Answer::busy("no \"credentials\"").encode(false);
        let text = String::from_utf8(bytes).unwrap();
        let body = r#"{"__type":"ServiceUnavailableException","message":"no \"credentials\""}"#;
        assert_eq!(
            text,
            format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nx-amzn-ErrorType: ServiceUnavailableException\r\nRetry-After: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        );
    }

    /// Status lines as Go's server writes them (the original forwards X-Ray's status through
    /// it): every status Go knows with its phrase, any other as `status code N`.
    #[test]
    fn status_lines_are_gos() {
        let line = |status| {
            let head = encode_head(status, std::iter::empty(), Framing::NoBody, true);
            String::from_utf8(head)
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .to_owned()
        };
        for (status, expected) in [
            (200, "HTTP/1.1 200 OK"),
            (400, "HTTP/1.1 400 Bad Request"),
            (413, "HTTP/1.1 413 Request Entity Too Large"),
            (414, "HTTP/1.1 414 Request URI Too Long"),
            (418, "HTTP/1.1 418 I'm a teapot"),
            (501, "HTTP/1.1 501 Not Implemented"),
            (505, "HTTP/1.1 505 HTTP Version Not Supported"),
            (511, "HTTP/1.1 511 Network Authentication Required"),
            (299, "HTTP/1.1 299 status code 299"),
            (599, "HTTP/1.1 599 status code 599"),
        ] {
            assert_eq!(line(status), expected);
        }
        let known = (100..=599).filter(|&s| reason(s).is_some()).count();
        assert_eq!(known, 62);
    }

    #[test]
    fn chunks_and_the_last_chunk() {
        assert_eq!(chunk(b"hello, world!!!!!"), b"11\r\nhello, world!!!!!\r\n");
        assert_eq!(chunk(b""), b"0\r\n\r\n");
        let head = encode_head(200, std::iter::empty(), Framing::Chunked, true);
        assert_eq!(
            head,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
    }
}

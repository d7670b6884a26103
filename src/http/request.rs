//! Reading one request from a connection: the head with httparse, within a size, a header
//! count and a deadline; then the body, by its `Content-Length` (or chunked, in
//! [`super::chunked`], for the receivers that take it).

use smol::io::{AsyncRead, AsyncReadExt};
use std::io;
use std::time::{Duration, Instant};

/// The most headers any limit may allow (the size of the parser's stack array).
pub const MAX_HEADERS_CAP: usize = 128;

/// How much of the buffer is allocated up front; it grows to the head limit when needed.
const INITIAL_BUFFER: usize = 4096;

/// The read buffer grows to at most this much while a skipped body passes through it.
const SKIP_BUFFER_BYTES: usize = 16 * 1024;

/// The limits one request head is read within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Bytes of request line and headers together.
    pub max_bytes: usize,
    /// Header lines (at most [`MAX_HEADERS_CAP`]).
    pub max_headers: usize,
    /// From the head's first byte to its last.
    pub timeout: Duration,
}

/// A request head as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The method, e.g. `POST`.
    pub method: String,
    /// Path and query. An absolute-form target (`http://host/path`) is reduced to its path:
    /// the host it names is never used.
    pub target: String,
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version: u8,
    /// The headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body length (0 without `Content-Length`).
    pub content_length: u64,
    /// The body is sent with `Transfer-Encoding: chunked` (and has no `Content-Length`).
    pub chunked: bool,
    /// Whether the client wants the connection kept open after the answer.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// Header names listed in `Connection` (hop-by-hop), lowercase.
    pub connection_names: Vec<String>,
}

impl Head {
    /// The path without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The first value of header `name`, any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Why no request head was read.
#[derive(Debug)]
pub enum HeadError {
    /// The client closed the connection or it failed; there is nobody to answer.
    Closed,
    /// Not a byte of a request arrived in the waiting time.
    Idle,
    /// The head started but did not finish within its deadline.
    Timeout,
    /// The head is larger than allowed.
    TooLarge,
    /// The head has more headers than allowed.
    TooManyHeaders,
    /// Not an HTTP/1.x request, or a malformed one; says what is wrong.
    Malformed(String),
    /// The body is framed by a `Transfer-Encoding` other than a single `chunked`.
    LengthRequired,
    /// A well-formed HTTP version other than 1.x (`HTTP/2.0`, `HTTP/0.9`): Go's server, and
    /// so the original, answers 505.
    VersionNotSupported,
}

/// Why a body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// It did not arrive in time.
    Timeout,
    /// The client closed the connection or it failed before the body was complete.
    Closed,
    /// A chunked body grew past the limit it is read within.
    TooLarge,
    /// A chunked body's framing is broken; says where.
    Malformed(String),
    /// A chunked body grew past the room its reader was given.
    NoRoom,
}

/// A connection's read buffer: bytes received and not yet used (a pipelined next request
/// stays here for the next call).
#[derive(Debug, Default)]
pub struct Reader {
    buffer: Vec<u8>,
    start: usize,
    end: usize,
}

impl Reader {
    /// An empty reader; the buffer is allocated on first use.
    pub fn new() -> Reader {
        Reader::default()
    }

    /// Reads the next request head. Waits up to `wait` for its first byte (the idle time), then
    /// up to `limits.timeout` for the rest.
    pub async fn head<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        limits: &HeadLimits,
        wait: Duration,
    ) -> Result<Head, HeadError> {
        let max_headers = limits.max_headers.clamp(1, MAX_HEADERS_CAP);
        let mut started = self.end > self.start;
        let mut deadline = Instant::now() + if started { limits.timeout } else { wait };
        let mut parse_needed = started;
        loop {
            if parse_needed {
                if let Some((head, used)) = parse(&self.buffer[self.start..self.end], max_headers)?
                {
                    self.start += used;
                    return Ok(head);
                }
                parse_needed = false;
            }
            if self.end - self.start >= limits.max_bytes {
                return Err(HeadError::TooLarge);
            }
            self.make_room(limits.max_bytes);
            let read = within(deadline, io.read(&mut self.buffer[self.end..])).await;
            let count = match read {
                None if started => return Err(HeadError::Timeout),
                None => return Err(HeadError::Idle),
                Some(Ok(0)) | Some(Err(_)) => return Err(HeadError::Closed),
                Some(Ok(count)) => count,
            };
            if !started {
                started = true;
                deadline = Instant::now() + limits.timeout;
                // Parse the first bytes at once: garbage is refused without waiting for a line.
                parse_needed = true;
            }
            // A head can only complete, or a line fail, where a line ends: parsing on every
            // byte of a slow client would cost quadratic time.
            parse_needed |= self.buffer[self.end..self.end + count].contains(&b'\n');
            self.end += count;
        }
    }

    /// Reads a body of `length` bytes, which must all arrive within `timeout`.
    pub async fn body<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        length: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, BodyError> {
        let buffered = (self.end - self.start).min(length);
        let mut body = Vec::with_capacity(length);
        body.extend_from_slice(&self.buffer[self.start..self.start + buffered]);
        self.start += buffered;
        if body.len() == length {
            return Ok(body);
        }
        body.resize(length, 0);
        let mut filled = buffered;
        let deadline = Instant::now() + timeout;
        while filled < length {
            match within(deadline, io.read(&mut body[filled..])).await {
                None => return Err(BodyError::Timeout),
                Some(Ok(0)) | Some(Err(_)) => return Err(BodyError::Closed),
                Some(Ok(count)) => filled += count,
            }
        }
        Ok(body)
    }

    /// Reads a body of `length` bytes and drops it, through the connection's own buffer: a
    /// request refused before its body was read can still be answered on a connection kept
    /// open, at no memory per connection.
    pub async fn skip<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        length: usize,
        timeout: Duration,
    ) -> Result<(), BodyError> {
        let deadline = Instant::now() + timeout;
        let mut left = length;
        loop {
            let take = left.min(self.end - self.start);
            self.start += take;
            left -= take;
            if left == 0 {
                return Ok(());
            }
            self.fill(io, SKIP_BUFFER_BYTES, deadline).await?;
        }
    }

    /// Bytes received beyond what was used so far.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// The bytes received and not used yet.
    pub(crate) fn unread(&self) -> &[u8] {
        &self.buffer[self.start..self.end]
    }

    /// Marks `count` bytes of [`Reader::unread`] as used.
    pub(crate) fn consume(&mut self, count: usize) {
        self.start += count.min(self.end - self.start);
    }

    /// Reads more into the buffer (at most `max_bytes` held) by `deadline`.
    pub(crate) async fn fill<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        max_bytes: usize,
        deadline: Instant,
    ) -> Result<(), BodyError> {
        self.make_room(max_bytes);
        if self.end >= self.buffer.len() {
            return Err(BodyError::Malformed(format!(
                "a chunk line longer than {max_bytes} bytes"
            )));
        }
        match within(deadline, io.read(&mut self.buffer[self.end..])).await {
            None => Err(BodyError::Timeout),
            Some(Ok(0)) | Some(Err(_)) => Err(BodyError::Closed),
            Some(Ok(count)) => {
                self.end += count;
                Ok(())
            }
        }
    }

    /// Makes space to read into without letting the buffer grow past `max_bytes` (or the
    /// initial size).
    fn make_room(&mut self, max_bytes: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end < self.buffer.len() {
            return;
        }
        if self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            return;
        }
        let grown = (self.buffer.len() * 2)
            .max(INITIAL_BUFFER)
            .min(max_bytes.max(INITIAL_BUFFER));
        self.buffer.resize(grown.max(self.end + 1), 0);
    }
}

/// Runs `read` until `deadline`; `None` if the deadline came first.
pub(crate) async fn within<T>(
    deadline: Instant,
    read: impl std::future::Future<Output = io::Result<T>>,
) -> Option<io::Result<T>> {
    smol::future::or(async { Some(read.await) }, async {
        smol::Timer::at(deadline).await;
        None
    })
    .await
}

/// Parses a complete head at the start of `bytes`: `Ok(None)` while it is incomplete.
fn parse(bytes: &[u8], max_headers: usize) -> Result<Option<(Head, usize)>, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS_CAP];
    let mut request = httparse::Request::new(&mut slots[..max_headers]);
    match request.parse(bytes) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(used)) => Ok(Some((head_of(&request)?, used))),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooManyHeaders),
        Err(httparse::Error::Version) => other_version(bytes, max_headers),
        Err(error) => Err(HeadError::Malformed(format!(
            "not an HTTP/1.x request: {error}"
        ))),
    }
}

/// A request line whose version httparse does not take (it knows 1.0 and 1.1 only), judged
/// as Go's server judges it: `HTTP/x.y` with one digit each is well-formed; major version 1
/// is served as HTTP/1.1, any other is answered 505; anything else is malformed.
fn other_version(bytes: &[u8], max_headers: usize) -> Result<Option<(Head, usize)>, HeadError> {
    // httparse, like Go, skips empty lines before the request line.
    let start = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(bytes.len());
    let rest = &bytes[start..];
    let Some(end) = rest.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
    let malformed = || HeadError::Malformed("malformed HTTP version".to_owned());
    // Go takes the version as everything after the second space.
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] = *version else {
        return Err(malformed());
    };
    if !major.is_ascii_digit() || !minor.is_ascii_digit() {
        return Err(malformed());
    }
    if (method, target, version) == (b"PRI", b"*", b"HTTP/2.0") {
        // HTTP/2's preface, which Go lets through to the handler: its target is no path.
        return Err(HeadError::Malformed(
            "the request target must be a path".to_owned(),
        ));
    }
    if major != b'1' {
        return Err(HeadError::VersionNotSupported);
    }
    // HTTP/1.2 to 1.9: parsed again as 1.1, which is what Go serves them as.
    let mut as_one_one = bytes.to_vec();
    as_one_one[start + line.len() - 1] = b'1';
    parse(&as_one_one, max_headers)
}

fn head_of(request: &httparse::Request<'_, '_>) -> Result<Head, HeadError> {
    let malformed = |message: String| HeadError::Malformed(message);
    let method = request.method.unwrap_or_default().to_owned();
    let target = origin_form(request.path.unwrap_or_default())
        .ok_or_else(|| malformed("the request target must be a path".to_owned()))?;
    let version = request.version.unwrap_or(1);
    let mut head = Head {
        method,
        target,
        version,
        headers: Vec::with_capacity(request.headers.len()),
        content_length: 0,
        chunked: false,
        keep_alive: version == 1,
        expect_continue: false,
        connection_names: Vec::new(),
    };
    let mut length: Option<u64> = None;
    for header in request.headers.iter() {
        let value = std::str::from_utf8(header.value)
            .map_err(|_| malformed(format!("header {} is not UTF-8", header.name)))?;
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let parsed = value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|_| value.trim().bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| malformed(format!("bad Content-Length {value:?}")))?;
            if length.is_some_and(|known| known != parsed) {
                return Err(malformed("conflicting Content-Length headers".to_owned()));
            }
            length = Some(parsed);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only a single `chunked`: anything stacked on it would be ours to undo.
            if head.chunked || !value.trim().eq_ignore_ascii_case("chunked") {
                return Err(HeadError::LengthRequired);
            }
            head.chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(|t| t.trim().to_ascii_lowercase()) {
                match token.as_str() {
                    "close" => head.keep_alive = false,
                    // HTTP/1.0 keep-alive is not offered: its clients get one answer each.
                    "keep-alive" | "" => {}
                    _ => head.connection_names.push(token),
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue |= value.trim().eq_ignore_ascii_case("100-continue");
        }
        head.headers.push((name.to_owned(), value.to_owned()));
    }
    if head.chunked && length.is_some() {
        // Two framings disagree about where the body ends (request smuggling).
        return Err(malformed(
            "both Content-Length and Transfer-Encoding: chunked".to_owned(),
        ));
    }
    head.content_length = length.unwrap_or(0);
    Ok(head)
}

/// `/path?q` as is; `http://host/path?q` → `/path?q`; anything else is refused.
fn origin_form(target: &str) -> Option<String> {
    if target.starts_with('/') {
        return Some(target.to_owned());
    }
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &target[7..]
    } else if lower.starts_with("https://") {
        &target[8..]
    } else {
        return None;
    };
    let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
    let path = &rest[path_start..];
    Some(if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    const LIMITS: HeadLimits = HeadLimits {
        max_bytes: 1024,
        max_headers: 8,
        timeout: Duration::from_millis(300),
    };

    fn read_head(input: &[u8]) -> Result<Head, HeadError> {
        let mut io = input;
        smol::block_on(Reader::new().head(&mut io, &LIMITS, Duration::from_millis(300)))
    }

    #[test]
    fn a_post_with_a_body_and_a_pipelined_request_behind_it() {
        let mut io: &[u8] = b"POST /GetSamplingRules HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nX-A: 1\r\n\r\n{}GET /healthz HTTP/1.1\r\n\r\n";
        let mut reader = Reader::new();
        smol::block_on(async {
            let head = reader
                .head(&mut io, &LIMITS, Duration::from_secs(1))
                .await
                .unwrap();
            assert_eq!(head.method, "POST");
            assert_eq!(head.target, "/GetSamplingRules");
            assert_eq!(head.content_length, 2);
            assert!(head.keep_alive);
            assert_eq!(head.header("x-a"), Some("1"));
            let body = reader
                .body(&mut io, 2, Duration::from_secs(1))
                .await
                .unwrap();
            assert_eq!(body, b"{}");
            let next = reader
                .head(&mut io, &LIMITS, Duration::from_secs(1))
                .await
                .unwrap();
            assert_eq!((next.method.as_str(), next.path()), ("GET", "/healthz"));
            assert_eq!(reader.buffered(), 0);
        });
    }

    #[test]
    fn a_skipped_body_leaves_the_pipelined_request_behind_it() {
        let body = vec![b'x'; 100_000];
        let mut bytes = format!(
            "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut io: &[u8] = &bytes;
        let mut reader = Reader::new();
        smol::block_on(async {
            let head = reader
                .head(&mut io, &LIMITS, Duration::from_secs(1))
                .await
                .unwrap();
            let length = head.content_length as usize;
            reader
                .skip(&mut io, length, Duration::from_secs(1))
                .await
                .unwrap();
            assert!(reader.buffer.len() <= SKIP_BUFFER_BYTES);
            let next = reader
                .head(&mut io, &LIMITS, Duration::from_secs(1))
                .await
                .unwrap();
            assert_eq!(next.target, "/healthz");
            let mut short: &[u8] = b"abc";
            let mut reader = Reader::new();
            let cut = reader.skip(&mut short, 10, Duration::from_secs(1)).await;
            assert!(matches!(cut, Err(BodyError::Closed)));
        });
    }

    #[test]
    fn absolute_targets_lose_their_host() {
        let head =
            read_head(b"POST http://evil.example:81/SamplingTargets?x=1 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(head.target, "/SamplingTargets?x=1");
        assert_eq!(head.path(), "/SamplingTargets");
        let bare = read_head(b"POST HTTPS://evil.example HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(bare.target, "/");
        assert!(matches!(
            read_head(b"OPTIONS * HTTP/1.1\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            read_head(b"CONNECT evil.example:443 HTTP/1.1\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn connection_headers_decide_keep_alive_and_name_hop_by_hop_headers() {
        let close = read_head(b"GET / HTTP/1.1\r\nConnection: close, X-Secret\r\n\r\n").unwrap();
        assert!(!close.keep_alive);
        assert_eq!(close.connection_names, vec!["x-secret"]);
        let old = read_head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        assert!(!old.keep_alive);
        let expect = read_head(b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n").unwrap();
        assert!(expect.expect_continue);
    }

    #[test]
    fn framing_other_than_one_content_length_or_chunked_is_refused() {
        assert!(
            read_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap()
                .chunked
        );
        for other in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(matches!(read_head(other), Err(HeadError::LengthRequired)));
        }
        assert!(matches!(
            read_head(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
            ),
            Err(HeadError::Malformed(_))
        ));
        for bad in [
            &b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        ] {
            assert!(
                matches!(read_head(bad), Err(HeadError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let same = read_head(b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(same.unwrap().content_length, 2);
    }

    #[test]
    fn garbage_is_refused_without_waiting_for_a_line_end() {
        let binary: Vec<u8> = (0..=255u8).rev().cycle().take(300).collect();
        assert!(matches!(read_head(&binary), Err(HeadError::Malformed(_))));
        assert!(matches!(
            read_head(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            read_head(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            read_head(b"GET / HTTP/1.1\r\nX: \xff\xfe\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }

    /// Go's server (the original's) on versions httparse does not know: `HTTP/x.y` with a
    /// major version other than 1 is answered 505, 1.2 to 1.9 are served as 1.1, anything
    /// else is malformed (400).
    #[test]
    fn versions_other_than_1_0_and_1_1_are_judged_as_go_judges_them() {
        for unsupported in [
            &b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n"[..],
            b"GET /healthz HTTP/0.9\r\n\r\n",
            b"POST /GetSamplingRules HTTP/3.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
            b"GET / HTTP/9.9\n\n",
            b"\r\nGET / HTTP/2.0\r\n\r\n",
        ] {
            assert!(
                matches!(read_head(unsupported), Err(HeadError::VersionNotSupported)),
                "{}",
                String::from_utf8_lossy(unsupported)
            );
        }
        let newer = read_head(b"GET /healthz HTTP/1.7\r\nHost: x\r\nX-A: 1\r\n\r\n").unwrap();
        assert_eq!(
            (newer.version, newer.path(), newer.keep_alive),
            (1, "/healthz", true)
        );
        assert_eq!(newer.header("x-a"), Some("1"));
        let after_blank_lines = read_head(b"\r\n\r\nGET /x HTTP/1.5\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(
            (after_blank_lines.version, after_blank_lines.path()),
            (1, "/x")
        );
        for malformed in [
            &b"GET / HTTP/1.10\r\n\r\n"[..],
            b"GET / HTTP/2\r\n\r\n",
            b"GET / http/1.1\r\n\r\n",
            b"GET / HTTP/x.1\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET /\r\n\r\n",
        ] {
            assert!(
                matches!(read_head(malformed), Err(HeadError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(malformed)
            );
        }
    }

    #[test]
    fn size_and_count_limits() {
        let mut big = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        big.resize(2000, b'a');
        assert!(matches!(read_head(&big), Err(HeadError::TooLarge)));
        let many: String = (0..9).map(|i| format!("X-{i}: 1\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(
            read_head(many.as_bytes()),
            Err(HeadError::TooManyHeaders)
        ));
        let eight: String = (0..8).map(|i| format!("X-{i}: 1\r\n")).collect();
        assert!(read_head(format!("GET / HTTP/1.1\r\n{eight}\r\n").as_bytes()).is_ok());
    }

    #[test]
    fn an_empty_connection_is_closed_and_a_cut_head_too() {
        assert!(matches!(read_head(b""), Err(HeadError::Closed)));
        assert!(matches!(
            read_head(b"POST / HTTP/1.1\r\nHost"),
            Err(HeadError::Closed)
        ));
    }

    /// Yields `data` one byte per `interval`, then nothing (pending forever).
    struct Trickle {
        data: Vec<u8>,
        next: usize,
        timer: Option<smol::Timer>,
        interval: Duration,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            if self.next >= self.data.len() {
                return Poll::Pending;
            }
            let interval = self.interval;
            let timer = self
                .timer
                .get_or_insert_with(|| smol::Timer::after(interval));
            if Pin::new(timer).poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.timer = None;
            buf[0] = self.data[self.next];
            self.next += 1;
            Poll::Ready(Ok(1))
        }
    }

    use std::future::Future;

    #[test]
    fn a_slow_head_times_out_and_silence_is_idle() {
        let mut slow = Trickle {
            data: b"GET /healthz HTTP/1.1\r\nX: y\r\n\r\n".to_vec(),
            next: 0,
            timer: None,
            interval: Duration::from_millis(30),
        };
        let started = Instant::now();
        let result = smol::block_on(Reader::new().head(&mut slow, &LIMITS, Duration::from_secs(5)));
        assert!(matches!(result, Err(HeadError::Timeout)), "{result:?}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(2),
            "{took:?}"
        );
        let mut silent = Trickle {
            data: Vec::new(),
            next: 0,
            timer: None,
            interval: Duration::ZERO,
        };
        let result =
            smol::block_on(Reader::new().head(&mut silent, &LIMITS, Duration::from_millis(50)));
        assert!(matches!(result, Err(HeadError::Idle)), "{result:?}");
    }

    #[test]
    fn a_slow_body_times_out() {
        let mut slow = Trickle {
            data: vec![b'x'; 100],
            next: 0,
            timer: None,
            interval: Duration::from_millis(20),
        };
        let result = smol::block_on(Reader::new().body(&mut slow, 100, Duration::from_millis(200)));
        assert!(matches!(result, Err(BodyError::Timeout)), "{result:?}");
    }
}

//! Forwarding to X-Ray: hop-by-hop and stale signature headers out, the request signed and
//! sent on the blocking pool (a few at a time), the answer streamed back as it arrives.

use super::Shared;
use super::request::Head;
use super::response::{self, Answer, Framing};
use crate::aws::{BackendError, ErrorClass, ForwardRequest, ForwardResponse, XRayClient};
use crate::http::server::After;
use crate::stats::Refusal;
use smol::io::AsyncWrite;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// Sends a request to X-Ray; blocking. [`XRayClient`] in the relay, mocks in tests.
pub trait Forward: Send + Sync {
    /// Signs and sends `request`, with `timeout` for the whole exchange.
    fn forward(
        &self,
        request: &ForwardRequest,
        timeout: Duration,
    ) -> Result<ForwardResponse, BackendError>;
}

impl Forward for XRayClient {
    fn forward(
        &self,
        request: &ForwardRequest,
        timeout: Duration,
    ) -> Result<ForwardResponse, BackendError> {
        XRayClient::forward(self, request, timeout)
    }
}

/// Hop-by-hop headers (RFC 9110 7.6.1, and the `Proxy-*` family), never passed on.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers the relay replaces: where the request goes, how long it is, and any
/// signature the client made (the relay signs with its own credentials).
const REPLACED: [&str; 7] = [
    "host",
    "content-length",
    "expect",
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// Whether a header does not travel past this hop (`named` are those the `Connection`
/// header lists).
pub fn is_hop_by_hop(name: &str, named: &[String]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || named.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// The request to send X-Ray for `head` and `body`.
pub fn outbound(head: &Head, body: Vec<u8>) -> ForwardRequest {
    let headers = head
        .headers
        .iter()
        .filter(|(name, _)| {
            !is_hop_by_hop(name, &head.connection_names)
                && !REPLACED.iter().any(|r| name.eq_ignore_ascii_case(r))
        })
        .cloned()
        .collect();
    ForwardRequest {
        method: head.method.clone(),
        target: head.target.clone(),
        headers,
        body,
    }
}

/// What the blocking side hands the connection.
enum Piece {
    Head {
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
        length: Option<u64>,
    },
    Data(Vec<u8>),
    End,
    Failed(BackendError),
    Broken(String),
}

/// How much of X-Ray's body is read per piece.
const PIECE_BYTES: usize = 16 * 1024;

/// Forwards `request` (of HTTP/1.`version`) through `upstream` and writes X-Ray's answer
/// (or an error of the relay's) to `io`.
pub(super) async fn forward<W: AsyncWrite + Unpin>(
    io: &mut W,
    shared: &Shared,
    upstream: Arc<dyn Forward>,
    request: ForwardRequest,
    (keep_alive, version): (bool, u8),
) -> After {
    let limits = &shared.limits;
    let write_timeout = limits.connection.write_timeout;
    let slot = crate::http::take_slot(&shared.forward_slots, limits.forward_wait).await;
    let Some(slot) = slot else {
        shared.stats.proxy.refused(Refusal::Busy);
        let answer = Answer::busy("every forwarding slot of the relay stayed busy; try again");
        return write_answer(io, &answer, (keep_alive, version), write_timeout).await;
    };
    let method_is_head = request.method == "HEAD";
    let target = request.target.clone();
    let timeout = limits.forward_timeout;
    let (pieces, received) = smol::channel::bounded(2);
    smol::unblock(move || {
        let _slot = slot;
        pump(&*upstream, &request, timeout, &pieces);
    })
    .detach();

    // The blocking side always ends within the forward timeout or when the channel closes;
    // the margin only covers a starved blocking pool.
    let first = smol::future::or(async { received.recv().await.ok() }, async {
        smol::Timer::after(timeout + Duration::from_secs(5)).await;
        None
    })
    .await;
    let (status, headers, length) = match first {
        Some(Piece::Head {
            status,
            headers,
            length,
        }) => (status, headers, length),
        Some(Piece::Failed(error)) => {
            let answer = failure_answer(shared, &target, &error);
            return write_answer(io, &answer, (keep_alive, version), write_timeout).await;
        }
        _ => {
            shared.stats.proxy.upstream_error(ErrorClass::Timeout);
            let answer = Answer::error(504, "GatewayTimeout", "X-Ray did not answer in time");
            return write_answer(io, &answer, (keep_alive, version), write_timeout).await;
        }
    };
    shared
        .stats
        .proxy
        .forwarded
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let body_allowed = !method_is_head && status >= 200 && status != 204 && status != 304;
    let framing = match (body_allowed, length) {
        (false, _) => Framing::NoBody,
        (true, Some(length)) => Framing::Length(length),
        // HTTP/1.0 has no chunked encoding: as Go's server, the body ends where the connection
        // does (1.0 connections are never kept open).
        (true, None) if version == 0 => Framing::NoBody,
        (true, None) => Framing::Chunked,
    };
    let passed = headers.iter().filter(|(name, _)| {
        !is_hop_by_hop(name, &[])
            && (framing == Framing::NoBody || !name.eq_ignore_ascii_case("content-length"))
    });
    let head = response::encode_head(
        status,
        passed.map(|(name, value)| (name.as_str(), value.as_slice())),
        framing,
        keep_alive,
    );
    let head = response::for_version(head, version);
    if response::write_within(io, &head, write_timeout)
        .await
        .is_err()
    {
        return After::Close;
    }
    let mut written: u64 = 0;
    loop {
        match received.recv().await {
            Ok(Piece::Data(data)) if body_allowed => {
                written += data.len() as u64;
                let bytes = if framing == Framing::Chunked {
                    response::chunk(&data)
                } else {
                    data
                };
                if response::write_within(io, &bytes, write_timeout)
                    .await
                    .is_err()
                {
                    return After::Close;
                }
            }
            Ok(Piece::Data(_)) => {}
            Ok(Piece::End) => break,
            Ok(Piece::Broken(error)) => {
                log::warn!("Proxy: the answer of X-Ray to {target} broke off: {error}");
                return After::Close;
            }
            Ok(Piece::Head { .. } | Piece::Failed(_)) | Err(_) => return After::Close,
        }
    }
    let complete = match framing {
        Framing::Chunked => response::write_within(io, &response::chunk(b""), write_timeout)
            .await
            .is_ok(),
        Framing::Length(length) => written == length,
        Framing::NoBody => true,
    };
    if complete && keep_alive {
        After::Continue
    } else {
        After::Close
    }
}

/// The blocking side: one call, then the body piece by piece until the client side stops
/// taking them.
fn pump(
    upstream: &dyn Forward,
    request: &ForwardRequest,
    timeout: Duration,
    pieces: &smol::channel::Sender<Piece>,
) {
    let mut response = match upstream.forward(request, timeout) {
        Ok(response) => response,
        Err(error) => {
            let _ = pieces.send_blocking(Piece::Failed(error));
            return;
        }
    };
    let length = response
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| std::str::from_utf8(value).ok()?.trim().parse().ok());
    let head = Piece::Head {
        status: response.status,
        headers: std::mem::take(&mut response.headers),
        length,
    };
    if pieces.send_blocking(head).is_err() {
        return;
    }
    let mut buffer = vec![0; PIECE_BYTES];
    loop {
        let piece = match response.body.read(&mut buffer) {
            Ok(0) => Piece::End,
            Ok(count) => Piece::Data(buffer[..count].to_vec()),
            Err(error) => Piece::Broken(error.to_string()),
        };
        let last = !matches!(piece, Piece::Data(_));
        if pieces.send_blocking(piece).is_err() || last {
            return;
        }
    }
}

/// The relay's answer when X-Ray gave none: 503 without credentials (nothing is sent
/// unsigned), 504 on a timeout, 502 otherwise.
///
/// The body is generic: any process that can reach the proxy port reads it, and the error
/// may name a `credential_process` command line, a file path or a proxy address. The details
/// go to the relay's log.
fn failure_answer(shared: &Shared, target: &str, error: &BackendError) -> Answer {
    shared.stats.proxy.upstream_error(error.class());
    // The original's words where it has them: operators search for these.
    match error {
        BackendError::Credentials(_) => log::error!("Unable to retrieve credentials: {error}"),
        BackendError::Signing(_) => log::error!("Unable to sign request: {error}"),
        _ => log::warn!("Proxy: cannot forward {target} to X-Ray: {error}"),
    }
    match error {
        BackendError::Credentials(_) => Answer::error(
            503,
            "MissingAuthenticationTokenException",
            "the relay has no AWS credentials to sign the request with (its log says why)",
        ),
        BackendError::Signing(_) => Answer::error(
            500,
            "InternalFailure",
            "the relay cannot sign the request (its log says why)",
        ),
        _ if error.class() == ErrorClass::Timeout => {
            Answer::error(504, "GatewayTimeout", "X-Ray did not answer in time")
        }
        _ => Answer::error(
            502,
            "BadGateway",
            "the relay cannot reach X-Ray (its log says why)",
        ),
    }
}

async fn write_answer<W: AsyncWrite + Unpin>(
    io: &mut W,
    answer: &Answer,
    (keep_alive, version): (bool, u8),
    timeout: Duration,
) -> After {
    let bytes = response::for_version(answer.encode(keep_alive), version);
    match response::write_within(io, &bytes, timeout).await {
        Ok(()) if keep_alive => After::Continue,
        _ => After::Close,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_signature_headers_stay_behind() {
        let head = Head {
            method: "POST".into(),
            target: "/GetSamplingRules".into(),
            version: 1,
            headers: [
                ("Host", "evil.example"),
                ("Content-Type", "application/json"),
                ("Content-Length", "2"),
                ("Connection", "keep-alive, X-Private"),
                ("X-Private", "secret"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Authorization", "Basic x"),
                ("Authorization", "AWS4-HMAC-SHA256 stale"),
                ("X-Amz-Date", "20200101T000000Z"),
                ("X-Amz-Security-Token", "stale"),
                ("Expect", "100-continue"),
                ("TE", "trailers"),
                ("Upgrade", "h2c"),
                ("User-Agent", "aws-xray-sdk"),
                ("X-Amzn-Trace-Id", "Root=1-x"),
                ("Accept", "*/*"),
            ]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
            content_length: 2,
            chunked: false,
            keep_alive: true,
            expect_continue: true,
            connection_names: vec!["x-private".into()],
        };
        let request = outbound(&head, b"{}".to_vec());
        let names: Vec<&str> = request.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["Content-Type", "User-Agent", "X-Amzn-Trace-Id", "Accept"]
        );
        assert_eq!(request.target, "/GetSamplingRules");
        assert_eq!(request.body, b"{}");
    }
}

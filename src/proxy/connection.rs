//! One client connection: requests in order on a kept-alive connection, each read within the
//! limits, routed and answered. A refusal is answered with its HTTP error, counted, and ends
//! the connection.

use super::forward::{self, After};
use super::local::{self, HealthInput, Route};
use super::request::{BodyError, Head, HeadError, Reader};
use super::response::{self, Answer};
use super::{Gauge, Role, Shared, Upstream, metrics, otlp};
use crate::stats::Refusal;
use async_net::TcpStream;
use smol::io::AsyncReadExt;
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

/// Bodies up to this size are read without taking one of the few large-body slots.
pub const SMALL_BODY_BYTES: usize = 16 * 1024;

/// How long a refused connection is drained before it is closed, so the client reads the
/// answer instead of a reset.
const LINGER: Duration = Duration::from_secs(1);

/// At most this much is drained from a refused connection.
const LINGER_BYTES: usize = 256 * 1024;

/// Serves `stream` until the client is done or a limit ends it; `_open` counts it as open.
/// On the OTLP port (`role`) every request goes to the OTLP receiver; on the proxy port only
/// `POST /v1/traces` does.
pub(super) async fn serve(stream: TcpStream, shared: Arc<Shared>, _open: Gauge, role: Role) {
    let limits = shared.limits;
    let head_limits = limits.head();
    let mut reader = Reader::new();
    let mut input = stream.clone();
    let mut output = stream.clone();
    let mut first = true;
    loop {
        let wait = if first {
            limits.head_timeout
        } else {
            limits.idle_timeout
        };
        let head = match reader.head(&mut input, &head_limits, wait).await {
            Ok(head) => head,
            Err(HeadError::Closed) => return,
            // A kept-alive connection with nothing more to ask is closed quietly.
            Err(HeadError::Idle) if !first => return,
            Err(error) => {
                let (reason, answer) = head_refusal(&error);
                refuse(&stream, &shared, reason, answer).await;
                return;
            }
        };
        first = false;
        if let Some(problem) = host_header_problem(&head) {
            let answer = Answer::go_server_error(400, problem);
            refuse(&stream, &shared, Refusal::BadRequest, answer).await;
            return;
        }
        if let Some(receiver) = &shared.otlp
            && (role == Role::Otlp || head.path() == crate::otlp::receive::TRACES_PATH)
        {
            let after = otlp::serve(&stream, &shared, &mut reader, &head, receiver).await;
            if after == After::Close {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            continue;
        }
        if head.chunked {
            let (reason, answer) = head_refusal(&HeadError::LengthRequired);
            refuse(&stream, &shared, reason, answer).await;
            return;
        }
        // The original's line: the request target only.
        log::debug!("Received request on HTTP Proxy server : {}", head.target);
        let offline = matches!(shared.upstream, Upstream::Offline);
        let route = local::route(&head.method, head.path(), offline);
        if route == Route::NotAllowed {
            let answer = Answer::error(
                405,
                "MethodNotAllowedException",
                &format!("{} answers GET only", head.path()),
            )
            .with_header("Allow", "GET");
            refuse(&stream, &shared, Refusal::MethodNotAllowed, answer).await;
            return;
        }
        let length = match usize::try_from(head.content_length) {
            Ok(length) if length <= limits.max_body_bytes => length,
            _ => {
                let answer = Answer::error(
                    413,
                    "RequestEntityTooLargeException",
                    &format!(
                        "the body of {} bytes is larger than the {} bytes the relay takes",
                        head.content_length, limits.max_body_bytes
                    ),
                );
                refuse(&stream, &shared, Refusal::BodyTooLarge, answer).await;
                return;
            }
        };
        let Some(body) = read_body(&stream, &shared, &mut reader, &head, length).await else {
            return;
        };
        let after = match route {
            Route::Forward
                if shared.sampling_only && !local::is_sampling_api(&head.method, head.path()) =>
            {
                shared.stats.proxy.refused(Refusal::NotSampling);
                log::debug!(
                    "Proxy: not forwarding {} {} (Proxy.SamplingOnly)",
                    head.method,
                    head.path()
                );
                answer(&mut output, &shared, not_sampling(), &head).await
            }
            Route::Forward => match &shared.upstream {
                Upstream::XRay(upstream) => {
                    let request = forward::outbound(&head, body);
                    forward::forward(
                        &mut output,
                        &shared,
                        upstream.clone(),
                        request,
                        (head.keep_alive, head.version),
                    )
                    .await
                }
                Upstream::Offline => answer(&mut output, &shared, unavailable(&head), &head).await,
            },
            Route::NotAllowed => After::Close,
            local_route => {
                shared.stats.proxy.local.fetch_add(1, Ordering::Relaxed);
                let local_answer = answer_locally(&shared, local_route, &head, &body);
                answer(&mut output, &shared, local_answer, &head).await
            }
        };
        if after == After::Close {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Reads the body, within the limits; `None` when the connection is done for.
async fn read_body(
    stream: &TcpStream,
    shared: &Shared,
    reader: &mut Reader,
    head: &Head,
    length: usize,
) -> Option<Vec<u8>> {
    let limits = &shared.limits;
    if length == 0 {
        return Some(Vec::new());
    }
    // Large bodies take one of a few slots: the connection cap times the largest body would
    // be too much memory.
    let _large = if length > SMALL_BODY_BYTES {
        let slot = crate::http::take_slot(&shared.large_bodies, limits.body_timeout).await;
        if slot.is_none() {
            let answer = Answer::error(
                503,
                "ServiceUnavailableException",
                "too many large requests at once; try again",
            )
            .with_header("Retry-After", "1");
            refuse(stream, shared, Refusal::Busy, answer).await;
            return None;
        }
        slot
    } else {
        None
    };
    if head.expect_continue && reader.buffered() == 0 {
        let mut output = stream.clone();
        let go_on = b"HTTP/1.1 100 Continue\r\n\r\n";
        if response::write_within(&mut output, go_on, limits.write_timeout)
            .await
            .is_err()
        {
            return None;
        }
    }
    let mut input = stream.clone();
    match reader.body(&mut input, length, limits.body_timeout).await {
        Ok(body) => Some(body),
        Err(BodyError::Closed | BodyError::TooLarge | BodyError::Malformed(_)) => None,
        Err(BodyError::Timeout) => {
            let answer = Answer::error(
                408,
                "RequestTimeoutException",
                &format!(
                    "the body of {length} bytes did not arrive within {} s",
                    limits.body_timeout.as_secs_f64()
                ),
            );
            refuse(stream, shared, Refusal::Timeout, answer).await;
            None
        }
    }
}

/// The refusal and answer for a head that could not be read.
fn head_refusal(error: &HeadError) -> (Refusal, Answer) {
    match error {
        HeadError::Idle | HeadError::Timeout | HeadError::Closed => (
            Refusal::Timeout,
            Answer::error(
                408,
                "RequestTimeoutException",
                "the request did not arrive in time",
            ),
        ),
        HeadError::TooLarge => (
            Refusal::HeadTooLarge,
            Answer::error(
                431,
                "RequestHeaderFieldsTooLargeException",
                "the request head is larger than the relay takes",
            ),
        ),
        HeadError::TooManyHeaders => (
            Refusal::TooManyHeaders,
            Answer::error(
                431,
                "RequestHeaderFieldsTooLargeException",
                "the request has more headers than the relay takes",
            ),
        ),
        HeadError::Malformed(why) => (
            Refusal::BadRequest,
            Answer::error(400, "BadRequestException", why),
        ),
        HeadError::VersionNotSupported => (
            Refusal::BadRequest,
            Answer::go_server_error(505, "unsupported protocol version"),
        ),
        HeadError::LengthRequired => (
            Refusal::LengthRequired,
            Answer::error(
                411,
                "LengthRequiredException",
                "send the body with a Content-Length; Transfer-Encoding is not accepted",
            ),
        ),
    }
}

/// What Go's server (the original's) finds wrong with the `Host` header before any handler
/// runs, in its words: none on HTTP/1.1, more than one, or a byte no host name has.
fn host_header_problem(head: &Head) -> Option<&'static str> {
    let mut hosts = head
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("host"));
    match (hosts.next(), hosts.next()) {
        (None, _) if head.version >= 1 => Some("missing required Host header"),
        (Some(_), Some(_)) => Some("too many Host headers"),
        (Some((_, host)), None) if !host.bytes().all(is_host_byte) => Some("malformed Host header"),
        _ => None,
    }
}

/// The bytes Go's `httpguts.ValidHostHeader` lets through: those of a host name, an IP
/// literal with zone, and a port, leniently (any order).
fn is_host_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!$%&()*+,-.:;=[']_~".contains(&byte)
}

fn unavailable(head: &Head) -> Answer {
    Answer::error(
        503,
        "ServiceUnavailableException",
        &format!(
            "the relay runs offline (local sink): there is no X-Ray to send {} to",
            head.path()
        ),
    )
}

/// The answer to an X-Ray API other than sampling when only sampling is forwarded.
fn not_sampling() -> Answer {
    Answer::error(
        403,
        "AccessDeniedException",
        "this relay forwards only GetSamplingRules, GetSamplingTargets and GetSamplingStatisticSummaries",
    )
}

fn answer_locally(shared: &Shared, route: Route, head: &Head, body: &[u8]) -> Answer {
    match route {
        Route::Healthz => {
            let counts = shared.stats.snapshot();
            let fill = shared.pool.fill();
            let uploads = shared.stats.upload_health();
            let mut answer = local::healthz(
                &shared.health,
                &HealthInput {
                    uptime: shared.started.elapsed(),
                    counts: &counts,
                    fill: &fill,
                    uploads: &uploads,
                },
            );
            if let Some(receiver) = &shared.otlp
                && let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&answer.body)
            {
                body["otlp"] = crate::otlp::stats::health(
                    &receiver.stats,
                    receiver.queue.used_bytes(),
                    receiver.queue.capacity(),
                );
                answer.body = body.to_string().into_bytes();
            }
            answer
        }
        Route::Metrics => {
            let mut text =
                metrics::render(&shared.stats, &shared.pool.fill(), shared.started.elapsed());
            if let Some(receiver) = &shared.otlp {
                crate::otlp::stats::render_metrics(
                    &receiver.stats,
                    receiver.queue.used_bytes(),
                    receiver.queue.capacity(),
                    &mut text,
                );
            }
            Answer {
                status: 200,
                content_type: metrics::CONTENT_TYPE,
                headers: Vec::new(),
                body: text.into_bytes(),
            }
        }
        Route::SamplingRules => local::sampling_rules(shared.started_at),
        Route::SamplingTargets => {
            local::sampling_targets(body, shared.started_at, SystemTime::now())
        }
        Route::Unavailable | Route::Forward | Route::NotAllowed => unavailable(head),
    }
}

pub(super) async fn answer(
    output: &mut TcpStream,
    shared: &Shared,
    answer: Answer,
    head: &Head,
) -> After {
    let keep_alive = head.keep_alive;
    let bytes = response::for_version(answer.encode(keep_alive), head.version);
    match response::write_within(output, &bytes, shared.limits.write_timeout).await {
        Ok(()) if keep_alive => After::Continue,
        _ => After::Close,
    }
}

/// Counts `reason`, sends `answer` and closes the connection gracefully.
pub(super) async fn refuse(stream: &TcpStream, shared: &Shared, reason: Refusal, answer: Answer) {
    shared.stats.proxy.refused(reason);
    log::debug!(
        "Proxy: refused a request: {} ({})",
        answer.status,
        reason.label()
    );
    close_with(stream, answer).await;
}

/// Sends `answer` and closes the connection gracefully.
pub(super) async fn close_with(stream: &TcpStream, answer: Answer) {
    let mut output = stream.clone();
    if response::write_within(&mut output, &answer.encode(false), LINGER)
        .await
        .is_ok()
    {
        linger_close(stream).await;
    }
}

/// Closes the sending side, then reads and drops what the client still sends for a moment:
/// closing with unread data would reset the connection, and the client might lose the answer.
pub(super) async fn linger_close(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let mut input = stream.clone();
    let deadline = Instant::now() + LINGER;
    let mut drained = 0;
    let mut scratch = [0u8; 2048];
    while drained < LINGER_BYTES {
        let read = smol::future::or(async { Some(input.read(&mut scratch).await) }, async {
            smol::Timer::at(deadline).await;
            None
        })
        .await;
        match read {
            Some(Ok(count)) if count > 0 => drained += count,
            _ => break,
        }
    }
}

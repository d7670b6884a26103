//! `POST /v1/traces` on a connection: the head checked by the OTLP receiver, the body read
//! within its limits (by `Content-Length` or chunked, as OpenTelemetry's Node exporters send
//! it), the answer written in the request's content type. Every answer is counted in the
//! receiver's counters.

use super::Shared;
use super::connection::{answer, close_with};
use super::forward::After;
use crate::http::chunked::read_chunked;
use crate::http::request::{BodyError, Head, Reader};
use crate::http::response;
use crate::otlp::Receiver;
use crate::otlp::receive;
use async_net::TcpStream;

/// Serves one OTLP request whose head has been read.
pub(super) async fn serve(
    stream: &TcpStream,
    shared: &Shared,
    reader: &mut Reader,
    head: &Head,
    receiver: &Receiver,
) -> After {
    let refuse = |answer: response::Answer| async move {
        receiver.stats.answered(answer.status);
        log::debug!(
            "OTLP: refused {} {}: {}",
            head.method,
            head.path(),
            answer.status
        );
        close_with(stream, answer).await;
        After::Close
    };
    let accepted = match receive::accept_head(
        &head.method,
        head.path(),
        head.header("content-type"),
        head.header("content-encoding"),
    ) {
        Ok(accepted) => accepted,
        Err(answer) => return refuse(answer).await,
    };
    let format = accepted.format;
    let max = receiver.max_body_bytes;
    if !head.chunked && head.content_length > max as u64 {
        return refuse(receive::too_large(format, max)).await;
    }
    let limits = &shared.limits;
    // Few bodies at once: each may be megabytes, and more would be memory the buffer's
    // budget does not cover.
    let slot = crate::http::take_slot(&shared.otlp_bodies, limits.body_timeout).await;
    let Some(_slot) = slot else {
        return refuse(receive::unavailable(
            format,
            "too many large OTLP requests at once; retry later",
        ))
        .await;
    };
    if head.expect_continue && reader.buffered() == 0 {
        let mut output = stream.clone();
        let go_on = b"HTTP/1.1 100 Continue\r\n\r\n";
        if response::write_within(&mut output, go_on, limits.write_timeout)
            .await
            .is_err()
        {
            return After::Close;
        }
    }
    let mut input = stream.clone();
    let body = if head.chunked {
        read_chunked(reader, &mut input, max, limits.body_timeout).await
    } else {
        // Checked against `max` above, which is a usize.
        let length = head.content_length as usize;
        reader.body(&mut input, length, limits.body_timeout).await
    };
    let body = match body {
        Ok(body) => body,
        Err(BodyError::Closed) => return After::Close,
        Err(BodyError::TooLarge) => return refuse(receive::too_large(format, max)).await,
        Err(BodyError::Timeout) => {
            let message = format!(
                "the body did not arrive within {} s",
                limits.body_timeout.as_secs_f64()
            );
            return refuse(receive::status(format, 408, 4, &message)).await;
        }
        Err(BodyError::Malformed(why)) => {
            return refuse(receive::status(format, 400, 3, &why)).await;
        }
    };
    let reply = receiver.handle(accepted, &body);
    drop(body);
    let mut output = stream.clone();
    answer(&mut output, shared, reply, head).await
}

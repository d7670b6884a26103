//! OTLP/HTTP on a connection of the shared server ([`crate::http::server`]): the head checked
//! by the [`Receiver`], the body read within its limits (by `Content-Length` or chunked, as
//! OpenTelemetry's Node exporters send it), the answer written in the request's content
//! type. Every answer is counted in the receiver's counters.

use super::receive::{self, Format};
use super::{BODIES_AT_ONCE, Receiver};
use crate::http::response::Answer;
use crate::http::server::{After, BodyFailure, BodyRules, Exchange, Service};
use crate::stats::Refusal;
use smol::lock::Semaphore;
use std::sync::{Arc, Mutex};

/// The OTLP traces service: `POST /v1/traces` on the OTLP port, and on the proxy's, which
/// hands it that path.
#[derive(Debug)]
pub struct Traces {
    receiver: Arc<Receiver>,
    /// Few bodies at once: each may be megabytes, and more would be memory the buffer's
    /// budget does not cover.
    bodies: Arc<Semaphore>,
}

impl Traces {
    /// The service for `receiver`, reading at most [`BODIES_AT_ONCE`] bodies at a time.
    pub fn new(receiver: Arc<Receiver>) -> Traces {
        Traces {
            receiver,
            bodies: Arc::new(Semaphore::new(BODIES_AT_ONCE)),
        }
    }

    /// The receiver it serves.
    pub fn receiver(&self) -> &Receiver {
        &self.receiver
    }

    /// Counts and sends a refusal, then closes the connection.
    async fn refuse(&self, exchange: &Exchange<'_>, answer: Answer) -> After {
        let head = exchange.head();
        self.receiver.stats.answered(answer.status);
        log::debug!(
            "OTLP: refused {} {}: {}",
            head.method,
            head.path(),
            answer.status
        );
        exchange.close_with(answer).await
    }
}

impl Service for Traces {
    async fn respond(&self, exchange: &mut Exchange<'_>) -> After {
        let head = exchange.head();
        let accepted = match receive::accept_head(
            &head.method,
            head.path(),
            head.header("content-type"),
            head.header("content-encoding"),
        ) {
            Ok(accepted) => accepted,
            Err(answer) => return self.refuse(exchange, answer).await,
        };
        // A body of a known length takes its room in the OTLP buffer before it is read; when
        // there is none, the request is refused (its body read and dropped, so the
        // connection stays open) without holding a byte of it.
        let receiver = &self.receiver;
        let length = usize::try_from(head.content_length).unwrap_or(usize::MAX);
        // A chunked body takes its room chunk by chunk as it arrives.
        let known = !head.chunked && length <= receiver.max_body_bytes;
        let reserved = match receiver.queue.reserve(if known { length } else { 0 }) {
            Some(reserved) => Mutex::new(Some(reserved)),
            None => return self.refuse_unread(exchange, accepted.format).await,
        };
        let room = |bytes: usize| {
            let mut reserved = reserved.lock().unwrap_or_else(|p| p.into_inner());
            reserved.as_mut().is_some_and(|r| r.grow(bytes))
        };
        let rules = BodyRules {
            max_bytes: self.receiver.max_body_bytes,
            chunked: true,
            slots: &self.bodies,
            small_bytes: None,
            room: Some(&room),
        };
        let body = match exchange.body(&rules).await {
            Ok(body) => body,
            Err(failure) => match self.failure_answer(accepted.format, exchange, failure) {
                Some(answer) => return self.refuse(exchange, answer).await,
                None => return After::Close,
            },
        };
        let reserved = reserved.into_inner().unwrap_or_else(|p| p.into_inner());
        let reply = self.receiver.handle(accepted, body, reserved);
        exchange.answer(reply).await
    }

    /// On the OTLP port, a request refused before it reached the receiver (a head over the
    /// limits, a connection over the cap) counts as an OTLP answer with its status.
    fn refused(&self, reason: Refusal, answer: &Answer) {
        self.receiver.stats.answered(answer.status);
        log::debug!(
            "OTLP: refused a request: {} ({})",
            answer.status,
            reason.label()
        );
    }
}

impl Traces {
    /// Answers 503 to a request whose body there is no room for: its body is read and
    /// dropped when its length is known, so the client reads the answer on a connection
    /// that stays open; else the connection is closed after the answer. Its spans are not
    /// counted (they were not read); the client retries them.
    async fn refuse_unread(&self, exchange: &mut Exchange<'_>, format: Format) -> After {
        let answer = receive::unavailable(format, receive::BUFFER_FULL);
        self.receiver.stats.answered(answer.status);
        if exchange.skip_body(self.receiver.max_body_bytes).await {
            exchange.answer(answer).await
        } else {
            exchange.close_with(answer).await
        }
    }

    /// The answer, as the OTLP specification gives it, to a body that was not read; `None`
    /// when the client is gone.
    fn failure_answer(
        &self,
        format: Format,
        exchange: &Exchange<'_>,
        failure: BodyFailure,
    ) -> Option<Answer> {
        Some(match failure {
            BodyFailure::Closed => return None,
            BodyFailure::TooLarge => receive::too_large(format, self.receiver.max_body_bytes),
            BodyFailure::Busy => {
                receive::unavailable(format, "too many large OTLP requests at once; retry later")
            }
            BodyFailure::Timeout => {
                let message = format!(
                    "the body did not arrive within {} s",
                    exchange.limits().body_timeout.as_secs_f64()
                );
                receive::status(format, 408, 4, &message)
            }
            BodyFailure::Malformed(why) => receive::status(format, 400, 3, &why),
            // Its spans are not counted (they were not all read); the client retries them.
            BodyFailure::NoRoom => receive::unavailable(format, receive::BUFFER_FULL),
            // Not from these rules, which take chunked bodies; a framing error all the same.
            BodyFailure::LengthRequired => {
                receive::status(format, 411, 3, "send the body with a Content-Length")
            }
        })
    }
}

//! OTLP/HTTP on a connection of the shared server ([`crate::http::server`]): the head checked
//! by the [`Receiver`], the body read within its limits (by `Content-Length` or chunked, as
//! OpenTelemetry's Node exporters send it), the answer written in the request's content
//! type. Every answer is counted in the receiver's counters.

use super::receive::{self, Format};
use super::{BODIES_AT_ONCE, Receiver};
use crate::http::response::Answer;
use crate::http::server::{After, BodyFailure, BodyRules, Exchange, Service};
use smol::lock::Semaphore;
use std::sync::Arc;

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
        let rules = BodyRules {
            max_bytes: self.receiver.max_body_bytes,
            chunked: true,
            slots: &self.bodies,
            small_bytes: None,
        };
        let body = match exchange.body(&rules).await {
            Ok(body) => body,
            Err(failure) => match self.failure_answer(accepted.format, exchange, failure) {
                Some(answer) => return self.refuse(exchange, answer).await,
                None => return After::Close,
            },
        };
        let reply = self.receiver.handle(accepted, &body);
        drop(body);
        exchange.answer(reply).await
    }
}

impl Traces {
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
            // Not from these rules, which take chunked bodies; a framing error all the same.
            BodyFailure::LengthRequired => {
                receive::status(format, 411, 3, "send the body with a Content-Length")
            }
        })
    }
}

//! The proxy's answer to one request: `POST /v1/traces` handed to the OTLP receiver when it
//! is on, `/healthz`, `/metrics` and (offline) the sampling APIs answered locally, the rest
//! forwarded to X-Ray. A refusal is answered with its HTTP error in X-Ray's shape, counted,
//! and ends the connection.

use super::forward;
use super::local::{self, HealthInput, Route};
use super::request::{Head, HeadError};
use super::response::Answer;
use super::{Shared, Upstream, metrics};
use crate::http::server::{self, After, BodyFailure, BodyRules, Exchange, Service};
use crate::otlp::http::Traces;
use crate::stats::Refusal;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

/// Bodies up to this size are read without taking one of the few large-body slots.
pub const SMALL_BODY_BYTES: usize = 16 * 1024;

impl Service for Shared {
    async fn respond(&self, exchange: &mut Exchange<'_>) -> After {
        let head = exchange.head();
        if let Some(traces) = &self.otlp
            && head.path() == crate::otlp::receive::TRACES_PATH
        {
            return traces.respond(exchange).await;
        }
        if head.chunked {
            return self
                .body_refused(exchange, BodyFailure::LengthRequired)
                .await;
        }
        // The original's line: the request target only.
        log::debug!("Received request on HTTP Proxy server : {}", head.target);
        let offline = matches!(self.upstream, Upstream::Offline);
        let route = local::route(&head.method, head.path(), offline);
        if route == Route::NotAllowed {
            let answer = Answer::error(
                405,
                "MethodNotAllowedException",
                &format!("{} answers GET only", head.path()),
            )
            .with_header("Allow", "GET");
            return exchange.refuse(Refusal::MethodNotAllowed, answer).await;
        }
        let rules = BodyRules {
            max_bytes: self.limits.max_body_bytes,
            chunked: false,
            slots: &self.large_bodies,
            small_bytes: Some(SMALL_BODY_BYTES),
            room: None,
        };
        let body = match exchange.body(&rules).await {
            Ok(body) => body,
            Err(failure) => return self.body_refused(exchange, failure).await,
        };
        match route {
            Route::Forward
                if self.sampling_only && !local::is_sampling_api(&head.method, head.path()) =>
            {
                self.stats.proxy.refused(Refusal::NotSampling);
                log::debug!(
                    "Proxy: not forwarding {} {} (Proxy.SamplingOnly)",
                    head.method,
                    head.path()
                );
                exchange.answer(not_sampling()).await
            }
            Route::Forward => match &self.upstream {
                Upstream::XRay(upstream) => {
                    let request = forward::outbound(head, body);
                    forward::forward(
                        &mut exchange.output(),
                        self,
                        upstream.clone(),
                        request,
                        (head.keep_alive, head.version),
                    )
                    .await
                }
                Upstream::Offline => exchange.answer(unavailable(head)).await,
            },
            Route::NotAllowed => After::Close,
            local_route => {
                self.stats.proxy.local.fetch_add(1, Ordering::Relaxed);
                let local_answer = answer_locally(self, local_route, head, &body);
                exchange.answer(local_answer).await
            }
        }
    }

    fn refused(&self, reason: Refusal, answer: &Answer) {
        self.stats.proxy.refused(reason);
        log::debug!(
            "Proxy: refused a request: {} ({})",
            answer.status,
            reason.label()
        );
    }
}

impl Shared {
    /// Answers a body that was not read, in X-Ray's shape, or closes when nobody is there.
    async fn body_refused(&self, exchange: &Exchange<'_>, failure: BodyFailure) -> After {
        let head = exchange.head();
        let (reason, answer) = match failure {
            BodyFailure::LengthRequired => server::refusal(&HeadError::LengthRequired),
            BodyFailure::TooLarge => (
                Refusal::BodyTooLarge,
                Answer::error(
                    413,
                    "RequestEntityTooLargeException",
                    &format!(
                        "the body of {} bytes is larger than the {} bytes the relay takes",
                        head.content_length, self.limits.max_body_bytes
                    ),
                ),
            ),
            BodyFailure::Busy => (
                Refusal::Busy,
                Answer::busy("too many large requests at once; try again"),
            ),
            BodyFailure::Timeout => (
                Refusal::Timeout,
                Answer::error(
                    408,
                    "RequestTimeoutException",
                    &format!(
                        "the body of {} bytes did not arrive within {} s",
                        head.content_length,
                        exchange.limits().body_timeout.as_secs_f64()
                    ),
                ),
            ),
            // No room is asked of bodies here, and none is chunked.
            BodyFailure::Malformed(_) | BodyFailure::Closed | BodyFailure::NoRoom => {
                return After::Close;
            }
        };
        exchange.refuse(reason, answer).await
    }
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
            if let Some(receiver) = shared.otlp.as_deref().map(Traces::receiver)
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
            if let Some(receiver) = shared.otlp.as_deref().map(Traces::receiver) {
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

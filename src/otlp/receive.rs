//! `POST /v1/traces`: what the head must say (method, content type, encoding), and what a
//! body becomes: decompressed, decoded (protobuf checked, JSON turned into protobuf), cut
//! within X-Ray's limits and offered to the OTLP buffer whole, or refused with the status
//! the OTLP/HTTP specification gives, in the request's own content type.

use super::count;
use super::gzip::{self, GunzipError};
use super::protobuf::{self, put_bytes, put_tag, put_varint, write_json_string};
use super::queue::Reserved;
use super::split::{self, Chunk, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS};
use super::{Receiver, json, schema};
use crate::http::response::Answer;

/// The path OTLP/HTTP exporters post traces to.
pub const TRACES_PATH: &str = "/v1/traces";

/// Why a request is refused with 503 when the buffer is full.
pub const BUFFER_FULL: &str =
    "the relay's OTLP buffer is full (X-Ray is slow or unreachable); retry later";

/// Seconds a client is asked to wait when the buffer is full.
pub const RETRY_AFTER_SECONDS: u32 = 2;

/// google.rpc.Code INVALID_ARGUMENT.
const INVALID_ARGUMENT: u64 = 3;
/// google.rpc.Code RESOURCE_EXHAUSTED.
const RESOURCE_EXHAUSTED: u64 = 8;
/// google.rpc.Code UNIMPLEMENTED.
const UNIMPLEMENTED: u64 = 12;
/// google.rpc.Code UNAVAILABLE.
const UNAVAILABLE: u64 = 14;

/// How a request body is encoded, and so its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl Format {
    /// The `Content-Type` of answers in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }

    /// The format a `Content-Type` names (parameters ignored), if OTLP has it.
    pub fn of(content_type: Option<&str>) -> Option<Format> {
        let media = content_type?.split(';').next()?.trim();
        if media.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Format::Protobuf)
        } else if media.eq_ignore_ascii_case("application/json") {
            Some(Format::Json)
        } else {
            None
        }
    }
}

/// What a request head asks for, once it is one the receiver takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The body's format.
    pub format: Format,
    /// The body is gzip-compressed.
    pub gzip: bool,
}

/// Checks method, path, `Content-Type` and `Content-Encoding`: the request to read a body
/// for, or the answer that refuses it (404, 405, 415).
pub fn accept_head(
    method: &str,
    path: &str,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
) -> Result<Accepted, Answer> {
    let format = Format::of(content_type);
    let answer_in = format.unwrap_or(Format::Json);
    if path != TRACES_PATH {
        return Err(status(
            answer_in,
            404,
            UNIMPLEMENTED,
            &format!("{path} is not served here; OTLP traces go to POST {TRACES_PATH}"),
        ));
    }
    if method != "POST" {
        return Err(status(
            answer_in,
            405,
            UNIMPLEMENTED,
            &format!("{TRACES_PATH} takes POST only"),
        )
        .with_header("Allow", "POST"));
    }
    let Some(format) = format else {
        return Err(status(
            answer_in,
            415,
            INVALID_ARGUMENT,
            &format!(
                "Content-Type {:?} is not OTLP: send application/x-protobuf or application/json",
                content_type.unwrap_or("")
            ),
        ));
    };
    let gzip = match content_encoding.map(str::trim) {
        None | Some("") => false,
        Some(e) if e.eq_ignore_ascii_case("identity") => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") => true,
        Some(other) => {
            return Err(status(
                format,
                415,
                INVALID_ARGUMENT,
                &format!("Content-Encoding {other:?} is not taken: send gzip or identity"),
            ));
        }
    };
    Ok(Accepted { format, gzip })
}

/// The 413 for a body over `max_bytes`.
pub fn too_large(format: Format, max_bytes: usize) -> Answer {
    status(
        format,
        413,
        RESOURCE_EXHAUSTED,
        &format!(
            "the request is larger than the {max_bytes} bytes the relay takes (decompressed); send smaller batches"
        ),
    )
}

/// The 503 when the relay cannot take a request now.
pub fn unavailable(format: Format, why: &str) -> Answer {
    status(format, 503, UNAVAILABLE, why)
        .with_header("Retry-After", RETRY_AFTER_SECONDS.to_string())
}

/// A `google.rpc.Status` answer.
pub fn status(format: Format, http_status: u16, code: u64, message: &str) -> Answer {
    let body = match format {
        Format::Protobuf => {
            let mut body = Vec::new();
            put_tag(&mut body, 1, protobuf::VARINT);
            put_varint(&mut body, code);
            put_bytes(&mut body, 2, message.as_bytes());
            body
        }
        Format::Json => {
            let mut body = format!("{{\"code\":{code},\"message\":");
            write_json_string(message, &mut body);
            body.push('}');
            body.into_bytes()
        }
    };
    Answer {
        status: http_status,
        content_type: format.content_type(),
        headers: Vec::new(),
        body,
    }
}

/// The 200: an `ExportTraceServiceResponse`, with `partial_success` when spans were refused.
pub fn success(format: Format, rejected: u64, message: &str) -> Answer {
    let body = match (format, rejected) {
        (Format::Protobuf, 0) => Vec::new(),
        (Format::Json, 0) => b"{}".to_vec(),
        (Format::Protobuf, _) => {
            let mut partial = Vec::new();
            put_tag(&mut partial, 1, protobuf::VARINT);
            put_varint(&mut partial, rejected);
            put_bytes(&mut partial, 2, message.as_bytes());
            let mut body = Vec::new();
            put_bytes(&mut body, 1, &partial);
            body
        }
        (Format::Json, _) => {
            let mut body = format!(
                "{{\"partialSuccess\":{{\"rejectedSpans\":\"{rejected}\",\"errorMessage\":"
            );
            write_json_string(message, &mut body);
            body.push_str("}}");
            body.into_bytes()
        }
    };
    Answer {
        status: 200,
        content_type: format.content_type(),
        headers: Vec::new(),
        body,
    }
}

impl Receiver {
    /// Handles the body of an accepted request: the answer to send, already counted.
    /// `reserved` is the room taken for the body before it was read, if it was; the body's
    /// copies take room from the same budget and become the chunks offered to the buffer.
    pub fn handle(&self, request: Accepted, body: Vec<u8>, reserved: Option<Reserved>) -> Answer {
        let answer = self.decode_and_offer(request, body, reserved);
        self.stats.answered(answer.status);
        answer
    }

    fn decode_and_offer(
        &self,
        request: Accepted,
        body: Vec<u8>,
        reserved: Option<Reserved>,
    ) -> Answer {
        let format = request.format;
        let max = self.max_body_bytes;
        // Every copy takes room first. Without room the request is refused before the copy
        // is made: decoding it only to count its spans would take memory outside the
        // buffer. A protobuf body's spans are counted where that is cheap (a small window
        // through a gzip body, a walk of a plain one); a JSON body's are not, as for a body
        // refused unread.
        let mut room = Room(reserved.or_else(|| self.queue.reserve(body.len())));
        let received = body;
        let (message, gzipped) = if request.gzip {
            // The size the trailer announces (gunzip checks it), so its room is taken first
            // and the output made no larger: decompression grows a zeroed buffer by halves
            // up to its limit, every byte of it resident.
            let announced = match gzip::Member::read(&received) {
                Ok(member) => member.size as usize,
                Err(GunzipError::Invalid(why)) => {
                    return status(format, 400, INVALID_ARGUMENT, &why);
                }
                Err(GunzipError::TooLarge) => return too_large(format, max),
            };
            // An honest bomb is refused here, at no cost; a lying one at the limit.
            if announced > max {
                return too_large(format, max);
            }
            let limit = announced;
            room.take(limit);
            if room.0.is_none() {
                if format == Format::Protobuf
                    && let Some(spans) = count::gzip_spans(&received, limit)
                {
                    super::OtlpStats::add(&self.stats.spans_backpressured, spans);
                }
                return unavailable(format, BUFFER_FULL);
            }
            let data = match gzip::gunzip(&received, limit) {
                Ok(data) => data,
                Err(GunzipError::TooLarge) if limit < max => {
                    let why = "not gzip: the data is longer than the trailer says";
                    return status(format, 400, INVALID_ARGUMENT, why);
                }
                Err(GunzipError::TooLarge) => return too_large(format, max),
                Err(GunzipError::Invalid(why)) => {
                    return status(format, 400, INVALID_ARGUMENT, &why);
                }
            };
            // A gzip protobuf request that goes through whole keeps its body, to go out as
            // it came (X-Ray takes gzip) instead of being compressed again.
            let keep = self.keep_gzip && format == Format::Protobuf;
            let gzipped = keep.then_some(received);
            room.settle(data.len() + gzipped.as_ref().map_or(0, Vec::len));
            (data, gzipped)
        } else if received.len() > max {
            return too_large(format, max);
        } else {
            (received, None)
        };
        let message = match format {
            Format::Protobuf => match protobuf::check(&message, &schema::REQUEST) {
                Ok(()) => message,
                Err(error) => {
                    return status(
                        format,
                        400,
                        INVALID_ARGUMENT,
                        &format!("bad protobuf: {error}"),
                    );
                }
            },
            Format::Json => {
                // The protobuf is smaller than its JSON; the room is set right below.
                room.take(message.len());
                if room.0.is_none() {
                    return unavailable(format, BUFFER_FULL);
                }
                match json::to_protobuf(&message, &schema::REQUEST) {
                    Ok(bytes) => {
                        room.settle(bytes.len());
                        bytes
                    }
                    Err(error) => {
                        return status(
                            format,
                            400,
                            INVALID_ARGUMENT,
                            &format!("bad OTLP JSON: {error}"),
                        );
                    }
                }
            }
        };
        let now = self.refuse_out_of_time.then(split::now_nanos);
        let split = match split::whole(&message, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, now) {
            // The request is its own chunk: no copy.
            Some(whole) => split::Split {
                accepted: u64::from(whole.spans),
                chunks: vec![Chunk {
                    bytes: message,
                    spans: whole.spans,
                    gzipped,
                    first: whole.first,
                    last: whole.last,
                }],
                ..split::Split::default()
            },
            None => {
                room.take(message.len());
                if room.0.is_none() {
                    let spans = split::count_spans(&message);
                    super::OtlpStats::add(&self.stats.spans_backpressured, spans);
                    return unavailable(format, BUFFER_FULL);
                }
                let split = split::split(&message, MAX_REQUEST_BYTES, MAX_REQUEST_SPANS, now);
                drop((message, gzipped));
                split
            }
        };
        // The chunks take the room over (the copies they came from are gone); what they
        // need beyond it, they take if it is there.
        let offered = split.chunks.is_empty()
            || match room.0 {
                Some(room) => room.offer(split.chunks),
                None => self.queue.offer(split.chunks),
            };
        if !offered {
            super::OtlpStats::add(&self.stats.spans_backpressured, split.accepted);
            return unavailable(format, BUFFER_FULL);
        }
        super::OtlpStats::add(&self.stats.spans_received, split.accepted + split.refused);
        if split.refused == 0 {
            return success(format, 0, "");
        }
        super::OtlpStats::add(&self.stats.spans_refused, split.refused);
        let mut reasons = Vec::new();
        let large = split.refused - split.out_of_time;
        if large > 0 {
            reasons.push(format!(
                "{large} spans larger than X-Ray's limit of {} bytes were refused (trace ids {})",
                split::MAX_SPAN_BYTES,
                split.refused_traces.join(", ")
            ));
        }
        if split.out_of_time > 0 {
            reasons.push(format!(
                "{} spans ended more than 14 days ago or start more than 2 hours ahead, which X-Ray refuses",
                split.out_of_time
            ));
        }
        let message = reasons.join("; ");
        log::warn!("OTLP: {message}");
        success(format, split.refused, &message)
    }
}

/// The room a request takes in the buffer while it is decoded; `None` once it did not fit.
struct Room(Option<Reserved>);

impl Room {
    /// Takes `bytes` more before a copy is made.
    fn take(&mut self, bytes: usize) {
        if self.0.as_mut().is_some_and(|room| !room.grow(bytes)) {
            self.0 = None;
        }
    }

    /// Gives back what is beyond the `held` bytes of the copies still alive.
    fn settle(&mut self, held: usize) {
        if let Some(room) = &mut self.0 {
            room.shrink_to(held);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::split::MAX_SPAN_BYTES;
    use crate::otlp::{OtlpStats, queue::Queue};
    use std::sync::Arc;

    fn handle(receiver: &Receiver, request: Accepted, body: &[u8]) -> Answer {
        receiver.handle(request, body.to_vec(), None)
    }

    fn receiver(capacity: usize) -> Receiver {
        Receiver {
            queue: Arc::new(Queue::new(capacity)),
            stats: Arc::new(OtlpStats::default()),
            max_body_bytes: 1_000_000,
            refuse_out_of_time: false,
            keep_gzip: true,
        }
    }

    const JSON: Accepted = Accepted {
        format: Format::Json,
        gzip: false,
    };
    const PROTOBUF: Accepted = Accepted {
        format: Format::Protobuf,
        gzip: false,
    };

    fn one_span_json(name_len: usize) -> String {
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"{}","spanId":"0102030405060708","name":"{}"}}]}}]}}]}}"#,
            "ab".repeat(16),
            "n".repeat(name_len)
        )
    }

    #[test]
    fn heads_are_checked_in_the_specification_order() {
        let refused = |m, p, ct, ce| accept_head(m, p, ct, ce).unwrap_err().status;
        assert_eq!(
            refused("POST", "/v1/logs", Some("application/json"), None),
            404
        );
        assert_eq!(refused("GET", "/v1/traces", None, None), 405);
        assert_eq!(refused("POST", "/v1/traces", Some("text/plain"), None), 415);
        assert_eq!(refused("POST", "/v1/traces", None, None), 415);
        assert_eq!(
            refused("POST", "/v1/traces", Some("application/json"), Some("br")),
            415
        );
        let ok = accept_head(
            "POST",
            "/v1/traces",
            Some("Application/X-Protobuf; charset=x"),
            Some("gzip"),
        )
        .unwrap();
        assert_eq!((ok.format, ok.gzip), (Format::Protobuf, true));
        let answer =
            accept_head("GET", "/v1/traces", Some("application/x-protobuf"), None).unwrap_err();
        assert_eq!(answer.content_type, "application/x-protobuf");
        assert!(answer.headers.contains(&("Allow", "POST".to_owned())));
    }

    #[test]
    fn json_is_accepted_into_the_buffer_and_answered_in_json() {
        let receiver = receiver(1_000_000);
        let answer = handle(&receiver, JSON, one_span_json(5).as_bytes());
        assert_eq!((answer.status, &answer.body[..]), (200, &b"{}"[..]));
        assert_eq!(answer.content_type, "application/json");
        assert_eq!(receiver.queue.waiting_spans(), 1);
        assert_eq!(receiver.stats.snapshot().spans_received, 1);
    }

    #[test]
    fn gzip_protobuf_is_accepted_and_a_bomb_is_413() {
        let receiver = receiver(1_000_000);
        let proto = json::to_protobuf(one_span_json(5).as_bytes(), &schema::REQUEST).unwrap();
        let gz = Accepted {
            format: Format::Protobuf,
            gzip: true,
        };
        let answer = handle(&receiver, gz, &gzip::gzip(&proto));
        assert_eq!((answer.status, answer.body.len()), (200, 0));
        let bomb = gzip::gzip(&vec![0u8; 5_000_000]);
        assert_eq!(handle(&receiver, gz, &bomb).status, 413);
        assert_eq!(
            handle(&receiver, gz, b"not gzip at all, really").status,
            400
        );
    }

    #[test]
    fn a_whole_gzip_protobuf_request_keeps_its_body_and_json_or_a_cut_one_does_not() {
        let receiver = receiver(10_000_000);
        let proto = json::to_protobuf(one_span_json(5).as_bytes(), &schema::REQUEST).unwrap();
        let body = gzip::gzip(&proto);
        let gz = |format| Accepted { format, gzip: true };
        assert_eq!(handle(&receiver, gz(Format::Protobuf), &body).status, 200);
        let kept = receiver.queue.take_waiting();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].gzipped.as_deref(), Some(&body[..]));
        assert_eq!(kept[0].bytes, proto);
        // Not without gzip, not for JSON (X-Ray gets protobuf), not when spans were refused.
        handle(&receiver, PROTOBUF, &proto);
        let json = gzip::gzip(one_span_json(5).as_bytes());
        handle(&receiver, gz(Format::Json), &json);
        let mut two = json::to_protobuf(one_span_json(5).as_bytes(), &schema::REQUEST).unwrap();
        two.extend(
            json::to_protobuf(one_span_json(MAX_SPAN_BYTES).as_bytes(), &schema::REQUEST).unwrap(),
        );
        handle(&receiver, gz(Format::Protobuf), &gzip::gzip(&two));
        let kept = receiver.queue.take_waiting();
        assert_eq!(kept.len(), 3);
        assert!(kept.iter().all(|c| c.gzipped.is_none()));
    }

    #[test]
    fn undecodable_bodies_are_400_with_a_status_in_the_request_format() {
        let receiver = receiver(1_000_000);
        let answer = handle(&receiver, JSON, b"{\"resourceSpans\": [");
        assert_eq!(answer.status, 400);
        let status: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(status["code"], 3);
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .contains("bad OTLP JSON")
        );
        let proto = json::to_protobuf(one_span_json(5).as_bytes(), &schema::REQUEST).unwrap();
        let answer = handle(&receiver, PROTOBUF, &proto[..proto.len() - 3]);
        assert_eq!(answer.status, 400);
        assert_eq!(answer.content_type, "application/x-protobuf");
        assert_eq!(&answer.body[..2], &[0x08, 3]);
        assert_eq!(receiver.queue.used_bytes(), 0);
        assert_eq!(receiver.stats.snapshot().answered, vec![(400, 2)]);
    }

    #[test]
    fn a_full_buffer_is_503_with_retry_after_and_nothing_is_kept() {
        let receiver = receiver(100);
        let answer = handle(&receiver, JSON, one_span_json(200).as_bytes());
        assert_eq!(answer.status, 503);
        assert!(answer.headers.contains(&("Retry-After", "2".to_owned())));
        assert_eq!(receiver.queue.used_bytes(), 0);
        // Not decoded, so its spans are not known.
        assert_eq!(receiver.stats.snapshot().spans_backpressured, 0);
    }

    #[test]
    fn a_request_there_is_no_room_to_split_is_503_with_its_spans_counted_uncopied() {
        // Over the 10,000 spans of one upstream request, so it would be split.
        let span = json::to_protobuf(one_span_json(1).as_bytes(), &schema::REQUEST).unwrap();
        let spans: Vec<u8> = (0..10_001).flat_map(|_| span.iter().copied()).collect();
        let receiver = receiver(spans.len() + 100);
        let reserved = receiver.queue.reserve(spans.len()).unwrap();
        let answer = receiver.handle(PROTOBUF, spans, Some(reserved));
        assert_eq!(answer.status, 503);
        assert_eq!(receiver.queue.used_bytes(), 0);
        assert_eq!(receiver.stats.snapshot().spans_backpressured, 10_001);
    }

    #[test]
    fn the_room_taken_for_a_body_becomes_its_chunks_and_nothing_more_stays_taken() {
        let receiver = receiver(10_000_000);
        let proto = json::to_protobuf(one_span_json(5000).as_bytes(), &schema::REQUEST).unwrap();
        let reserved = receiver.queue.reserve(proto.len()).unwrap();
        let answer = receiver.handle(PROTOBUF, proto.clone(), Some(reserved));
        assert_eq!(answer.status, 200);
        assert_eq!(receiver.queue.used_bytes(), proto.len());
        // JSON: its room becomes that of the smaller protobuf it turns into.
        let json = one_span_json(5000);
        let reserved = receiver.queue.reserve(json.len()).unwrap();
        assert_eq!(
            receiver
                .handle(JSON, json.into_bytes(), Some(reserved))
                .status,
            200
        );
        assert_eq!(receiver.queue.used_bytes(), 2 * proto.len());
        // Refused: its room is given back.
        let reserved = receiver.queue.reserve(10).unwrap();
        assert_eq!(
            receiver
                .handle(PROTOBUF, b"\xff".to_vec(), Some(reserved))
                .status,
            400
        );
        assert_eq!(receiver.queue.used_bytes(), 2 * proto.len());
        let taken = receiver.queue.take_waiting();
        assert_eq!(taken[0].bytes, proto, "the body itself, uncopied");
        assert_eq!(taken[1].bytes, proto);
    }

    #[test]
    fn a_gzip_body_there_is_no_room_to_decompress_is_503_with_its_spans_counted() {
        let proto = json::to_protobuf(one_span_json(500).as_bytes(), &schema::REQUEST).unwrap();
        let body = gzip::gzip(&proto);
        let receiver = receiver(body.len() + 10);
        let gz = Accepted {
            format: Format::Protobuf,
            gzip: true,
        };
        assert_eq!(handle(&receiver, gz, &body).status, 503);
        assert_eq!(receiver.queue.used_bytes(), 0);
        assert_eq!(receiver.stats.snapshot().spans_backpressured, 1);
        // With room it is taken, the body kept beside it within the budget.
        let receiver = self::receiver(proto.len() + body.len());
        assert_eq!(handle(&receiver, gz, &body).status, 200);
        assert_eq!(receiver.queue.used_bytes(), proto.len() + body.len());
    }

    #[test]
    fn an_oversized_span_is_refused_by_partial_success() {
        let mut receiver = receiver(10_000_000);
        receiver.max_body_bytes = 10_000_000;
        let big = one_span_json(MAX_SPAN_BYTES + 10);
        let answer = handle(&receiver, JSON, big.as_bytes());
        assert_eq!(answer.status, 200);
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["partialSuccess"]["rejectedSpans"], "1");
        assert!(
            body["partialSuccess"]["errorMessage"]
                .as_str()
                .unwrap()
                .contains(&"ab".repeat(16))
        );
        assert_eq!(receiver.stats.snapshot().spans_refused, 1);
    }

    #[test]
    fn spans_out_of_x_rays_times_are_refused_by_partial_success_when_asked() {
        let mut receiver = receiver(1_000_000);
        receiver.refuse_out_of_time = true;
        let now = split::now_nanos();
        let text = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"name":"now","startTimeUnixNano":"{now}","endTimeUnixNano":"{now}"}},{{"name":"unset"}}]}}]}}]}}"#
        );
        let answer = handle(&receiver, JSON, text.as_bytes());
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["partialSuccess"]["rejectedSpans"], "1");
        assert!(
            body["partialSuccess"]["errorMessage"]
                .as_str()
                .unwrap()
                .contains("more than 14 days ago")
        );
        assert_eq!(receiver.queue.waiting_spans(), 1);
        let stats = receiver.stats.snapshot();
        assert_eq!((stats.spans_received, stats.spans_refused), (2, 1));
    }
}

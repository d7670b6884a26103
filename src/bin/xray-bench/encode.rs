//! The two per-document steps alone, without the relay process, the network or the other
//! threads around them: the receiver's check of a datagram, and turning documents into a
//! `PutTraceSegments` body.
//!
//! Two shapes per size: the sender's segments (a head of fields, then one long padding
//! string) and segments made of many short fields, as an SDK writes for a request with
//! subsegments and annotations, where most runs between escapes are a few bytes long.

use crate::sender::Segments;
use std::time::Instant;
use xray_relay::batch::encode_put_trace_segments;
use xray_relay::datagram::segment_body;
use xray_relay::pool::Batch;

/// Bodies encoded per round: 50 to 100 ms of work for 1 KB documents.
const BODIES: usize = 1_000;

/// Rounds per measurement; the fastest counts.
const ROUNDS: usize = 7;

/// Prints one table row per size and shape: µs per document to encode and MB/s of documents,
/// and µs per datagram to check (the fastest of [`ROUNDS`] rounds each).
pub fn run(sizes: &[u64]) {
    println!("| size | shape | encode µs/doc | encode MB/s | check µs/datagram |");
    println!("|---|---|---|---|---|");
    for &size in sizes {
        let size = size as usize;
        let mut segments = Segments::new(size);
        let padded = segments.document(1);
        for (shape, document) in [("padding", padded), ("short fields", short_fields(size))] {
            let (micros, megabytes) = measure(&document);
            let check = measure_check(&document);
            println!("| {size} | {shape} | {micros:.2} | {megabytes:.0} | {check:.2} |");
        }
    }
}

/// µs per datagram for the receiver's check (the split at the first newline and the header).
fn measure_check(document: &[u8]) -> f64 {
    let mut datagram = b"{\"format\":\"json\",\"version\":1}\n".to_vec();
    datagram.extend_from_slice(document);
    assert!(
        segment_body(&datagram).is_ok(),
        "the bench's segment must pass the check"
    );
    let checks = BODIES * 50;
    let seconds = fastest_round(|| {
        for _ in 0..checks {
            let _ = std::hint::black_box(segment_body(std::hint::black_box(&datagram)));
        }
    });
    seconds * 1e6 / checks as f64
}

fn measure(document: &[u8]) -> (f64, f64) {
    let mut batch = Batch::new();
    while batch.push_document(document) {}
    let mut body = Vec::new();
    // Once to size the body, as a running uploader's is.
    encode_put_trace_segments(&batch, &mut body);
    let seconds = fastest_round(|| {
        for _ in 0..BODIES {
            encode_put_trace_segments(std::hint::black_box(&batch), &mut body);
            std::hint::black_box(&body);
        }
    });
    let documents = (BODIES * batch.len()) as f64;
    (
        seconds * 1e6 / documents,
        documents * document.len() as f64 / seconds / 1e6,
    )
}

/// Seconds taken by the fastest of [`ROUNDS`] runs of `round`: on a shared host the slower
/// ones measure the neighbours.
fn fastest_round(mut round: impl FnMut()) -> f64 {
    (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            round();
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// A segment of about `size` bytes made of short string fields.
fn short_fields(size: usize) -> Vec<u8> {
    let mut document = String::from(
        "{\"id\":\"70de5b6f19ff9a0a\",\"trace_id\":\"1-5f84c7a1-a006649127e371903a2de979\",\
         \"name\":\"orders\",\"start_time\":1602537377.123456,\"end_time\":1602537378.5,\
         \"annotations\":{",
    );
    let mut field = 0;
    while document.len() + 40 < size {
        if field > 0 {
            document.push(',');
        }
        document.push_str(&format!("\"key_{field}\":\"value {field}\""));
        field += 1;
    }
    document.push_str("}}");
    document.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_field_segments_are_json_of_about_the_size_asked() {
        for size in [1024, 8192] {
            let document = short_fields(size);
            assert!(document.len() <= size && document.len() + 60 > size);
            let value: serde_json::Value = serde_json::from_slice(&document).unwrap();
            assert!(value["annotations"].as_object().unwrap().len() > size / 40);
        }
    }
}

//! Where batches go: X-Ray's `PutTraceSegments`, or a local file of JSON lines (offline mode).

pub use crate::aws::BackendError;
use crate::batch::{self, Unprocessed};
use crate::pool::Batch;
use crate::stats::ErrorClass;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

/// Something that POSTs a signed JSON body to an X-Ray API path and returns the reply body.
pub trait PostJson: Send + Sync {
    /// POSTs `body` to `path` (e.g. `/TraceSegments`); `Ok` only for a 2xx reply.
    fn post_json(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, BackendError>;
}

impl PostJson for crate::aws::XRayClient {
    fn post_json(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, BackendError> {
        crate::aws::XRayClient::post_json(self, path, body).map(|response| response.body)
    }
}

/// A place batches of segment documents are delivered to.
pub trait Destination: Send + Sync {
    /// Delivers `batch`; returns the documents the destination did not accept.
    ///
    /// `scratch` is the caller's reusable buffer for the request body.
    fn put_trace_segments(
        &self,
        batch: &Batch,
        scratch: &mut Vec<u8>,
    ) -> Result<Vec<Unprocessed>, BackendError>;
}

/// Delivers batches to X-Ray with `PutTraceSegments`.
pub struct XRaySegments<P> {
    client: P,
}

impl<P: PostJson> XRaySegments<P> {
    /// Sends through `client`.
    pub fn new(client: P) -> Self {
        XRaySegments { client }
    }
}

impl<P: PostJson> Destination for XRaySegments<P> {
    fn put_trace_segments(
        &self,
        batch: &Batch,
        scratch: &mut Vec<u8>,
    ) -> Result<Vec<Unprocessed>, BackendError> {
        batch::encode_put_trace_segments(batch, scratch);
        let reply = self.client.post_json("/TraceSegments", scratch)?;
        Ok(batch::parse_put_trace_segments_reply(&reply))
    }
}

/// Writes each document as one line of JSON to a file or to standard output.
///
/// A document that is a JSON object (every segment an SDK sends) is written as it is, its
/// newlines made spaces. Anything else that came after a valid header (the relay keeps such
/// bodies, as the original does, for X-Ray to judge) is written as a JSON string holding the
/// document as X-Ray would receive it (bytes that are not UTF-8 replaced, see
/// [`batch::push_json_string`]), so every line stays valid JSON and a reader tells the two
/// apart by the line's first character.
pub struct LocalSink {
    out: Mutex<Box<dyn Write + Send>>,
    name: String,
}

impl LocalSink {
    /// Opens `target` for appending (`-` means standard output).
    pub fn open(target: &str) -> io::Result<LocalSink> {
        let out: Box<dyn Write + Send> = if target == "-" {
            Box::new(io::stdout())
        } else {
            Box::new(BufWriter::new(open_append(Path::new(target))?))
        };
        Ok(LocalSink {
            out: Mutex::new(out),
            name: target.to_string(),
        })
    }

    /// Writes `line` (which ends with a newline) and flushes it, as one write under the lock
    /// so that lines from different writers never interleave.
    pub fn write_line(&self, line: &[u8]) -> io::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        out.write_all(line)?;
        out.flush()
    }

    fn write_batch(&self, batch: &Batch, line: &mut Vec<u8>) -> io::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        for document in batch.documents() {
            line.clear();
            if is_json_object(document) {
                // Inside a JSON document a raw newline can only be whitespace between tokens,
                // so replacing it with a space keeps the document and makes it one line.
                line.extend(document.iter().map(|&b| match b {
                    b'\n' | b'\r' => b' ',
                    other => other,
                }));
            } else {
                batch::push_json_string(line, document);
            }
            line.push(b'\n');
            out.write_all(line)?;
        }
        out.flush()
    }
}

/// Whether `document` is one JSON object in UTF-8 (serde_json does not check UTF-8 inside
/// strings it skips, so that is checked first).
fn is_json_object(document: &[u8]) -> bool {
    std::str::from_utf8(document).is_ok()
        && document.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(document).is_ok()
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Destination for LocalSink {
    fn put_trace_segments(
        &self,
        batch: &Batch,
        scratch: &mut Vec<u8>,
    ) -> Result<Vec<Unprocessed>, BackendError> {
        self.write_batch(batch, scratch)
            .map_err(|err| BackendError::Transport {
                class: ErrorClass::Other,
                detail: format!("cannot write to local sink {}: {err}", self.name),
            })?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::batch_of;

    /// Answers every call with `reply`, or with HTTP 503 when it is `None`.
    struct Recorder {
        reply: Option<Vec<u8>>,
        seen: Mutex<Vec<(String, Vec<u8>)>>,
    }

    impl PostJson for Recorder {
        fn post_json(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, BackendError> {
            self.seen
                .lock()
                .unwrap()
                .push((path.to_string(), body.to_vec()));
            self.reply.clone().ok_or_else(|| BackendError::Http {
                status: 503,
                error_type: None,
                message: "unavailable".into(),
                request_id: String::new(),
                undecodable: None,
            })
        }
    }

    #[test]
    fn xray_destination_posts_the_documents_and_reads_unprocessed_ones() {
        let recorder = Recorder {
            reply: Some(
                br#"{"UnprocessedTraceSegments":[{"Id":"b","ErrorCode":"InvalidSegment"}]}"#
                    .to_vec(),
            ),
            seen: Mutex::new(Vec::new()),
        };
        let destination = XRaySegments::new(recorder);
        let mut scratch = Vec::new();
        let unprocessed = destination
            .put_trace_segments(&batch_of(&[r#"{"id":"a"}"#, r#"{"id":"b"}"#]), &mut scratch)
            .unwrap();
        assert_eq!(unprocessed.len(), 1);
        let seen = destination.client.seen.lock().unwrap();
        assert_eq!(seen[0].0, "/TraceSegments");
        let body: serde_json::Value = serde_json::from_slice(&seen[0].1).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"TraceSegmentDocuments": ["{\"id\":\"a\"}", "{\"id\":\"b\"}"]})
        );
    }

    #[test]
    fn xray_destination_passes_failures_on() {
        let destination = XRaySegments::new(Recorder {
            reply: None,
            seen: Mutex::new(Vec::new()),
        });
        let result = destination.put_trace_segments(&batch_of(&["{}"]), &mut Vec::new());
        assert_eq!(result.unwrap_err().class(), ErrorClass::Http5xx);
    }

    #[test]
    fn local_sink_writes_one_line_per_document() {
        let dir = crate::test_support::TempDir::new("sink");
        let path = dir.0.join("segments.jsonl");
        let sink = LocalSink::open(path.to_str().unwrap()).unwrap();
        let documents = [
            r#"{"id":"1"}"#,
            "{\n  \"id\": \"2\",\r\n  \"n\": \"a\\nb\"\n}",
        ];
        sink.put_trace_segments(&batch_of(&documents), &mut Vec::new())
            .unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = written
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["id"], "1");
        assert_eq!(lines[1]["n"], "a\nb");
    }

    /// Bodies the relay now keeps as the original does: the sink still writes one valid JSON
    /// line for each, a string where the document is not a JSON object.
    #[test]
    fn local_sink_writes_other_documents_as_json_strings() {
        let dir = crate::test_support::TempDir::new("sink-other");
        let path = dir.0.join("segments.jsonl");
        let sink = LocalSink::open(path.to_str().unwrap()).unwrap();
        let pool = crate::pool::Pool::with_memory(crate::pool::MIN_POOL_BYTES);
        let documents: [&[u8]; 6] = [
            b"{\"name\":\"caf\xe9\"}",
            b"{\"name\":\"raw\ttab\",\n\"x\":1}",
            b"{\"id\":\"1\"}\x00",
            b"[1,2]",
            b"not json\r\nat all",
            b" {\"id\":\"ok\"}\n",
        ];
        for document in documents {
            pool.push(document);
        }
        pool.close();
        let mut batch = Batch::new();
        assert!(pool.take_batch(&mut batch));
        sink.put_trace_segments(&batch, &mut Vec::new()).unwrap();
        let written = std::fs::read(&path).unwrap();
        let lines: Vec<serde_json::Value> = written
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                serde_json::json!("{\"name\":\"caf\u{FFFD}\"}"),
                serde_json::json!("{\"name\":\"raw\ttab\",\n\"x\":1}"),
                serde_json::json!("{\"id\":\"1\"}\u{0}"),
                serde_json::json!("[1,2]"),
                serde_json::json!("not json\r\nat all"),
                serde_json::json!({"id": "ok"}),
            ]
        );
    }
}

//! xray-relay: receives X-Ray segments over UDP, keeps them in a fixed pool and uploads them in batches.
//!
//! The modules follow the data:
//!
//! ```text
//! receive.rs   UDP socket, one blocking thread that naps under load; reader.rs: up to eight
//!              datagrams per system call (and the kernel's drop count) → datagram.rs: header check
//! pool.rs      one fixed arena + slot table; oldest out when full (or, with a spool, the new one)
//! upload.rs    `Concurrency` blocking uploader threads (ureq); retry.rs decides and backs off
//! batch.rs     PutTraceSegments body (documents escaped, never re-encoded) and reply
//! sink.rs      where batches go: X-Ray, or a local file (offline mode)
//! spool.rs     a writer thread fed by a bounded queue; files of length + CRC records
//!              (spool/format.rs, spool/writer.rs); replay.rs sends them later
//! telemetry.rs PutTelemetryRecords every 60 s; stats.rs holds the counters
//! http/        server-side HTTP both services share: server.rs (listeners on one thread and
//!              executor, the connection cap, the per-connection request loop and its time
//!              limits, bodies within a service's rules; a `Service` answers each request),
//!              request.rs (heads, httparse), chunked.rs, response.rs (answers)
//! proxy/       the TCP proxy's service: service.rs (routes a request; POST /v1/traces goes to
//!              the OTLP service), forward.rs (re-signed, streamed back), local.rs (/healthz,
//!              offline sampling), metrics.rs (/metrics); mod.rs starts both ports' server
//! otlp/        OpenTelemetry in: http.rs (the OTLP service), receive.rs, protobuf.rs /
//!              json.rs / schema.rs (decode), queue.rs (its share of the buffer), split.rs,
//!              forward.rs (signed to X-Ray's OTLP endpoint), translate/ and segments.rs
//!              (spans → segments into the pool)
//! aws/         credentials, region, endpoints, SigV4 signing, the X-Ray HTTP client
//! cli.rs, config/, settings.rs, logging.rs   flags, cfg.yaml (read as go-yaml v2 reads it),
//!              their merge, log lines; go_url.rs / go_addr.rs: Go's URL and address rules
//! relay.rs     wiring and the shutdown order; shutdown.rs signals; main.rs start-up
//! ```

pub mod aws;
pub mod batch;
pub mod cli;
pub mod config;
pub mod datagram;
pub mod go_addr;
pub mod go_url;
pub mod http;
pub mod logging;
pub mod otlp;
pub mod pool;
pub mod proxy;
pub mod reader;
pub mod receive;
pub mod relay;
pub mod replay;
pub mod retry;
pub mod settings;
pub mod shutdown;
pub mod sink;
pub mod spool;
pub mod stats;
pub mod telemetry;
#[cfg(test)]
mod test_support;
pub mod throttle;
pub mod upload;

//! The OTLP/HTTP clients: a few keep-alive connections posting requests of [`Requests`]
//! to the relay's `/v1/traces` as fast as it answers (or at a total rate), for a given time.
//! A 503 or 429 (the relay's buffer is full) is counted and the same request sent again
//! after a short wait, as an exporter's retry would; spans count as sent once accepted.

use crate::spans::Requests;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use xray_relay::otlp::gzip::gzip;

/// How the clients send.
#[derive(Clone)]
pub struct ClientOptions {
    /// The relay's OTLP address.
    pub target: SocketAddr,
    /// Connections, each in its own thread.
    pub connections: usize,
    /// Spans per request.
    pub spans: usize,
    /// Bytes per span (about).
    pub span_size: usize,
    /// gzip request bodies (in the client threads, as an exporter does).
    pub gzip: bool,
    /// Sending stops after this long.
    pub duration: Duration,
    /// Total spans per second; 0: each connection sends its next request once answered.
    pub rate: u64,
    /// At most this many spans in all (the tracker's size).
    pub max_spans: u64,
}

/// What the clients did.
#[derive(Debug, Default)]
pub struct Sent {
    /// Requests answered 200.
    pub requests: u64,
    /// Spans in them.
    pub spans: u64,
    /// Answers 503 or 429 (each retried).
    pub retried: u64,
    /// Other answers or broken connections (their spans are not sent).
    pub failed: u64,
    /// Bytes of request bodies sent (accepted requests only).
    pub body_bytes: u64,
    /// Time from the first request to the last answer.
    pub elapsed: Duration,
    /// Answer times of the accepted requests, µs, sorted.
    pub answer_us: Vec<u64>,
}

/// Runs the clients until `options.duration` has passed; returns their sum.
pub fn send(options: &ClientOptions) -> Sent {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..options.connections)
        .map(|_| {
            let (options, next) = (options.clone(), next.clone());
            std::thread::spawn(move || connection(&options, &next, started))
        })
        .collect();
    let mut total = Sent::default();
    for thread in threads {
        match thread.join() {
            Ok(Ok(sent)) => {
                total.requests += sent.requests;
                total.spans += sent.spans;
                total.retried += sent.retried;
                total.failed += sent.failed;
                total.body_bytes += sent.body_bytes;
                total.answer_us.extend(sent.answer_us);
            }
            Ok(Err(err)) => {
                eprintln!("xray-bench: an OTLP client connection failed: {err}");
                total.failed += 1;
            }
            Err(_) => total.failed += 1,
        }
    }
    total.elapsed = started.elapsed();
    total.answer_us.sort_unstable();
    total
}

fn connection(options: &ClientOptions, next: &AtomicU64, started: Instant) -> io::Result<Sent> {
    let mut requests = Requests::new(options.spans, options.span_size);
    let per_request = requests.spans() as u64;
    let mut stream = TcpStream::connect(options.target)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut sent = Sent::default();
    let mut head = Vec::new();
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let first = n * per_request;
        if started.elapsed() >= options.duration || first + per_request > options.max_spans {
            return Ok(sent);
        }
        if let Some(due_ns) = (first * 1_000_000_000).checked_div(options.rate) {
            let due = Duration::from_nanos(due_ns);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let plain = requests.request(first);
        let compressed;
        let body = if options.gzip {
            compressed = gzip(plain);
            &compressed[..]
        } else {
            plain
        };
        loop {
            let asked = Instant::now();
            let status = post(&mut stream, &mut reader, &mut head, body, options.gzip)?;
            match status {
                200 => {
                    sent.requests += 1;
                    sent.spans += per_request;
                    sent.body_bytes += body.len() as u64;
                    sent.answer_us.push(asked.elapsed().as_micros() as u64);
                }
                503 | 429 => {
                    sent.retried += 1;
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                _ => sent.failed += 1,
            }
            break;
        }
    }
}

/// One request on the connection; returns the answer's status.
fn post(
    stream: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    head: &mut Vec<u8>,
    body: &[u8],
    gzip: bool,
) -> io::Result<u16> {
    let request_head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: relay\r\nContent-Type: application/x-protobuf\r\n{}Content-Length: {}\r\n\r\n",
        if gzip {
            "Content-Encoding: gzip\r\n"
        } else {
            ""
        },
        body.len()
    );
    stream.write_all(request_head.as_bytes())?;
    stream.write_all(body)?;
    head.clear();
    loop {
        let line_start = head.len();
        if reader.read_until(b'\n', head)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the relay closed the connection",
            ));
        }
        if &head[line_start..] == b"\r\n" {
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    if !matches!(response.parse(head), Ok(httparse::Status::Complete(_))) {
        return Err(io::Error::other("unreadable answer from the relay"));
    }
    let length: u64 = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
        .unwrap_or(0);
    io::copy(&mut reader.by_ref().take(length), &mut io::sink())?;
    Ok(response.code.unwrap_or(0))
}

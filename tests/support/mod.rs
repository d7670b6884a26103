//! Test support: a mock X-Ray endpoint on localhost and a handle on a running `xray` binary.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the mock endpoint received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The status the mock answered with.
    pub status: u16,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// What the mock answers: status and body, chosen per request.
pub type Responder = dyn Fn(&Request) -> (u16, String) + Send + Sync;

/// A mock X-Ray API: records every request and answers with `responder`.
pub struct MockXRay {
    pub address: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl MockXRay {
    /// Accepts everything with `{}` (no unprocessed segments).
    pub fn start() -> MockXRay {
        MockXRay::with_responder(Arc::new(|_| (200, "{}".to_string())))
    }

    pub fn with_responder(responder: Arc<Responder>) -> MockXRay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let recorded = recorded.clone();
                let responder = responder.clone();
                std::thread::spawn(move || serve(stream, &recorded, &*responder));
            }
        });
        MockXRay { address, requests }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Every document X-Ray accepted: those of the `PutTraceSegments` calls answered with a
    /// 2xx, in arrival order. (A call refused and retried would otherwise count twice.)
    pub fn documents(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.path == "/TraceSegments" && (200..300).contains(&r.status))
            .flat_map(|r| {
                r.json()["TraceSegmentDocuments"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Every telemetry record received.
    pub fn telemetry_records(&self) -> Vec<serde_json::Value> {
        self.requests()
            .iter()
            .filter(|r| r.path == "/TelemetryRecords")
            .flat_map(|r| r.json()["TelemetryRecords"].as_array().unwrap().clone())
            .collect()
    }

    /// Waits until `n` documents arrived or `timeout` passes; returns the documents.
    pub fn wait_for_documents(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let docs = self.documents();
            if docs.len() >= n || Instant::now() > deadline {
                return docs;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve(stream: TcpStream, recorded: &Mutex<Vec<Request>>, responder: &Responder) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            head.extend_from_slice(&line);
            if line == b"\r\n" {
                break;
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        if !matches!(parsed.parse(&head), Ok(httparse::Status::Complete(_))) {
            return;
        }
        let headers: HashMap<String, String> = parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut request = Request {
            method: parsed.method.unwrap_or("").to_string(),
            path: parsed.path.unwrap_or("").to_string(),
            headers,
            body,
            status: 0,
        };
        let (status, reply) = responder(&request);
        request.status = status;
        let request_id = {
            let mut recorded = recorded.lock().unwrap();
            recorded.push(request);
            // As X-Ray, every answer carries a request id: `mock-1` for the first request.
            format!("mock-{}", recorded.len())
        };
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nx-amzn-RequestId: {request_id}\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// A localhost port free for both UDP and TCP, never handed out twice in this process.
///
/// Ports come from below the kernel's ephemeral range (32768–60999 by default): a port picked
/// with `bind(0)` and released can be taken again before the relay binds it, by another test's
/// `bind(0)` or by any outgoing connection, which made start-up fail now and then in CI.
/// Each test binary starts at its own place (from its process id), so binaries that run at the
/// same time rarely meet, and a port still in use is skipped.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const COUNT: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % COUNT,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..COUNT {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % COUNT) as u16;
        let free = UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free port in 127.0.0.1:{FIRST}..{}", FIRST + COUNT);
}

/// A scratch directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("xray-relay-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `xray` binary under test (`XRAY_RUNNER`, e.g. `qemu-aarch64-static`, may wrap it).
pub fn relay_command() -> Command {
    let binary =
        std::env::var("XRAY_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_xray").to_string());
    let mut command = match std::env::var("XRAY_RUNNER") {
        Ok(runner) if !runner.is_empty() => {
            let mut c = Command::new(runner);
            c.arg(binary);
            c
        }
        _ => Command::new(binary),
    };
    // The tests decide every input: nothing from the developer's own AWS setup leaks in.
    command.env_clear();
    command.env("PATH", std::env::var("PATH").unwrap_or_default());
    command.env("HOME", "/nonexistent");
    command
}

/// Runs `xray` with `args` to completion; returns (status, stdout, stderr).
pub fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut command = relay_command();
    command.args(args).envs(env.iter().copied());
    let output = command.output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A running relay.
pub struct Relay {
    pub child: Child,
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub log: PathBuf,
    pub dir: TempDir,
    sender: UdpSocket,
}

/// How to start a relay for a test.
pub struct RelayOptions<'a> {
    /// Extra lines for cfg.yaml (Version 2 is always there).
    pub config: String,
    pub args: Vec<String>,
    pub env: Vec<(&'a str, String)>,
}

impl<'a> RelayOptions<'a> {
    /// Upload to `endpoint` with test credentials, region us-east-1, local mode, debug log.
    pub fn uploading_to(endpoint: &str) -> RelayOptions<'a> {
        RelayOptions {
            config: format!("Endpoint: \"{endpoint}\"\n"),
            args: vec![
                "-o".into(),
                "-n".into(),
                "us-east-1".into(),
                "-l".into(),
                "debug".into(),
            ],
            env: vec![
                ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE".into()),
                (
                    "AWS_SECRET_ACCESS_KEY",
                    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
                ),
            ],
        }
    }
}

impl Relay {
    pub fn start(options: RelayOptions) -> Relay {
        let dir = TempDir::new("relay");
        let port = free_port();
        let tcp_port = free_port();
        let config = dir.path("cfg.yaml");
        std::fs::write(&config, format!("Version: 2\n{}", options.config)).unwrap();
        let log = dir.path("xray.log");
        let mut command = relay_command();
        command
            .arg("-c")
            .arg(&config)
            .arg("-b")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-t")
            .arg(format!("127.0.0.1:{tcp_port}"))
            .arg("-f")
            .arg(&log)
            .args(&options.args)
            .envs(options.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command.spawn().unwrap();
        let relay = Relay {
            child,
            udp: format!("127.0.0.1:{port}").parse().unwrap(),
            tcp: format!("127.0.0.1:{tcp_port}").parse().unwrap(),
            log,
            dir,
            sender: UdpSocket::bind("127.0.0.1:0").unwrap(),
        };
        // The original's last start-up line: both sockets are bound by then.
        relay.wait_for_log("Starting proxy http server on", Duration::from_secs(20));
        relay
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; panics with the log if it does not in time.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > deadline {
                panic!("the log never said {needle:?}:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn send(&self, datagram: &[u8]) {
        self.sender.send_to(datagram, self.udp).unwrap();
    }

    pub fn send_segment(&self, segment: &str) {
        self.send(format!("{{\"format\":\"json\",\"version\":1}}\n{segment}").as_bytes());
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.log_text());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("relay did not stop within 15 s:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A segment document with a unique id.
pub fn segment(i: usize) -> String {
    format!(
        r#"{{"trace_id":"1-5f84c7a1-{i:024x}","id":"{i:016x}","name":"test-{i}","start_time":1602537377.0,"end_time":1602537378.5,"annotations":{{"n":{i}}}}}"#
    )
}

/// Reads a file if it exists.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// An HTTP answer read off a raw connection.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Reads one response (Content-Length, chunked, or until the connection closes).
pub fn read_response(reader: &mut impl BufRead) -> std::io::Result<HttpResponse> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed before an answer",
        ));
    }
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(&format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| bad(line))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut response = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if let Some(length) = response.header("content-length") {
        let length: usize = length.parse().map_err(|_| bad("bad length"))?;
        response.body = vec![0; length];
        reader.read_exact(&mut response.body)?;
    } else if response.header("transfer-encoding") == Some("chunked") {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim(), 16).map_err(|_| bad("bad chunk"))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            response.body.extend_from_slice(&chunk[..size]);
        }
    } else if status != 100 && status != 204 && status != 304 {
        reader.read_to_end(&mut response.body)?;
    }
    Ok(response)
}

/// POSTs an OTLP JSON `body` to `/v1/traces` at `address` and returns the answer's status.
pub fn post_otlp_json(address: SocketAddr, body: &str) -> u16 {
    let request = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    http_raw(address, request.as_bytes())
        .expect("the OTLP receiver answers")
        .status
}

/// Sends `request` as is on a new connection and reads one answer.
pub fn http_raw(address: SocketAddr, request: &[u8]) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(request)?;
    read_response(&mut BufReader::new(stream))
}

/// Reads the status line of the one answer to `request` on a new connection.
pub fn status_line(address: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    answer.trim_end().to_owned()
}

/// `GET path` on a new connection.
pub fn http_get(address: SocketAddr, path: &str) -> HttpResponse {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    http_raw(address, request.as_bytes()).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `POST path` with a JSON body on a new connection.
pub fn http_post(address: SocketAddr, path: &str, body: &str) -> HttpResponse {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http_raw(address, request.as_bytes()).unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// The value of one Prometheus series (`name` or `name{labels}`) in a `/metrics` text.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

/// A field of /proc/PID/status in kB (`VmRSS`, `VmHWM`).
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

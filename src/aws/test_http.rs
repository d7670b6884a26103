//! A tiny HTTP/1.1 server on 127.0.0.1 for unit tests of the metadata, container and STS
//! clients: every request is recorded and answered by a closure. Also a tiny CONNECT proxy
//! that knows one made-up host name, to show which calls go through a proxy.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// What the handler answers: status and body.
pub type Reply = (u16, String);

/// A running test server; it lives until the test process ends.
pub struct TestServer {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestServer {
    /// Serves every connection on its own thread with `handler`.
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let recorded = seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let handler = handler.clone();
                let recorded = recorded.clone();
                thread::spawn(move || serve_connection(stream, &*handler, &recorded));
            }
        });
        TestServer { port, seen }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_connection(
    mut stream: TcpStream,
    handler: &(dyn Fn(&Seen) -> Reply + Send + Sync),
    recorded: &Mutex<Vec<Seen>>,
) {
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut stream, &mut buffer) {
        recorded.lock().unwrap().push(request.clone());
        let (status, body) = handler(&request);
        let response = format!(
            "HTTP/1.1 {status} Test\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Seen> {
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
        read_more(stream, buffer)?;
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        read_more(stream, buffer)?;
    }
    let body = String::from_utf8_lossy(&buffer[body_start..body_start + length]).into_owned();
    buffer.drain(..body_start + length);
    Some(Seen {
        method,
        path,
        headers,
        body,
    })
}

fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk) {
        Ok(0) | Err(_) => None,
        Ok(read) => {
            buffer.extend_from_slice(&chunk[..read]);
            Some(())
        }
    }
}

/// A CONNECT proxy on 127.0.0.1 that records every CONNECT target and tunnels those naming
/// its made-up host to a local port; other targets get 502.
pub struct TestProxy {
    pub port: u16,
    connects: Arc<Mutex<Vec<String>>>,
}

impl TestProxy {
    /// Tunnels `CONNECT made_up_host:<any port>` to `127.0.0.1:target_port`.
    pub fn start(made_up_host: &'static str, target_port: u16) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connects = Arc::new(Mutex::new(Vec::new()));
        let recorded = connects.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let recorded = recorded.clone();
                thread::spawn(move || tunnel(stream, made_up_host, target_port, &recorded));
            }
        });
        TestProxy { port, connects }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The CONNECT targets (`host:port`) so far.
    pub fn connects(&self) -> Vec<String> {
        self.connects.lock().unwrap().clone()
    }
}

fn tunnel(
    mut client: TcpStream,
    made_up_host: &str,
    target_port: u16,
    recorded: &Mutex<Vec<String>>,
) {
    let mut buffer = Vec::new();
    let Some(request) = read_request(&mut client, &mut buffer) else {
        return;
    };
    if request.method != "CONNECT" {
        let _ = client.write_all(b"HTTP/1.1 405 Only CONNECT\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    recorded.lock().unwrap().push(request.path.clone());
    let known = request
        .path
        .rsplit_once(':')
        .is_some_and(|(host, _)| host == made_up_host);
    let upstream = known
        .then(|| TcpStream::connect(("127.0.0.1", target_port)).ok())
        .flatten();
    let Some(mut upstream) = upstream else {
        let _ = client.write_all(b"HTTP/1.1 502 Unknown Host\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .is_err()
    {
        return;
    }
    // Bytes the client sent after the CONNECT head belong to the tunnel.
    if !buffer.is_empty() && upstream.write_all(&buffer).is_err() {
        return;
    }
    let (Ok(mut client_reader), Ok(mut upstream_writer)) =
        (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    thread::spawn(move || {
        let _ = std::io::copy(&mut client_reader, &mut upstream_writer);
        let _ = upstream_writer.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut upstream, &mut client);
}

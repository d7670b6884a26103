//! The relay under test, as a child process with its own cfg.yaml, ports and log file.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How to start the relay.
#[derive(Clone)]
pub struct RelayOptions {
    /// The `xray` binary.
    pub binary: PathBuf,
    /// A program to run it with (e.g. `qemu-aarch64-static`).
    pub runner: Option<String>,
    /// `-m`: buffer memory in MB.
    pub memory_mb: u64,
    /// cfg.yaml `Concurrency`, when set.
    pub concurrency: Option<u32>,
    /// More arguments, appended last.
    pub extra_args: Vec<String>,
    /// Keep the relay's directory (cfg.yaml and log) after it stops.
    pub keep_logs: bool,
    /// With a spool of this many MB (`--spool-dir` in the relay's directory).
    pub spool_mb: Option<u64>,
    /// Receive OTLP (`--otlp-address` on a free port) with these settings.
    pub otlp: Option<OtlpSetup>,
}

/// The relay's OTLP settings for a run.
#[derive(Clone, Debug)]
pub struct OtlpSetup {
    /// `OTLP.Destination`: `otlp` or `segments`.
    pub destination: String,
    /// `OTLP.Compression`: `gzip` or `none`.
    pub compression: String,
}

/// A running relay.
pub struct Relay {
    child: Child,
    pub pid: u32,
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    /// The OTLP/HTTP address, when OTLP is on.
    pub otlp: Option<SocketAddr>,
    pub dir: PathBuf,
    log: PathBuf,
    keep_logs: bool,
}

/// A port free for both UDP and TCP on 127.0.0.1 (bound, then released).
fn free_port() -> io::Result<u16> {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}

impl Relay {
    /// Starts the relay uploading to `endpoint` and waits until it listens.
    pub fn start(options: &RelayOptions, endpoint: &str, tag: &str) -> io::Result<Relay> {
        let dir = std::env::temp_dir().join(format!("xray-bench-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("cfg.yaml");
        let mut yaml = format!("Version: 2\nEndpoint: \"{endpoint}\"\n");
        if let Some(n) = options.concurrency {
            yaml.push_str(&format!("Concurrency: {n}\n"));
        }
        let otlp_port = match &options.otlp {
            Some(otlp) => {
                yaml.push_str(&format!(
                    "OTLP:\n  Destination: {}\n  Compression: {}\n",
                    otlp.destination, otlp.compression
                ));
                Some(free_port()?)
            }
            None => None,
        };
        std::fs::write(&config, yaml)?;
        let log = dir.join("xray.log");
        let (udp_port, tcp_port) = (free_port()?, free_port()?);

        let mut command = match &options.runner {
            Some(runner) => {
                let mut c = Command::new(runner);
                c.arg(&options.binary);
                c
            }
            None => Command::new(&options.binary),
        };
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", "/nonexistent")
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env(
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            )
            .arg("-c")
            .arg(&config)
            .args(["-b", &format!("127.0.0.1:{udp_port}")])
            .args(["-t", &format!("127.0.0.1:{tcp_port}")])
            .args(["-o", "-n", "us-east-1"])
            .args(["-m", &options.memory_mb.to_string()])
            .arg("-f")
            .arg(&log)
            .args(options.spool_mb.iter().flat_map(|mb| {
                [
                    "--spool-dir".to_string(),
                    dir.join("spool").display().to_string(),
                    "--spool-max-mb".to_string(),
                    mb.to_string(),
                ]
            }))
            .args(
                otlp_port
                    .iter()
                    .flat_map(|port| ["--otlp-address".to_string(), format!("127.0.0.1:{port}")]),
            )
            .args(&options.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.join("stderr"))?));
        let child = command
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", options.binary.display())))?;
        let mut relay = Relay {
            pid: child.id(),
            child,
            udp: format!("127.0.0.1:{udp_port}").parse().unwrap(),
            tcp: format!("127.0.0.1:{tcp_port}").parse().unwrap(),
            otlp: otlp_port.map(|port| SocketAddr::from(([127, 0, 0, 1], port))),
            dir,
            log,
            keep_logs: options.keep_logs,
        };
        // The last start-up line: every socket is bound (`Listening on UDP` comes before the
        // UDP bind, as in the original).
        relay.wait_for_log("Starting proxy http server on", Duration::from_secs(60))?;
        Ok(relay)
    }

    /// The relay's `/metrics` text (empty if it cannot be read).
    pub fn metrics(&self) -> String {
        let mut text = String::new();
        if let Ok(mut stream) = TcpStream::connect(self.tcp) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: relay\r\n\r\n");
            let _ = stream.read_to_string(&mut text);
        }
        text
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_text().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "the relay exited ({status}) before listening:\n{}{}",
                    self.log_text(),
                    read(&self.dir.join("stderr"))
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "the relay did not listen within {timeout:?}:\n{}",
                    self.log_text()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits (at most 20 s) for the exit.
    pub fn stop(&mut self) -> io::Result<ExitStatus> {
        // SAFETY: kill with a pid we spawned and have not reaped yet.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                return self.child.wait();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep_logs {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

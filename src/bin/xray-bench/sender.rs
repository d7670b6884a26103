//! The paced UDP sender: one datagram per segment, each with a unique id, at a fixed rate.

use crate::tracker::Tracker;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const HEADER: &[u8] = b"{\"format\":\"json\",\"version\":1}\n";

/// Segment documents of one size that differ only in their id (16 hex digits, also the end of
/// the trace id). Built once; each send rewrites the id in place.
pub struct Segments {
    datagram: Vec<u8>,
    id_at: [usize; 2],
}

impl Segments {
    /// Documents of exactly `size` bytes (at least 300), shaped like an SDK's: quoted keys,
    /// numbers, a nested object and a string with characters that need escaping.
    pub fn new(size: usize) -> Segments {
        let head = "{\"id\":\"0000000000000000\",\"trace_id\":\"1-5f84c7a1-000000000000000000000000\",\
                    \"name\":\"xray-bench\",\"start_time\":1602537377.123456,\"end_time\":1602537378.5,\
                    \"http\":{\"request\":{\"method\":\"GET\",\"url\":\"https://example.com/a?b=c\"},\
                    \"response\":{\"status\":200}},\"annotations\":{\"note\":\"tab\\there \\\"quoted\\\"\"},\
                    \"metadata\":{\"pad\":\"";
        let tail = "\"}}";
        let size = size.max(head.len() + tail.len());
        let mut body = head.as_bytes().to_vec();
        body.resize(size - tail.len(), b'x');
        body.extend_from_slice(tail.as_bytes());
        let mut datagram = HEADER.to_vec();
        datagram.extend_from_slice(&body);
        let id = HEADER.len() + head.find("0000000000000000").unwrap();
        let trace = HEADER.len() + head.find("1-5f84c7a1-").unwrap() + "1-5f84c7a1-00000000".len();
        Segments {
            datagram,
            id_at: [id, trace],
        }
    }

    /// Bytes of the segment document (without the datagram header).
    #[cfg(test)]
    pub fn body_len(&self) -> usize {
        self.datagram.len() - HEADER.len()
    }

    /// The datagram for segment `seq`.
    pub fn datagram(&mut self, seq: u64) -> &[u8] {
        let hex = id_hex(seq);
        for at in self.id_at {
            self.datagram[at..at + 16].copy_from_slice(&hex);
        }
        &self.datagram
    }

    /// The document for segment `seq`, as the sink should receive it.
    pub fn document(&mut self, seq: u64) -> Vec<u8> {
        self.datagram(seq)[HEADER.len()..].to_vec()
    }
}

/// 16 lowercase hex digits.
pub fn id_hex(seq: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = HEX[((seq >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

/// Reads 16 hex digits back.
pub fn parse_id(hex: &[u8]) -> Option<u64> {
    if hex.len() != 16 {
        return None;
    }
    let text = std::str::from_utf8(hex).ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// What the sender did.
pub struct Sent {
    pub send_errors: u64,
    pub elapsed: Duration,
}

/// Sends `count` segments to `target` at `rate` per second, recording each send time.
pub fn send(
    target: SocketAddr,
    segments: &mut Segments,
    rate: u64,
    count: u64,
    tracker: &Tracker,
) -> io::Result<Sent> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(target)?;
    let started = Instant::now();
    let mut seq = 0u64;
    let mut send_errors = 0;
    while seq < count {
        let elapsed = started.elapsed();
        let due = ((elapsed.as_nanos() * u128::from(rate)) / 1_000_000_000) as u64;
        let due = due.min(count);
        if seq >= due {
            // Sleep until the next one is due; the kernel's slack makes small bursts.
            let next = Duration::from_nanos((seq + 1) * 1_000_000_000 / rate);
            std::thread::sleep(next.saturating_sub(elapsed).max(Duration::from_micros(50)));
            continue;
        }
        while seq < due {
            tracker.mark_sent(seq);
            if socket.send(segments.datagram(seq)).is_err() {
                send_errors += 1;
            }
            seq += 1;
        }
    }
    Ok(Sent {
        send_errors,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_have_the_size_asked_and_their_id() {
        let mut s = Segments::new(1024);
        assert_eq!(s.body_len(), 1024);
        let doc = s.document(0xabc);
        assert_eq!(doc.len(), 1024);
        let v: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(v["id"], "0000000000000abc");
        assert_eq!(v["trace_id"], "1-5f84c7a1-000000000000000000000abc");
        assert_eq!(parse_id(&id_hex(u64::MAX - 7)), Some(u64::MAX - 7));
    }
}

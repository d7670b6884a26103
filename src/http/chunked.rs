//! Request bodies sent with `Transfer-Encoding: chunked` (OpenTelemetry's Node exporters send
//! no `Content-Length`), decoded within a size limit and one deadline for the whole body.

use super::request::{BodyError, Reader};
use smol::io::AsyncRead;
use std::time::{Duration, Instant};

/// The longest chunk-size line or trailer line taken (extensions included).
const MAX_LINE: usize = 4096;

/// The most trailer lines taken after the last chunk.
const MAX_TRAILERS: usize = 32;

/// The read buffer is grown to at most this much while chunks pass through it.
const BUFFER_BYTES: usize = 16 * 1024;

/// Reads a chunked body of at most `max_bytes` (decoded) that must all arrive within
/// `timeout`. Trailers are read and ignored. A body over the limit is refused as soon as a
/// chunk size says so, before its bytes are read; so is one whose next chunk `room` refuses
/// (asked with each chunk's size before it is taken).
pub async fn read_chunked<R: AsyncRead + Unpin>(
    reader: &mut Reader,
    io: &mut R,
    max_bytes: usize,
    room: &(dyn Fn(usize) -> bool + Sync),
    timeout: Duration,
) -> Result<Vec<u8>, BodyError> {
    let deadline = Instant::now() + timeout;
    let mut body = Vec::new();
    loop {
        let line = read_line(reader, io, deadline).await?;
        let size = chunk_size(&line)?;
        if size == 0 {
            for _ in 0..=MAX_TRAILERS {
                if read_line(reader, io, deadline).await?.is_empty() {
                    return Ok(body);
                }
            }
            return Err(BodyError::Malformed(format!(
                "more than {MAX_TRAILERS} trailer lines"
            )));
        }
        if size > max_bytes.saturating_sub(body.len()) {
            return Err(BodyError::TooLarge);
        }
        if !room(size) {
            return Err(BodyError::NoRoom);
        }
        body.reserve(size);
        let mut left = size;
        while left > 0 {
            if reader.unread().is_empty() {
                reader.fill(io, BUFFER_BYTES, deadline).await?;
            }
            let take = left.min(reader.unread().len());
            body.extend_from_slice(&reader.unread()[..take]);
            reader.consume(take);
            left -= take;
        }
        if !read_line(reader, io, deadline).await?.is_empty() {
            return Err(BodyError::Malformed(
                "a chunk is longer than its size says".to_owned(),
            ));
        }
    }
}

/// The size a chunk-size line gives, in hex, extensions after `;` ignored.
fn chunk_size(line: &[u8]) -> Result<usize, BodyError> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    let bad = || {
        BodyError::Malformed(format!(
            "bad chunk size line {:?}",
            String::from_utf8_lossy(&line[..line.len().min(40)])
        ))
    };
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(bad());
    }
    let text = std::str::from_utf8(digits).map_err(|_| bad())?;
    usize::from_str_radix(text, 16).map_err(|_| bad())
}

/// The next line without its line end (CRLF, or a bare LF).
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut Reader,
    io: &mut R,
    deadline: Instant,
) -> Result<Vec<u8>, BodyError> {
    loop {
        if let Some(at) = reader.unread().iter().position(|&b| b == b'\n') {
            let mut line = reader.unread()[..at].to_vec();
            reader.consume(at + 1);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(line);
        }
        if reader.unread().len() >= MAX_LINE {
            return Err(BodyError::Malformed(format!(
                "a chunk line longer than {MAX_LINE} bytes"
            )));
        }
        reader.fill(io, BUFFER_BYTES, deadline).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(wire: &[u8], max: usize) -> Result<Vec<u8>, BodyError> {
        let mut io = wire;
        smol::block_on(read_chunked(
            &mut Reader::new(),
            &mut io,
            max,
            &|_| true,
            Duration::from_secs(1),
        ))
    }

    #[test]
    fn chunks_with_extensions_and_trailers_make_one_body() {
        let wire = b"5;name=x\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        assert_eq!(decode(wire, 100).unwrap(), b"hello, world");
        assert_eq!(decode(b"0\r\n\r\n", 100).unwrap(), b"");
        assert_eq!(decode(b"3\nabc\n0\n\n", 100).unwrap(), b"abc");
    }

    #[test]
    fn the_body_after_it_stays_for_the_next_request() {
        let mut io: &[u8] = b"2\r\nab\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        let mut reader = Reader::new();
        let body = smol::block_on(read_chunked(
            &mut reader,
            &mut io,
            10,
            &|_| true,
            Duration::from_secs(1),
        ));
        assert_eq!(body.unwrap(), b"ab");
        assert_eq!(reader.unread(), b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn each_chunk_asks_for_its_room_before_it_is_taken() {
        let asked = std::sync::Mutex::new(Vec::new());
        let room = |size: usize| {
            let mut asked = asked.lock().unwrap();
            asked.push(size);
            asked.iter().sum::<usize>() <= 6
        };
        let mut io: &[u8] = b"4\r\nabcd\r\n2\r\nef\r\n3\r\nghi\r\n0\r\n\r\n";
        let body = smol::block_on(read_chunked(
            &mut Reader::new(),
            &mut io,
            100,
            &room,
            Duration::from_secs(1),
        ));
        assert!(matches!(body, Err(BodyError::NoRoom)));
        assert_eq!(*asked.lock().unwrap(), [4, 2, 3]);
    }

    #[test]
    fn too_large_is_refused_by_the_size_line_alone() {
        // The 1 MB chunk is announced but never sent: refused without waiting for it.
        assert!(matches!(
            decode(b"4\r\nabcd\r\nFFFFF\r\n", 100),
            Err(BodyError::TooLarge)
        ));
        assert!(matches!(
            decode(b"4\r\nabcd\r\n4\r\nabcd\r\n0\r\n\r\n", 7),
            Err(BodyError::TooLarge)
        ));
    }

    #[test]
    fn broken_framing_is_malformed_and_a_cut_body_closed() {
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"-1\r\n",
            b"ffffffffffffffffff\r\n",
            b"3\r\nabcdef\r\n0\r\n\r\n",
        ] {
            assert!(
                matches!(decode(bad, 100), Err(BodyError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long_line = vec![b'1'; MAX_LINE + 10];
        assert!(matches!(
            decode(&long_line, 100),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(decode(b"5\r\nhel", 100), Err(BodyError::Closed)));
    }
}

//! gzip bodies both ways: the gzip frame (RFC 1952) by hand around miniz_oxide's deflate and
//! zlib-rs's inflate, so decompression is bounded by a limit and a bomb stops at it.

use crate::spool::crc32;
use miniz_oxide::deflate::core::{
    CompressorOxide, TDEFLFlush, TDEFLStatus, compress, create_comp_flags_from_zip_params,
};

/// Why a gzip body was not decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GunzipError {
    /// It decompresses to more than the limit.
    TooLarge,
    /// It is not valid gzip; says why.
    Invalid(String),
}

const FHCRC: u8 = 2;
const FEXTRA: u8 = 4;
const FNAME: u8 = 8;
const FCOMMENT: u8 = 16;

/// One gzip member (RFC 1952), its frame read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    /// The deflate data, between the header (and its optional fields) and the trailer.
    pub deflated: &'a [u8],
    /// The CRC-32 of the data, as the trailer gives it.
    pub crc: u32,
    /// The size of the data (modulo 2^32), as the trailer gives it.
    pub size: u32,
}

impl<'a> Member<'a> {
    /// Reads the frame of the gzip member `data`; an error says what is wrong with it.
    pub fn read(data: &'a [u8]) -> Result<Member<'a>, GunzipError> {
        let invalid = |why: &str| GunzipError::Invalid(format!("not gzip: {why}"));
        if data.len() < 18 || data[0] != 0x1f || data[1] != 0x8b {
            return Err(invalid("no gzip header"));
        }
        if data[2] != 8 {
            return Err(invalid("compression method is not deflate"));
        }
        let flags = data[3];
        let mut at = 10;
        if flags & FEXTRA != 0 {
            let length = usize::from(u16::from_le_bytes([data[at], data[at + 1]]));
            at += 2 + length;
        }
        for flag in [FNAME, FCOMMENT] {
            if flags & flag != 0 {
                let end = data
                    .get(at..)
                    .and_then(|rest| rest.iter().position(|&b| b == 0))
                    .ok_or_else(|| invalid("unterminated header field"))?;
                at += end + 1;
            }
        }
        if flags & FHCRC != 0 {
            at += 2;
        }
        let trailer_at = data.len() - 8;
        if at > trailer_at {
            return Err(invalid("truncated"));
        }
        let trailer = &data[trailer_at..];
        Ok(Member {
            deflated: &data[at..trailer_at],
            crc: u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]),
            size: u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]),
        })
    }
}

/// Decompresses one gzip member of at most `max_bytes` decompressed. The size the trailer
/// announces is checked first, so an honest bomb costs nothing and a lying one at most
/// `max_bytes` of work.
pub fn gunzip(data: &[u8], max_bytes: usize) -> Result<Vec<u8>, GunzipError> {
    let member = Member::read(data)?;
    if member.size as usize > max_bytes {
        return Err(GunzipError::TooLarge);
    }
    let body = inflate_at_most(member.deflated, member.size as usize, max_bytes)?;
    if body.len() as u32 != member.size || crc32(&body) != member.crc {
        return Err(GunzipError::Invalid(
            "not gzip: the trailer's size or CRC does not match the data".into(),
        ));
    }
    Ok(body)
}

/// Inflates raw deflate data into a buffer of the size the trailer announces (`expected`, at
/// most `max_bytes`), so an honest body is written once, with no doubling and copying of a
/// growing buffer. A trailer that lies low costs a second pass into `max_bytes`, so a bomb
/// still stops at the limit.
fn inflate_at_most(
    input: &[u8],
    expected: usize,
    max_bytes: usize,
) -> Result<Vec<u8>, GunzipError> {
    let config = zlib_rs::InflateConfig { window_bits: -15 };
    let mut size = expected.min(max_bytes);
    loop {
        let mut out = vec![0u8; size];
        let (written, code) = {
            let (data, code) = zlib_rs::decompress_slice(&mut out, input, config);
            (data.len(), code)
        };
        match code {
            zlib_rs::ReturnCode::Ok => {
                out.truncate(written);
                return Ok(out);
            }
            zlib_rs::ReturnCode::BufError if written == size && size < max_bytes => {
                size = max_bytes;
            }
            zlib_rs::ReturnCode::BufError if written == size => return Err(GunzipError::TooLarge),
            _ => {
                return Err(GunzipError::Invalid(
                    "not gzip: corrupt or truncated deflate data".into(),
                ));
            }
        }
    }
}

/// The buffer compression starts with for `len` bytes of data, header and trailer included:
/// spans deflate to about a fifth; the buffer doubles when the data shrinks less.
pub fn first_buffer_bytes(len: usize) -> usize {
    10 + len / 4 + 64
}

/// Compresses `data` as one gzip member. Level 1: spans are repetitive, so the fastest level
/// already takes most of the gain, and CPU per span matters more than the last bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    // Never None: the room asked for is always given.
    gzip_within(data, |_| true).unwrap_or_default()
}

/// [`gzip`], in a buffer that asks `room` before it takes or adds bytes (the OTLP buffer's
/// budget; the member returned is smaller than what was asked for, its `capacity()`); `None`,
/// the work dropped, when `room` refuses. Deflated straight into the member
/// after its header (not into a vector of its own, copied behind the header afterwards: a
/// megabyte more to copy and fault in per merged request).
pub fn gzip_within(data: &[u8], mut room: impl FnMut(usize) -> bool) -> Option<Vec<u8>> {
    // No name, no time; XFL 4 = fastest; OS 255 = unknown.
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];
    let first = first_buffer_bytes(data.len());
    if !room(first) {
        return None;
    }
    let mut compressor = CompressorOxide::new(create_comp_flags_from_zip_params(1, 0, 0));
    let mut out = vec![0u8; first];
    out[..HEADER.len()].copy_from_slice(&HEADER);
    let mut at = HEADER.len();
    let mut input = data;
    loop {
        let (status, consumed, produced) =
            compress(&mut compressor, input, &mut out[at..], TDEFLFlush::Finish);
        at += produced;
        input = input.get(consumed..).unwrap_or_default();
        match status {
            TDEFLStatus::Done => break,
            TDEFLStatus::Okay => {
                if out.len() - at < 64 {
                    if !room(out.len()) {
                        return None;
                    }
                    out.resize(out.len() * 2, 0);
                }
            }
            // A new compressor given a whole buffer fails only by a bug (miniz_oxide's own
            // `compress_to_vec` panics there too).
            other => unreachable!("deflate failed: {other:?}"),
        }
    }
    // The trailer goes into the margin of at least 64 bytes the loop keeps; the rest is
    // given back, as the copy may be held through many retries.
    out.truncate(at);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.shrink_to_fit();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_the_crc_of_a_known_string() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        assert_eq!(gunzip(&gzip(&data), data.len()).unwrap(), data);
        assert_eq!(gunzip(&gzip(b""), 0).unwrap(), b"");
    }

    /// `len` bytes of xorshift noise, which deflate cannot shrink.
    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_u32;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect()
    }

    #[test]
    fn compression_within_room_asks_before_each_growth_and_stops_when_refused() {
        let noise = noise(100_000);
        let mut asked = Vec::new();
        let member = gzip_within(&noise, |more| {
            asked.push(more);
            true
        })
        .unwrap();
        assert_eq!(member, gzip(&noise));
        // Noise does not shrink: the first buffer, then two doublings.
        let first = first_buffer_bytes(noise.len());
        assert_eq!(asked, [first, first, 2 * first]);
        assert!(member.capacity() <= asked.iter().sum::<usize>());
        assert_eq!(member.capacity(), member.len());
        // Refused at the second growth: nothing made.
        let mut granted = 0;
        assert_eq!(
            gzip_within(&noise, |_| {
                granted += 1;
                granted < 3
            }),
            None
        );
        assert_eq!(gzip_within(b"x", |_| false), None);
    }

    #[test]
    fn data_that_does_not_shrink_round_trips_and_matches_miniz_oxide() {
        let noise = noise(300_000);
        for data in [&noise[..], &noise[..1], b"a few bytes", &[7u8; 100_000][..]] {
            let member = gzip(data);
            assert_eq!(gunzip(&member, data.len()).unwrap(), data);
            assert_eq!(
                &member[10..member.len() - 8],
                &miniz_oxide::deflate::compress_to_vec(data, 1)[..]
            );
        }
    }

    #[test]
    fn header_fields_are_skipped() {
        let mut framed = gzip(b"hello");
        framed[3] = FNAME | FCOMMENT;
        let rest = framed.split_off(10);
        framed.extend_from_slice(b"name\0comment\0");
        framed.extend_from_slice(&rest);
        assert_eq!(gunzip(&framed, 100).unwrap(), b"hello");
    }

    #[test]
    fn a_bomb_stops_at_the_limit_even_when_its_trailer_lies() {
        let zeros = vec![0u8; 10_000_000];
        let mut bomb = gzip(&zeros);
        assert!(bomb.len() < 100_000, "{}", bomb.len());
        assert_eq!(gunzip(&bomb, 1_000_000), Err(GunzipError::TooLarge));
        let n = bomb.len();
        bomb[n - 4..].copy_from_slice(&100u32.to_le_bytes());
        let started = std::time::Instant::now();
        assert_eq!(gunzip(&bomb, 1_000_000), Err(GunzipError::TooLarge));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn corrupt_and_truncated_data_is_invalid() {
        let good = gzip(b"hello, hello, hello");
        for cut in [0, 5, 12, 17] {
            assert!(
                matches!(gunzip(&good[..cut], 100), Err(GunzipError::Invalid(_))),
                "{cut}"
            );
        }
        // Cut in the trailer, its size is garbage: refused either way.
        assert!(gunzip(&good[..good.len() - 1], 100).is_err());
        let mut flipped = good.clone();
        let n = flipped.len();
        flipped[n - 6] ^= 1;
        assert!(matches!(
            gunzip(&flipped, 100),
            Err(GunzipError::Invalid(_))
        ));
        assert!(matches!(
            gunzip(b"plain text, not gzip", 100),
            Err(GunzipError::Invalid(_))
        ));
    }
}

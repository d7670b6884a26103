//! CRC-32 (IEEE, as zlib and gzip compute it) for spool records and OTLP gzip bodies: with the
//! processor's carry-less multiply (x86_64 PCLMULQDQ) or CRC-32 instructions (ARMv8 `crc`)
//! when it has them, found at run time, and a table otherwise.

/// CRC-32 (IEEE) of `data`.
///
/// The spool writer checksums every byte it writes and the OTLP path every byte it gzips or
/// gunzips, so this is on the hot path of both; the instructions make it several times faster
/// than the tables, which stay for processors without them (and for armv7).
pub fn crc32(data: &[u8]) -> u32 {
    !update(!0, data)
}

/// Feeds `data` into a running CRC register (not inverted: `!0` to start, `!` to finish).
fn update(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= x86::MIN_LEN
        && std::is_x86_feature_detected!("pclmulqdq")
        && std::is_x86_feature_detected!("sse4.1")
    {
        // SAFETY: the CPU has PCLMULQDQ and SSE4.1 (checked just above); SSE2 is part of
        // x86_64.
        return unsafe { x86::update(crc, data) };
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("crc") {
        // SAFETY: the CPU has the ARMv8 CRC-32 instructions (checked just above).
        return unsafe { arm::update(crc, data) };
    }
    table::update(crc, data)
}

mod table {
    /// Sixteen bytes per step with sixteen tables ("slicing-by-16", 16 KB built at compile
    /// time): half the steps of eight tables.
    const TABLES: [[u32; 256]; 16] = {
        let mut tables = [[0u32; 256]; 16];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            tables[0][i] = c;
            i += 1;
        }
        let mut t = 1;
        while t < 16 {
            let mut i = 0;
            while i < 256 {
                let previous = tables[t - 1][i];
                tables[t][i] = (previous >> 8) ^ tables[0][(previous & 0xff) as usize];
                i += 1;
            }
            t += 1;
        }
        tables
    };

    /// Feeds `data` into the register `crc`.
    pub fn update(mut crc: u32, data: &[u8]) -> u32 {
        let mut chunks = data.chunks_exact(16);
        for chunk in &mut chunks {
            let word =
                |i: usize| u32::from_le_bytes([chunk[i], chunk[i + 1], chunk[i + 2], chunk[i + 3]]);
            let a = crc ^ word(0);
            let (b, c, d) = (word(4), word(8), word(12));
            let byte = |w: u32, shift: u32| ((w >> shift) & 0xff) as usize;
            crc = TABLES[15][byte(a, 0)]
                ^ TABLES[14][byte(a, 8)]
                ^ TABLES[13][byte(a, 16)]
                ^ TABLES[12][byte(a, 24)]
                ^ TABLES[11][byte(b, 0)]
                ^ TABLES[10][byte(b, 8)]
                ^ TABLES[9][byte(b, 16)]
                ^ TABLES[8][byte(b, 24)]
                ^ TABLES[7][byte(c, 0)]
                ^ TABLES[6][byte(c, 8)]
                ^ TABLES[5][byte(c, 16)]
                ^ TABLES[4][byte(c, 24)]
                ^ TABLES[3][byte(d, 0)]
                ^ TABLES[2][byte(d, 8)]
                ^ TABLES[1][byte(d, 16)]
                ^ TABLES[0][byte(d, 24)];
        }
        for &b in chunks.remainder() {
            crc = TABLES[0][((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
        crc
    }
}

/// Folding with carry-less multiplication, four 16-byte lanes at a time (Intel, "Fast CRC
/// Computation for Generic Polynomials Using PCLMULQDQ Instruction", 2009, for the
/// bit-reflected polynomial; the constants are those of Linux's `crc32-pclmul_asm.S`).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_clmulepi64_si128, _mm_cvtsi32_si128, _mm_extract_epi32,
        _mm_loadu_si128, _mm_set_epi32, _mm_set_epi64x, _mm_srli_si128, _mm_xor_si128,
    };

    /// Below this the table is as fast: the folding needs four lanes to start.
    pub const MIN_LEN: usize = 64;

    // x^(4*128+32) mod P and x^(4*128-32) mod P, shifted for the reflected domain: fold by 4.
    const K1: i64 = 0x1_5444_2bd4;
    const K2: i64 = 0x1_c6e4_1596;
    // x^(128+32) mod P and x^(128-32) mod P: fold by 1.
    const K3: i64 = 0x1_7519_97d0;
    const K4: i64 = 0x0_ccaa_009e;
    // x^64 mod P: 96 → 64 bits.
    const K5: i64 = 0x1_63cd_6124;
    // The polynomial and its Barrett constant floor(x^64 / P), both reflected.
    const P_X: i64 = 0x1_DB71_0641;
    const U_PRIME: i64 = 0x1_F701_1641;

    /// Feeds `data` (at least [`MIN_LEN`] bytes) into the register `crc`.
    ///
    /// # Safety
    /// The CPU must have PCLMULQDQ and SSE4.1.
    #[target_feature(enable = "pclmulqdq,sse2,sse4.1")]
    pub unsafe fn update(crc: u32, data: &[u8]) -> u32 {
        debug_assert!(data.len() >= MIN_LEN);
        let mut lanes = data.chunks_exact(16);
        let mut next = || {
            // SAFETY: a 16-byte chunk; loadu has no alignment requirement.
            lanes
                .next()
                .map(|lane| unsafe { _mm_loadu_si128(lane.as_ptr().cast::<__m128i>()) })
        };
        let (Some(mut x3), Some(mut x2), Some(mut x1), Some(mut x0)) =
            (next(), next(), next(), next())
        else {
            return super::table::update(crc, data);
        };
        x3 = _mm_xor_si128(x3, _mm_cvtsi32_si128(crc as i32));
        let k1k2 = _mm_set_epi64x(K2, K1);
        let left = data.len() / 16 - 4;
        for _ in 0..left / 4 {
            let (Some(a), Some(b), Some(c), Some(d)) = (next(), next(), next(), next()) else {
                break;
            };
            x3 = fold(x3, a, k1k2);
            x2 = fold(x2, b, k1k2);
            x1 = fold(x1, c, k1k2);
            x0 = fold(x0, d, k1k2);
        }
        let k3k4 = _mm_set_epi64x(K4, K3);
        let mut x = fold(x3, x2, k3k4);
        x = fold(x, x1, k3k4);
        x = fold(x, x0, k3k4);
        while let Some(lane) = next() {
            x = fold(x, lane, k3k4);
        }
        let low32 = _mm_set_epi32(0, 0, 0, !0);
        // 128 → 96 → 64 bits.
        let x = _mm_xor_si128(_mm_clmulepi64_si128(x, k3k4, 0x10), _mm_srli_si128(x, 8));
        let x = _mm_xor_si128(
            _mm_clmulepi64_si128(_mm_and_si128(x, low32), _mm_set_epi64x(0, K5), 0x00),
            _mm_srli_si128(x, 4),
        );
        // Barrett reduction, 64 → 32 bits; reflected, so the result is the upper half.
        let pu = _mm_set_epi64x(U_PRIME, P_X);
        let t1 = _mm_clmulepi64_si128(_mm_and_si128(x, low32), pu, 0x10);
        let t2 = _mm_clmulepi64_si128(_mm_and_si128(t1, low32), pu, 0x00);
        let crc = _mm_extract_epi32(_mm_xor_si128(x, t2), 1) as u32;
        super::table::update(crc, data.chunks_exact(16).remainder())
    }

    /// `a` carried 128 bits further (by `keys`) and added to `b`.
    #[target_feature(enable = "pclmulqdq,sse2")]
    fn fold(a: __m128i, b: __m128i, keys: __m128i) -> __m128i {
        let low = _mm_clmulepi64_si128(a, keys, 0x00);
        let high = _mm_clmulepi64_si128(a, keys, 0x11);
        _mm_xor_si128(_mm_xor_si128(b, low), high)
    }
}

/// The ARMv8 CRC-32 instructions: eight bytes per instruction.
#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::{__crc32b, __crc32d};

    /// Feeds `data` into the register `crc`.
    ///
    /// # Safety
    /// The CPU must have the `crc` feature.
    #[target_feature(enable = "crc")]
    pub unsafe fn update(mut crc: u32, data: &[u8]) -> u32 {
        let mut words = data.chunks_exact(8);
        for word in &mut words {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            crc = __crc32d(crc, u64::from_le_bytes(bytes));
        }
        for &byte in words.remainder() {
            crc = __crc32b(crc, byte);
        }
        crc
    }
}

/// The CRC-32 by its definition, a bit at a time: what every faster way is tested against.
#[cfg(test)]
pub(crate) fn bytewise(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_agrees_with_the_bytewise_definition_at_every_length_and_offset() {
        let data: Vec<u8> = (0..1200u32).map(|i| (i * 7919 % 251) as u8).collect();
        for start in 0..17 {
            for end in start..data.len() {
                let slice = &data[start..end];
                let expected = bytewise(slice);
                assert_eq!(crc32(slice), expected, "{start}..{end}");
                assert_eq!(!table::update(!0, slice), expected, "{start}..{end}");
            }
        }
    }

    #[test]
    fn a_large_buffer_and_a_running_register() {
        let data: Vec<u8> = (0..1_000_003u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let expected = bytewise(&data);
        assert_eq!(crc32(&data), expected);
        let (a, b) = data.split_at(333_333);
        assert_eq!(!update(update(!0, a), b), expected);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_folding_is_used_and_right_when_the_cpu_has_it() {
        if !(std::is_x86_feature_detected!("pclmulqdq") && std::is_x86_feature_detected!("sse4.1"))
        {
            return;
        }
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 253) as u8).collect();
        for end in x86::MIN_LEN..data.len() {
            // SAFETY: the features were checked above.
            let folded = unsafe { x86::update(!0, &data[..end]) };
            assert_eq!(!folded, bytewise(&data[..end]), "{end}");
        }
    }

    #[test]
    #[cfg(target_arch = "aarch64")]
    fn the_instructions_are_used_and_right_when_the_cpu_has_them() {
        if !std::arch::is_aarch64_feature_detected!("crc") {
            return;
        }
        let data: Vec<u8> = (0..300u32).map(|i| (i * 31 % 253) as u8).collect();
        for start in 0..9 {
            for end in start..data.len() {
                // SAFETY: the feature was checked above.
                let direct = unsafe { arm::update(!0, &data[start..end]) };
                assert_eq!(!direct, bytewise(&data[start..end]), "{start}..{end}");
            }
        }
    }
}

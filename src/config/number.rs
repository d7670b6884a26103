//! Floats in cfg.yaml kept as the decimals written. The original only truncates them into
//! integers (`TotalBufferSizeMB: 16.7` is 16) or prints them as keys with Go's `%v`; both work
//! on the decimal digits, which spares the binary a float parser (17 KB).

/// A float as go-yaml resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Float {
    /// `0.digits × 10^point`, exactly as written; `digits` has no leading or trailing zeros
    /// and is empty for zero.
    Finite {
        /// Below zero (also for `-0`).
        negative: bool,
        /// The significant digits.
        digits: String,
        /// Where the decimal point goes, counted from the first significant digit.
        point: i64,
    },
    /// `.inf`, `-.inf`.
    Infinity {
        /// `-.inf`.
        negative: bool,
    },
    /// `.nan`.
    NaN,
}

/// Go's `math.MaxFloat64` plus half a unit in the last place, as 20 leading digits: a decimal
/// with 309 integer digits from here on is out of range for `strconv.ParseFloat`.
const FLOAT64_LIMIT: &str = "17976931348623158079";

impl Float {
    /// A decimal that matches go-yaml's float pattern (underscores removed); `None` where Go's
    /// `strconv.ParseFloat` reports it out of range.
    pub fn parse(text: &str) -> Option<Float> {
        let (negative, unsigned) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => (&unsigned[..at], saturating_exponent(&unsigned[at + 1..])),
            None => (unsigned, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all: String = whole.chars().chain(fraction.chars()).collect();
        let leading_zeros = all.len() - all.trim_start_matches('0').len();
        let digits = all
            .trim_start_matches('0')
            .trim_end_matches('0')
            .to_string();
        let point =
            i64::try_from(whole.len()).unwrap_or(i64::MAX) - leading_zeros as i64 + exponent;
        if digits.is_empty() {
            return Some(Float::Finite {
                negative,
                digits,
                point: 0,
            });
        }
        let leading: String = digits
            .chars()
            .chain(std::iter::repeat('0'))
            .take(20)
            .collect();
        if point > 309 || (point == 309 && leading.as_str() >= FLOAT64_LIMIT) {
            return None;
        }
        Some(Float::Finite {
            negative,
            digits,
            point,
        })
    }

    /// An integer as a float (`!!float 2`).
    pub fn from_int(number: i64) -> Float {
        let text = number.unsigned_abs().to_string();
        Float::parse(&text).map_or(Float::NaN, |float| match float {
            Float::Finite { digits, point, .. } => Float::Finite {
                negative: number < 0,
                digits,
                point,
            },
            other => other,
        })
    }

    /// Go's `int64(f)` after go-yaml's `f <= math.MaxInt64` check: truncated toward zero;
    /// `None` where go-yaml refuses the value for an `int` (too large, `+Inf`, `NaN`); below
    /// the range, Go's conversion gives the smallest int64.
    pub fn truncate(&self) -> Option<i64> {
        let (negative, digits, point) = match self {
            Float::NaN | Float::Infinity { negative: false } => return None,
            Float::Infinity { negative: true } => return Some(i64::MIN),
            Float::Finite {
                negative,
                digits,
                point,
            } => (*negative, digits, *point),
        };
        if point <= 0 || digits.is_empty() {
            return Some(0);
        }
        let whole_digits = usize::try_from(point).unwrap_or(usize::MAX);
        if whole_digits > 19 {
            return if negative { Some(i64::MIN) } else { None };
        }
        let magnitude = digits
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(whole_digits)
            .fold(0u128, |value, digit| value * 10 + u128::from(digit - b'0'));
        if negative {
            Some(i64::try_from(-(magnitude as i128)).unwrap_or(i64::MIN))
        } else {
            i64::try_from(magnitude).ok()
        }
    }

    /// Go's `%v`: the shortest digits (at most 17), in exponent form below 1e-4 or from 1e6.
    pub fn go_format(&self) -> String {
        let (negative, digits, point) = match self {
            Float::NaN => return "NaN".to_string(),
            Float::Infinity { negative } => {
                return if *negative { "-Inf" } else { "+Inf" }.to_string();
            }
            Float::Finite {
                negative,
                digits,
                point,
            } => (*negative, digits.as_str(), *point),
        };
        let sign = if negative { "-" } else { "" };
        if digits.is_empty() {
            return format!("{sign}0");
        }
        let (digits, point) = round_to_17(digits, point);
        let exponent = point - 1;
        if !(-4..6).contains(&exponent) {
            let (first, rest) = digits.split_at(1);
            let rest = if rest.is_empty() {
                String::new()
            } else {
                format!(".{rest}")
            };
            let exponent_sign = if exponent < 0 { '-' } else { '+' };
            return format!(
                "{sign}{first}{rest}e{exponent_sign}{:02}",
                exponent.unsigned_abs()
            );
        }
        let count = digits.len() as i64;
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else if point >= count {
            format!("{digits}{}", "0".repeat((point - count) as usize))
        } else {
            let (whole, fraction) = digits.split_at(point as usize);
            format!("{whole}.{fraction}")
        };
        format!("{sign}{body}")
    }
}

/// An exponent's digits, clamped far beyond any float's range.
fn saturating_exponent(text: &str) -> i64 {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = digits.bytes().fold(0i64, |value, digit| {
        (value * 10 + i64::from(digit.wrapping_sub(b'0'))).min(1_000_000)
    });
    if negative { -magnitude } else { magnitude }
}

/// A float64 has at most 17 significant decimal digits: round half up beyond them.
fn round_to_17(digits: &str, point: i64) -> (String, i64) {
    if digits.len() <= 17 {
        return (digits.to_string(), point);
    }
    let mut kept: Vec<u8> = digits.as_bytes()[..17].to_vec();
    let mut point = point;
    if digits.as_bytes()[17] >= b'5' {
        let mut at = kept.len();
        loop {
            if at == 0 {
                kept.insert(0, b'1');
                point += 1;
                break;
            }
            at -= 1;
            if kept[at] == b'9' {
                kept[at] = b'0';
            } else {
                kept[at] += 1;
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&kept)
        .trim_end_matches('0')
        .to_string();
    (text, point)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(text: &str) -> Float {
        Float::parse(text).unwrap()
    }

    #[test]
    fn truncates_toward_zero_like_go() {
        for (text, expected) in [
            ("16.7", Some(16)),
            ("1.5", Some(1)),
            ("2.0", Some(2)),
            ("0.5", Some(0)),
            ("-1.9", Some(-1)),
            (".5", Some(0)),
            ("1e3", Some(1000)),
            ("1.25e1", Some(12)),
            ("08", Some(8)),
            ("9223372036854775807.5", Some(i64::MAX)),
            ("1e19", None),
            ("-1e19", Some(i64::MIN)),
            ("-1e300", Some(i64::MIN)),
            ("0e99999999999999999999", Some(0)),
        ] {
            assert_eq!(float(text).truncate(), expected, "{text}");
        }
        assert_eq!(Float::NaN.truncate(), None);
        assert_eq!(Float::Infinity { negative: false }.truncate(), None);
        assert_eq!(
            Float::Infinity { negative: true }.truncate(),
            Some(i64::MIN)
        );
    }

    #[test]
    fn out_of_range_is_not_a_float() {
        assert_eq!(Float::parse("1e400"), None);
        assert_eq!(Float::parse("1.8e308"), None);
        assert!(Float::parse("1.7976931348623157e308").is_some());
        assert!(Float::parse("1e-400").is_some());
    }

    #[test]
    fn prints_like_go_percent_v() {
        for (text, printed) in [
            ("1.0", "1"),
            ("1.5", "1.5"),
            ("123456", "123456"),
            ("1234567", "1.234567e+06"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("-2.50", "-2.5"),
            ("1e100", "1e+100"),
            ("-0.0", "-0"),
            ("0.1234567890123456789", "0.12345678901234568"),
        ] {
            assert_eq!(float(text).go_format(), printed, "{text}");
        }
        assert_eq!(Float::Infinity { negative: false }.go_format(), "+Inf");
        assert_eq!(Float::NaN.go_format(), "NaN");
        assert_eq!(Float::from_int(-20).go_format(), "-20");
    }
}

//! RFC 3339 timestamps as the credential sources send them (`2024-05-01T12:34:56Z`,
//! `2024-05-01T12:34:56.123+02:00`), parsed to [`SystemTime`] and formatted back for logs.

use std::time::{Duration, SystemTime};

/// Parses an RFC 3339 date-time with a `Z` or `±hh:mm` offset; fractions of a second are
/// kept to the nanosecond. Years before 1970 are refused: no credential expires then.
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    let bad = || format!("not an RFC 3339 timestamp: {text:?}");
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.is_ascii() {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| -> Result<u32, String> {
        let digits = &text[range];
        if digits.bytes().all(|b| b.is_ascii_digit()) {
            digits.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let separators_ok = bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b't' | b' ')
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !separators_ok {
        return Err(bad());
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
        || year < 1970
    {
        return Err(bad());
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        for (index, digit) in fraction[..digits].bytes().take(9).enumerate() {
            nanos += u32::from(digit - b'0') * 10u32.pow(8 - index as u32);
        }
        rest = &fraction[digits..];
    }
    let offset_seconds: i64 = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(bad()),
            };
            let (hours, minutes) = (
                number(text.len() - 5..text.len() - 3)?,
                number(text.len() - 2..text.len())?,
            );
            if hours > 23 || minutes > 59 {
                return Err(bad());
            }
            sign * i64::from(hours * 3600 + minutes * 60)
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month, day);
    let local_seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second.min(59));
    let utc_seconds = u64::try_from(local_seconds - offset_seconds).map_err(|_| bad())?;
    Ok(SystemTime::UNIX_EPOCH + Duration::new(utc_seconds, nanos))
}

/// `2024-05-01T12:34:56Z`, for log lines (whole seconds, UTC).
pub fn format_rfc3339(time: SystemTime) -> String {
    let seconds = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX);
    let (year, month, day) = civil_from_days(days);
    let in_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    )
}

fn is_leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`]: year, month and day of a count of days since
/// 1970-01-01 (proleptic Gregorian), after Howard Hinnant's `civil_from_days`. The log line's
/// timestamp uses it too.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch_seconds(text: &str) -> u64 {
        parse_rfc3339(text)
            .unwrap()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn parses_utc_timestamps() {
        assert_eq!(epoch_seconds("1970-01-01T00:00:00Z"), 0);
        // `date -u -d 2024-02-29T12:34:56Z +%s`
        assert_eq!(epoch_seconds("2024-02-29T12:34:56Z"), 1_709_210_096);
        assert_eq!(epoch_seconds("2038-01-19T03:14:08Z"), 2_147_483_648);
        assert_eq!(epoch_seconds("2100-03-01T00:00:00z"), 4_107_542_400);
    }

    #[test]
    fn applies_offsets_and_keeps_fractions() {
        assert_eq!(epoch_seconds("2024-02-29T14:34:56+02:00"), 1_709_210_096);
        assert_eq!(epoch_seconds("2024-02-29T07:04:56-05:30"), 1_709_210_096);
        let time = parse_rfc3339("2024-02-29T12:34:56.25Z").unwrap();
        let since = time.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(since.subsec_nanos(), 250_000_000);
        let long = parse_rfc3339("2024-02-29T12:34:56.1234567891Z").unwrap();
        let since = long.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(since.subsec_nanos(), 123_456_789);
    }

    #[test]
    fn refuses_what_is_not_a_timestamp() {
        for text in [
            "",
            "2024-02-29",
            "2024-02-29T12:34:56",
            "2024-02-30T12:34:56Z",
            "2023-02-29T12:34:56Z",
            "2024-13-01T12:34:56Z",
            "2024-02-29T24:00:00Z",
            "2024-02-29T12:34:56.Z",
            "2024-02-29T12:34:56+0200",
            "2024-02-29T12:34:56+25:00",
            "2024-02-29X12:34:56Z",
            "1969-12-31T23:59:59Z",
            "２０２４-02-29T12:34:56Z",
            "1970-01-01T00:00:00+01:00",
        ] {
            assert!(parse_rfc3339(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn formats_back_what_it_parses() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59Z",
            "2024-12-31T00:00:01Z",
            "2101-01-01T12:00:00Z",
        ] {
            assert_eq!(format_rfc3339(parse_rfc3339(text).unwrap()), text);
        }
    }
}

//! Listen addresses (`-b`, `-t`, `Socket.*Address`) checked as Go's `net.SplitHostPort` and
//! port lookup check them, so that a start-up failure reads as the original's
//! (`address 127.0.0.1: missing port in address`).

/// Go's `net.AddrError` text for an address the original cannot listen on, or `None` when Go
/// accepts its form. The empty address is accepted: Go listens on every interface (UDP on a
/// port the kernel picks, the HTTP proxy on port 80).
pub fn listen_address_error(address: &str) -> Option<String> {
    if address.is_empty() {
        return None;
    }
    let fail = |why: &str| Some(format!("address {address}: {why}"));
    let Some(last_colon) = address.rfind(':') else {
        return fail("missing port in address");
    };
    let (mut no_open_from, mut no_close_from) = (0, 0);
    if address.starts_with('[') {
        let Some(end) = address.find(']') else {
            return fail("missing ']' in address");
        };
        if end + 1 == address.len() {
            return fail("missing port in address");
        }
        if end + 1 != last_colon {
            return match address.as_bytes()[end + 1] {
                b':' => fail("too many colons in address"),
                _ => fail("missing port in address"),
            };
        }
        (no_open_from, no_close_from) = (1, end + 1);
    } else if address[..last_colon].contains(':') {
        return fail("too many colons in address");
    }
    if address[no_open_from..].contains('[') {
        return fail("unexpected '[' in address");
    }
    if address[no_close_from..].contains(']') {
        return fail("unexpected ']' in address");
    }
    let port = &address[last_colon + 1..];
    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_err()
    {
        return Some(format!("address {port}: invalid port"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go 1.25 `net.ResolveUDPAddr` / `net.ResolveTCPAddr` errors, as fixtures.
    #[test]
    fn errors_read_as_gos() {
        for (address, message) in [
            ("127.0.0.1", "address 127.0.0.1: missing port in address"),
            ("localhost", "address localhost: missing port in address"),
            ("[::1]", "address [::1]: missing port in address"),
            ("::1:2000", "address ::1:2000: too many colons in address"),
            (
                "[::1]:2000:1",
                "address [::1]:2000:1: too many colons in address",
            ),
            ("[::1", "address [::1: missing ']' in address"),
            ("a[b:1", "address a[b:1: unexpected '[' in address"),
            ("ab]:1", "address ab]:1: unexpected ']' in address"),
            ("127.0.0.1:70000", "address 70000: invalid port"),
        ] {
            assert_eq!(
                listen_address_error(address).as_deref(),
                Some(message),
                "{address}"
            );
        }
        for good in [
            "",
            "127.0.0.1:2000",
            ":2000",
            "[::1]:2000",
            "0.0.0.0:0",
            "host:",
        ] {
            assert_eq!(listen_address_error(good), None, "{good}");
        }
    }
}

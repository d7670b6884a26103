//! Warnings that can come thousands of times a second (bad datagrams, dropped segments),
//! logged at most about once a second each.
//!
//! The first of a burst is logged at once. Those that follow within a second are held back:
//! counted, and the latest kept. When the second is over, the latest is logged with the count
//! (`… (last of 57 held back)`), by the next warning or, if none comes, by whoever owns the
//! throttle calling [`Throttled::flush_due`] (the UDP receiver does before it goes idle, and
//! [`Throttled::flush`] when it stops), so the end of a burst is never lost.

use std::time::{Duration, Instant};

/// How long after a logged warning the next ones are held back.
const WINDOW: Duration = Duration::from_secs(1);

/// One kind of repeated warning.
#[derive(Debug, Default)]
pub struct Throttled {
    last: Option<Instant>,
    held_back: u64,
    latest: String,
}

impl Throttled {
    /// A throttle that has logged nothing yet.
    pub const fn new() -> Throttled {
        Throttled {
            last: None,
            held_back: 0,
            latest: String::new(),
        }
    }

    /// Logs the warning `message` makes (each of its lines at Warn), or holds it back if one
    /// was logged less than a second ago.
    pub fn warn(&mut self, message: impl FnOnce() -> String) {
        self.warn_to(Instant::now(), message, &mut log_warning);
    }

    /// When the warnings held back are due to be logged, if there are any.
    pub fn due(&self) -> Option<Instant> {
        match self.last {
            Some(last) if self.held_back > 0 => Some(last + WINDOW),
            _ => None,
        }
    }

    /// Logs the warnings held back if their second is over at `now`.
    pub fn flush_due(&mut self, now: Instant) {
        self.flush_due_to(now, &mut log_warning);
    }

    /// Logs the warnings held back, due or not (when the warnings end for good).
    pub fn flush(&mut self) {
        self.flush_to(Instant::now(), &mut log_warning);
    }

    fn warn_to(
        &mut self,
        now: Instant,
        message: impl FnOnce() -> String,
        out: &mut impl FnMut(&str),
    ) {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < WINDOW)
        {
            self.held_back += 1;
            self.latest = message();
            return;
        }
        // The second of those held back is over: they go first.
        self.flush_to(now, out);
        for line in message().lines() {
            out(line);
        }
        self.last = Some(now);
    }

    fn flush_due_to(&mut self, now: Instant, out: &mut impl FnMut(&str)) {
        if self.due().is_some_and(|due| now >= due) {
            self.flush_to(now, out);
        }
    }

    fn flush_to(&mut self, now: Instant, out: &mut impl FnMut(&str)) {
        if self.held_back == 0 {
            return;
        }
        let mut lines = self.latest.lines().peekable();
        while let Some(line) = lines.next() {
            if lines.peek().is_some() {
                out(line);
            } else {
                out(&format!("{line} (last of {} held back)", self.held_back));
            }
        }
        self.held_back = 0;
        self.latest.clear();
        self.last = Some(now);
    }
}

fn log_warning(line: &str) {
    log::warn!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `warn` at `at` (ms after `start`) and returns the lines it logged.
    fn warn_at(throttle: &mut Throttled, start: Instant, at: u64, text: &str) -> Vec<String> {
        let mut lines = Vec::new();
        let now = start + Duration::from_millis(at);
        throttle.warn_to(now, || text.to_owned(), &mut |l| lines.push(l.to_owned()));
        lines
    }

    fn flush_at(throttle: &mut Throttled, start: Instant, at: u64) -> Vec<String> {
        let mut lines = Vec::new();
        let now = start + Duration::from_millis(at);
        throttle.flush_due_to(now, &mut |l| lines.push(l.to_owned()));
        lines
    }

    #[test]
    fn a_burst_logs_its_first_and_then_its_last_with_the_count() {
        let start = Instant::now();
        let mut t = Throttled::new();
        assert_eq!(
            warn_at(&mut t, start, 0, "Invalid header: a"),
            ["Invalid header: a"]
        );
        assert_eq!(t.due(), None);
        for (i, at) in [10, 20, 500].into_iter().enumerate() {
            assert!(warn_at(&mut t, start, at, &format!("Invalid header: {i}")).is_empty());
        }
        assert_eq!(t.due(), Some(start + WINDOW));
        // Nothing comes after the burst: the owner's flush logs its end once it is due.
        assert!(flush_at(&mut t, start, 999).is_empty());
        assert_eq!(
            flush_at(&mut t, start, 1000),
            ["Invalid header: 2 (last of 3 held back)"]
        );
        assert_eq!(t.due(), None);
        assert!(flush_at(&mut t, start, 5000).is_empty());
        // The flush started a new second.
        assert!(warn_at(&mut t, start, 1500, "Invalid header: b").is_empty());
        assert_eq!(
            warn_at(&mut t, start, 2600, "Invalid header: c"),
            [
                "Invalid header: b (last of 1 held back)",
                "Invalid header: c"
            ]
        );
    }

    #[test]
    fn each_line_of_a_warning_is_logged_and_the_count_goes_on_the_last() {
        let start = Instant::now();
        let mut t = Throttled::new();
        let two = "Missing header: x\nMissing header or segment: x";
        assert_eq!(
            warn_at(&mut t, start, 0, two),
            ["Missing header: x", "Missing header or segment: x"]
        );
        assert!(warn_at(&mut t, start, 1, two).is_empty());
        let mut lines = Vec::new();
        t.flush_to(start, &mut |l| lines.push(l.to_owned()));
        assert_eq!(
            lines,
            [
                "Missing header: x",
                "Missing header or segment: x (last of 1 held back)"
            ]
        );
    }

    #[test]
    fn sparse_warnings_are_all_logged_as_they_come() {
        let start = Instant::now();
        let mut t = Throttled::new();
        for at in [0, 1000, 2500, 9000] {
            assert_eq!(warn_at(&mut t, start, at, "w"), ["w"]);
        }
    }
}

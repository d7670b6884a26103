//! Signals: shutdown on SIGTERM or SIGINT, log file reopening on SIGHUP or SIGUSR1, and an
//! immediate exit on SIGQUIT. A dedicated thread waits for them and tells the rest.
//!
//! The signals are blocked in every thread (the mask is inherited, so this must run before any
//! other thread starts) and taken synchronously with `sigwait`: no handler runs in the middle
//! of other code, and nothing async is needed.
//!
//! The original (a Go program that catches only SIGINT and SIGTERM) ignores SIGUSR1, dies on
//! SIGHUP and, on SIGQUIT, prints `SIGQUIT: quit` with a goroutine dump to stderr and exits 2
//! at once. logrotate set-ups send SIGHUP or SIGUSR1 after moving the file away, so the relay
//! takes either as "reopen the log file" and goes on; SIGQUIT ends it as the original's does.

use std::io;

/// A termination signal the relay received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM, as sent by systemd, Kubernetes or `kill`.
    Terminate,
    /// SIGINT, as sent by Ctrl-C.
    Interrupt,
}

impl Signal {
    /// The name Go prints for the signal, kept so log lines match the original.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Terminate => "terminated",
            Signal::Interrupt => "interrupt",
        }
    }
}

fn termination_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGUSR1,
            libc::SIGQUIT,
        ] {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// Exit status on SIGQUIT: Go's runtime exits 2 after its dump, and so did the original.
pub const SIGQUIT_EXIT_STATUS: i32 = 2;

/// Blocks the handled signals in this thread and starts a thread that waits for them.
///
/// Call it first thing in `main`, before any thread is spawned. The returned channel yields the
/// first termination signal received; SIGHUP and SIGUSR1 reopen the log file
/// ([`logging::reopen_on_signal`](crate::logging::reopen_on_signal)) and SIGQUIT exits at once.
pub fn listen() -> io::Result<smol::channel::Receiver<Signal>> {
    let set = termination_set();
    // SAFETY: set is initialised; a null old-mask pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    let (tx, rx) = smol::channel::bounded(1);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            loop {
                let mut received: libc::c_int = 0;
                // SAFETY: set is initialised and received is a valid out pointer.
                let rc = unsafe { libc::sigwait(&set, &mut received) };
                let signal = match (rc, received) {
                    (0, libc::SIGTERM) => Signal::Terminate,
                    (0, libc::SIGINT) => Signal::Interrupt,
                    (0, libc::SIGHUP) => {
                        crate::logging::reopen_on_signal("hangup");
                        continue;
                    }
                    (0, libc::SIGUSR1) => {
                        crate::logging::reopen_on_signal("user defined signal 1");
                        continue;
                    }
                    (0, libc::SIGQUIT) => quit(),
                    _ => continue,
                };
                // Later signals during shutdown change nothing: the first one is in the channel.
                let _ = tx.try_send(signal);
            }
        })?;
    Ok(rx)
}

/// SIGQUIT: exits with the original's status and first stderr line, without draining: the
/// original's segments in memory are lost on SIGQUIT too.
fn quit() -> ! {
    log::error!(
        "Got signal quit: exiting at once with status {SIGQUIT_EXIT_STATUS}, as the original daemon does; buffered segments are not uploaded"
    );
    eprintln!("SIGQUIT: quit");
    std::process::exit(SIGQUIT_EXIT_STATUS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_match_go() {
        assert_eq!(Signal::Terminate.name(), "terminated");
        assert_eq!(Signal::Interrupt.name(), "interrupt");
    }
}

//! Shutdown on SIGTERM or SIGINT: a dedicated thread waits for the signal and tells the rest.
//!
//! The signals are blocked in every thread (the mask is inherited, so this must run before any
//! other thread starts) and taken synchronously with `sigwait`: no handler runs in the middle
//! of other code, and nothing async is needed.

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
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}

/// Blocks SIGTERM and SIGINT in this thread and starts a thread that waits for them.
///
/// Call it first thing in `main`, before any thread is spawned. The returned channel yields the
/// first signal received.
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
                    _ => continue,
                };
                // Later signals during shutdown change nothing: the first one is in the channel.
                let _ = tx.try_send(signal);
            }
        })?;
    Ok(rx)
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

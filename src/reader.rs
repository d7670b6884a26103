//! Reads up to [`READ_AT_ONCE`] UDP datagrams with one system call (`recvmmsg`).
//!
//! Under load the receiver drains many queued datagrams after each nap; reading them one
//! `recv` at a time paid the system call's entry, exit and file lookup for every datagram.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

/// Datagrams read by one call.
pub const READ_AT_ONCE: usize = 8;

/// Large enough for any UDP datagram, IPv4 (65,507 bytes) or IPv6 (65,527 bytes).
const DATAGRAM_BUFFER_BYTES: usize = 65_536;

/// Buffers for [`READ_AT_ONCE`] datagrams of any size, reused for every read.
///
/// They take 512 KB of address space, but only the pages datagrams were written to become
/// resident: 32 KB for 1 KB segments.
pub struct DatagramReader {
    buffers: Box<[u8]>,
    lens: [usize; READ_AT_ONCE],
    count: usize,
}

impl DatagramReader {
    /// Allocates the buffers (zeroed, so the kernel maps pages only as they are written).
    pub fn new() -> DatagramReader {
        DatagramReader {
            buffers: vec![0u8; READ_AT_ONCE * DATAGRAM_BUFFER_BYTES].into_boxed_slice(),
            lens: [0; READ_AT_ONCE],
            count: 0,
        }
    }

    /// Reads what is queued on `socket`, up to [`READ_AT_ONCE`] datagrams. With `wait`, blocks
    /// until at least one has come; without, returns 0 when none is queued. A datagram longer
    /// than its buffer cannot happen (the buffers hold the largest UDP payload).
    ///
    /// After `shutdown(SHUT_RD)` on the socket, a waiting read returns empty datagrams.
    pub fn read(&mut self, socket: &UdpSocket, wait: bool) -> io::Result<usize> {
        self.count = 0;
        let mut iovecs: [libc::iovec; READ_AT_ONCE] = std::array::from_fn(|i| libc::iovec {
            iov_base: self.buffers[i * DATAGRAM_BUFFER_BYTES..]
                .as_mut_ptr()
                .cast(),
            iov_len: DATAGRAM_BUFFER_BYTES,
        });
        // SAFETY: mmsghdr is plain data (integers and pointers) for which all-zero is valid.
        let mut headers: [libc::mmsghdr; READ_AT_ONCE] = unsafe { std::mem::zeroed() };
        for (header, iovec) in headers.iter_mut().zip(iovecs.iter_mut()) {
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
        }
        // MSG_WAITFORONE: block for the first datagram only, then take what else is queued.
        let flags = if wait {
            libc::MSG_WAITFORONE
        } else {
            libc::MSG_DONTWAIT
        };
        // SAFETY: the socket is open; each header points to one iovec, each iovec to its own
        // 64 KB region of `self.buffers`, all of which outlive the call.
        let read = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                READ_AT_ONCE as libc::c_uint,
                flags as _,
                std::ptr::null_mut(),
            )
        };
        if read < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(err),
            };
        }
        self.count = (read as usize).min(READ_AT_ONCE);
        for (len, header) in self.lens.iter_mut().zip(&headers[..self.count]) {
            *len = (header.msg_len as usize).min(DATAGRAM_BUFFER_BYTES);
        }
        Ok(self.count)
    }

    /// The datagrams of the last read, in arrival order.
    pub fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        self.lens[..self.count].iter().enumerate().map(|(i, &len)| {
            let start = i * DATAGRAM_BUFFER_BYTES;
            &self.buffers[start..start + len]
        })
    }
}

impl Default for DatagramReader {
    fn default() -> Self {
        DatagramReader::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pair() -> (UdpSocket, UdpSocket) {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.connect(receiver.local_addr().unwrap()).unwrap();
        (receiver, sender)
    }

    /// Gives loopback delivery time to finish: it runs in the sender's system call on Linux,
    /// so this is a wide margin.
    fn settle() {
        std::thread::sleep(Duration::from_millis(50));
    }

    #[test]
    fn reads_many_datagrams_in_order_with_one_call() {
        let (receiver, sender) = pair();
        let sent: Vec<Vec<u8>> = (0..READ_AT_ONCE + 3)
            .map(|i| vec![b'a' + i as u8; 1 + i * 1000])
            .collect();
        for datagram in &sent {
            sender.send(datagram).unwrap();
        }
        settle();
        let mut reader = DatagramReader::new();
        assert_eq!(reader.read(&receiver, false).unwrap(), READ_AT_ONCE);
        let first: Vec<Vec<u8>> = reader.datagrams().map(<[u8]>::to_vec).collect();
        assert_eq!(first, sent[..READ_AT_ONCE]);
        assert_eq!(reader.read(&receiver, false).unwrap(), 3);
        let rest: Vec<Vec<u8>> = reader.datagrams().map(<[u8]>::to_vec).collect();
        assert_eq!(rest, sent[READ_AT_ONCE..]);
        assert_eq!(reader.read(&receiver, false).unwrap(), 0);
        assert_eq!(reader.datagrams().count(), 0);
    }

    #[test]
    fn holds_the_largest_datagram_and_empty_ones_whole() {
        let (receiver, sender) = pair();
        let largest = vec![b'x'; 65_507];
        sender.send(&largest).unwrap();
        sender.send(b"").unwrap();
        sender.send(b"after").unwrap();
        settle();
        let mut reader = DatagramReader::new();
        assert_eq!(reader.read(&receiver, true).unwrap(), 3);
        let got: Vec<&[u8]> = reader.datagrams().collect();
        assert_eq!(got, [&largest[..], b"", b"after"]);
    }

    #[test]
    fn a_waiting_read_blocks_until_a_datagram_comes() {
        let (receiver, sender) = pair();
        let sending = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            sender.send(b"late").unwrap();
        });
        let mut reader = DatagramReader::new();
        assert_eq!(reader.read(&receiver, true).unwrap(), 1);
        assert_eq!(reader.datagrams().next(), Some(&b"late"[..]));
        sending.join().unwrap();
    }
}

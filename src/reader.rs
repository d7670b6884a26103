//! Reads up to [`READ_AT_ONCE`] UDP datagrams with one system call (`recvmmsg`).
//!
//! Under load the receiver drains many queued datagrams after each nap; reading them one
//! `recv` at a time paid the system call's entry, exit and file lookup for every datagram.
//!
//! With [`count_kernel_drops`] on the socket, each datagram also carries the socket's count of
//! datagrams the kernel dropped because the receive buffer was full (`SO_RXQ_OVFL`): the only
//! losses the relay cannot see otherwise.

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
    /// Room for each datagram's control messages (`u64`s for `cmsghdr` alignment).
    control: [[u64; CONTROL_WORDS]; READ_AT_ONCE],
    kernel_drops: Option<u32>,
}

/// Enough for the one `SO_RXQ_OVFL` control message (`CMSG_SPACE(4)` is 16 bytes on 32- and
/// 64-bit Linux), with room to spare.
const CONTROL_WORDS: usize = 8;

/// Asks the kernel to report, with each datagram, how many it has dropped on `socket` because
/// its receive buffer was full (see [`DatagramReader::kernel_drops`]).
pub fn count_kernel_drops(socket: &UdpSocket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: the socket is open; `on` outlives the call and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RXQ_OVFL,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl DatagramReader {
    /// Allocates the buffers (zeroed, so the kernel maps pages only as they are written).
    pub fn new() -> DatagramReader {
        DatagramReader {
            buffers: vec![0u8; READ_AT_ONCE * DATAGRAM_BUFFER_BYTES].into_boxed_slice(),
            lens: [0; READ_AT_ONCE],
            count: 0,
            control: [[0; CONTROL_WORDS]; READ_AT_ONCE],
            kernel_drops: None,
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
        for ((header, iovec), control) in headers
            .iter_mut()
            .zip(iovecs.iter_mut())
            .zip(self.control.iter_mut())
        {
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_control = control.as_mut_ptr().cast();
            header.msg_hdr.msg_controllen = std::mem::size_of_val(control) as _;
        }
        // MSG_WAITFORONE: block for the first datagram only, then take what else is queued.
        let flags = if wait {
            libc::MSG_WAITFORONE
        } else {
            libc::MSG_DONTWAIT
        };
        // SAFETY: the socket is open; each header points to one iovec, each iovec to its own
        // 64 KB region of `self.buffers`, and to its own control buffer, all of which outlive
        // the call.
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
            if let Some(drops) = drop_count(&header.msg_hdr) {
                self.kernel_drops = Some(drops);
            }
        }
        Ok(self.count)
    }

    /// The socket's count of datagrams the kernel dropped for want of buffer, as of the
    /// latest datagram read that carried it (it wraps at 2^32). `None` until a datagram
    /// carried it: the kernel leaves it out while the count is 0, or without
    /// [`count_kernel_drops`].
    pub fn kernel_drops(&self) -> Option<u32> {
        self.kernel_drops
    }

    /// The datagrams of the last read, in arrival order.
    pub fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        self.lens[..self.count].iter().enumerate().map(|(i, &len)| {
            let start = i * DATAGRAM_BUFFER_BYTES;
            &self.buffers[start..start + len]
        })
    }
}

/// The `SO_RXQ_OVFL` count in a received message's control data, if there is one.
fn drop_count(message: &libc::msghdr) -> Option<u32> {
    // SAFETY: the kernel filled msg_control up to msg_controllen with well-formed control
    // messages; the CMSG macros stay within that length, and the value is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(message);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SO_RXQ_OVFL {
                return Some(std::ptr::read_unaligned(
                    libc::CMSG_DATA(cmsg).cast::<u32>(),
                ));
            }
            cmsg = libc::CMSG_NXTHDR(message, cmsg);
        }
    }
    None
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
    fn the_kernels_drops_on_a_full_socket_are_reported() {
        let (receiver, sender) = pair();
        count_kernel_drops(&receiver).unwrap();
        // The smallest receive buffer the kernel allows (it doubles and floors the value):
        // a few KB, so most of 200 datagrams of 1 KB are dropped.
        let small: libc::c_int = 1;
        // SAFETY: the socket is open; `small` outlives the call.
        unsafe {
            libc::setsockopt(
                receiver.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&small as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        let mut reader = DatagramReader::new();
        sender.send(b"first").unwrap();
        settle();
        reader.read(&receiver, false).unwrap();
        assert_eq!(reader.kernel_drops(), None, "nothing dropped yet");
        for _ in 0..200 {
            sender.send(&[b'x'; 1024]).unwrap();
        }
        settle();
        let mut read = 0;
        while reader.read(&receiver, false).unwrap() > 0 {
            read += reader.datagrams().count() as u32;
        }
        // Sent after the drops, so it carries their count.
        sender.send(b"last").unwrap();
        settle();
        reader.read(&receiver, false).unwrap();
        let drops = reader.kernel_drops().expect("a drop count");
        assert!(drops > 0);
        assert_eq!(drops + read, 200);
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

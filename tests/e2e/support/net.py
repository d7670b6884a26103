"""Loopback ports: pick free ones, and read the kernel's socket tables to see what is bound."""

import itertools
import os
import socket
import time

HOST = "127.0.0.1"


# Ports come from below the kernel's ephemeral range (32768-60999 by default): a port picked with
# bind(0) and released can be taken by an outgoing connection before the relay binds it.
_FIRST, _COUNT = 10_000, 22_000
_next = itertools.count(os.getpid() * 7919 % _COUNT)


def free_port() -> int:
    """A port on 127.0.0.1 free right now for TCP and UDP, never handed out twice in this process."""
    for _ in range(_COUNT):
        port = _FIRST + next(_next) % _COUNT
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, socket.socket(
                socket.AF_INET, socket.SOCK_DGRAM
            ) as udp:
                tcp.bind((HOST, port))
                udp.bind((HOST, port))
        except OSError:
            continue
        return port
    raise AssertionError(f"no free port in {HOST}:{_FIRST}..{_FIRST + _COUNT}")


def _table(proto: str) -> list[list[str]]:
    with open(f"/proc/net/{proto}") as table:
        return [line.split() for line in table.readlines()[1:]]


def _local_port(row: list[str]) -> int:
    return int(row[1].rsplit(":", 1)[1], 16)


def udp_bound(port: int) -> bool:
    """Whether some socket is bound to this UDP port (IPv4 or IPv6)."""
    return any(_local_port(row) == port for proto in ("udp", "udp6") for row in _table(proto))


def tcp_listening(port: int) -> bool:
    """Whether some socket listens on this TCP port (state 0A is LISTEN)."""
    return any(
        _local_port(row) == port and row[3] == "0A" for proto in ("tcp", "tcp6") for row in _table(proto)
    )


def udp_backlog(port: int) -> int:
    """Bytes queued in the kernel for the socket bound to this UDP port, not yet read by its owner."""
    total = 0
    for proto in ("udp", "udp6"):
        for row in _table(proto):
            if _local_port(row) == port:
                total += int(row[4].split(":")[1], 16)
    return total


def wait_udp_drained(port: int, timeout: float = 10.0) -> None:
    """Wait until the owner of the UDP port has read every queued datagram."""
    deadline = time.monotonic() + timeout
    while udp_backlog(port) > 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"UDP port {port} still has {udp_backlog(port)} unread bytes after {timeout} s")
        time.sleep(0.02)


def wait_tcp_accepting(port: int, timeout: float) -> None:
    """Wait until a TCP connection to the port succeeds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing accepts TCP connections on {HOST}:{port} after {timeout} s")
            time.sleep(0.05)


def udp_receive_buffer_errors() -> int:
    """The kernel's count of UDP datagrams dropped because a receiver's buffer was full (all sockets)."""
    with open("/proc/net/snmp") as snmp:
        rows = [line.split() for line in snmp if line.startswith("Udp:")]
    names, values = rows[0], rows[1]
    return int(values[names.index("RcvbufErrors")])

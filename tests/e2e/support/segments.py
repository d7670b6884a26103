"""Hand-made segment documents and the UDP datagrams that carry them."""

import json
import os
import socket
import time

from support.net import HOST

HEADER = b'{"format":"json","version":1}'


def new_trace_id() -> str:
    """A trace id in X-Ray's format: 1-<epoch seconds, hex>-<96 random bits, hex>."""
    return f"1-{int(time.time()):08x}-{os.urandom(12).hex()}"


def new_segment_id() -> str:
    return os.urandom(8).hex()


def make_segment(name: str, **extra) -> dict:
    """A complete, minimal segment with a fresh trace id; extra keys are merged in."""
    start = time.time()
    segment = {
        "name": name,
        "id": new_segment_id(),
        "trace_id": new_trace_id(),
        "start_time": start,
        "end_time": start + 0.005,
    }
    segment.update(extra)
    return segment


def encode(segment: dict) -> bytes:
    return json.dumps(segment, separators=(",", ":"), ensure_ascii=False).encode()


def datagram(segment: dict, header: bytes = HEADER) -> bytes:
    """The daemon protocol: header line, newline, segment document."""
    return header + b"\n" + encode(segment)


def padded_to(segment: dict, size: int, header: bytes = HEADER) -> dict:
    """A copy of the segment with metadata padding so that its datagram is exactly `size` bytes."""
    padded = dict(segment, metadata={"default": {"padding": ""}})
    missing = size - len(datagram(padded, header))
    assert missing >= 0, f"segment is already {size - missing} bytes, more than {size}"
    padded["metadata"]["default"]["padding"] = "p" * missing
    assert len(datagram(padded, header)) == size
    return padded


class Sender:
    """A UDP socket that sends datagrams to the relay."""

    def __init__(self, port: int):
        self.address = (HOST, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(self, data: bytes) -> None:
        sent = self.sock.sendto(data, self.address)
        assert sent == len(data), f"sent {sent} of {len(data)} bytes"

    def close(self) -> None:
        self.sock.close()

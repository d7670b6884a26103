"""Garbage datagrams interleaved with valid segments: the relay drops the garbage and loses no valid segment.

The header rules follow the original daemon: the header is the JSON object before the first newline,
valid when "format" equals "json" ignoring case and "version" is the number 1 (Go's JSON decoding also
matches the key names ignoring case and skips unknown keys and surrounding whitespace). The body is not
checked, as the daemon does not check it: after a valid header any body is uploaded, escaped as the
daemon's SDK escapes it (a byte that is not UTF-8 becomes U+FFFD), and X-Ray judges each document on its
own; a body that is not a segment is refused by X-Ray, never by losing its neighbours.
"""

import json
import random

from support.net import wait_udp_drained
from support.segments import HEADER, Sender, datagram, encode, make_segment, padded_to
from support.xray import delivery_problems, fetch_documents, wait_for_segments

MAX_DATAGRAM = 65_000


def valid_datagrams() -> list[tuple[str, bytes, dict]]:
    """(label, datagram, segment) that the relay must accept and deliver."""
    cases = []

    def add(label, header=HEADER, segment=None, suffix=b""):
        segment = segment or make_segment(f"garbage-suite-{label}")
        cases.append((label, datagram(segment, header) + suffix, segment))

    add("plain")
    add("header spaces and upper-case format", b'{"format": "JSON", "version": 1}')
    add("header keys reordered", b'{"version":1,"format":"json"}')
    add("header padded with whitespace", b'  {"format":"json",  "version":1}\t')
    add("header with CRLF", b'{"format":"json","version":1}\r')
    add("header with an unknown key", b'{"format":"json","version":1,"compression":"none"}')
    add("header keys in another case", b'{"Format":"Json","VERSION":1}')
    add("body with a trailing newline", suffix=b"\n")
    add("65,000-byte segment", segment=padded_to(make_segment("garbage-suite-big"), MAX_DATAGRAM))
    add("line separator and HTML characters", segment=make_segment("garbage-suite-<a&b>\u2028\u2029"))
    # A Latin-1 byte where UTF-8 belongs: the daemon's JSON encoder sends U+FFFD in its place, and so
    # does the relay; X-Ray stores the segment with it.
    latin1 = make_segment("garbage-suite-caf\ufffd")
    cases.append(("Latin-1 byte in a string", datagram(latin1).replace("\ufffd".encode(), b"\xe9"), latin1))
    return cases


def garbage_datagrams() -> list[tuple[str, bytes, dict | None]]:
    """(label, datagram, segment inside it or None) that the relay must drop."""
    rng = random.Random(2000)
    cases = []

    def carrying(label, make):
        segment = make_segment(f"garbage-suite-rejected-{label}")
        cases.append((label, make(segment), segment))

    carrying("no header", lambda s: encode(s))
    carrying("no header, pretty-printed body", lambda s: json.dumps(s, indent=2).encode())
    carrying("wrong version", lambda s: datagram(s, b'{"format":"json","version":2}'))
    carrying("version as a string", lambda s: datagram(s, b'{"format":"json","version":"1"}'))
    carrying("wrong format", lambda s: datagram(s, b'{"format":"xml","version":1}'))
    carrying("header not JSON", lambda s: datagram(s, b"format=json version=1"))
    carrying("empty header", lambda s: b"\n" + encode(s))
    cases += [
        ("header only", HEADER, None),
        ("header and newline only", HEADER + b"\n", None),
        ("empty datagram", b"", None),
        ("random binary", rng.randbytes(1024), None),
        ("65,000 bytes of garbage", b"\x00\xff" * (MAX_DATAGRAM // 2), None),
        ("65,000 bytes without a newline", b"x" * MAX_DATAGRAM, None),
    ]
    return cases


# Bodies behind a valid header that moto cannot take: the daemon uploads these (so does the relay) and
# X-Ray refuses them one by one (moto: UnprocessedTraceSegments). None of them may cost a valid segment.
# (A bare number is left out: moto fails the whole call on one, where X-Ray refuses the one document.)
BAD_BODIES = [
    ("invalid JSON body", HEADER + b'\n{"name": "broken", "id": '),
    ("binary body", HEADER + b"\n" + random.Random(7).randbytes(512)),
    ("segment without required fields", HEADER + b'\n{"name": "no-ids"}'),
    ("raw tab in a string", HEADER + b'\n{"name": "raw\ttab", "id": "0123456789abcdef"}'),
    ("trailing NUL", HEADER + b"\n" + encode(make_segment("garbage-suite-nul")) + b"\x00"),
]


def test_garbage_loses_no_valid_segment(relay, xray):
    valid = valid_datagrams()
    garbage = garbage_datagrams()
    bad = [(label, data, None) for label, data in BAD_BODIES] + garbage
    assert max(len(data) for _, data, _ in valid) == MAX_DATAGRAM
    assert all(len(data) <= MAX_DATAGRAM for _, data, _ in valid + bad)

    sender = Sender(relay.udp_port)
    expected: list[tuple[str, dict]] = []  # (label, segment) of every valid datagram sent
    order: list[str] = []

    def send(label, data, segment=None):
        sender.send(data)
        order.append(label)
        if segment is not None:
            expected.append((label, segment))

    # Round 1: the valid variants alternate with the garbage.
    for index in range(max(len(valid), len(bad))):
        if index < len(valid):
            send(*valid[index])
        if index < len(bad):
            label, data, _ = bad[index]
            send(label, data)
    # Round 2: every kind of garbage is directly followed by a plain valid segment.
    for label, data, _ in bad:
        send(label, data)
        segment = make_segment("garbage-suite-after")
        send(f"valid after {label}", datagram(segment), segment)
    sender.close()

    sent = [segment for _, segment in expected]
    found = wait_for_segments(xray, sent, timeout=30)
    problems = delivery_problems(sent, found)
    lost = [label for label, segment in expected if segment["id"] not in found]
    assert not problems, f"lost: {lost}\n{problems}\nsend order: {order}\n{relay.report()}"
    assert relay.running, f"relay died on garbage\n{relay.report()}"

    wait_udp_drained(relay.udp_port)
    smuggled = [(label, segment) for label, _, segment in garbage if segment is not None]
    leaked = fetch_documents(xray, [segment["trace_id"] for _, segment in smuggled])
    leaked_labels = [label for label, segment in smuggled if segment["id"] in leaked]
    assert not leaked_labels, f"segments inside invalid datagrams reached X-Ray: {leaked_labels}\n{relay.report()}"

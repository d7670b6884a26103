"""SIGTERM: segments the relay has read but not yet uploaded are flushed before it exits with code 0."""

from support.net import wait_udp_drained
from support.segments import Sender, datagram, make_segment
from support.xray import delivery_problems, fetch_documents

COUNT = 30


def test_sigterm_flushes_pending_segments(relay, xray):
    segments = [make_segment("shutdown-flush", annotations={"index": i}) for i in range(COUNT)]
    sender = Sender(relay.udp_port)
    for segment in segments:
        sender.send(datagram(segment))
    sender.close()
    wait_udp_drained(relay.udp_port)  # the relay has read them all; now stop it at once

    code = relay.stop()
    assert code == 0, f"relay exited with {code} after SIGTERM\n{relay.report()}"
    assert relay.stop_seconds < 7, f"relay took {relay.stop_seconds:.1f} s to stop (flush should take ~5 s at most)"

    found = fetch_documents(xray, [segment["trace_id"] for segment in segments])
    problems = delivery_problems(segments, found)
    assert not problems, f"not flushed before exit:\n{problems}\n{relay.report()}"

"""The AWS X-Ray SDK for Python sends 100 segments through the relay; X-Ray stores every one unchanged."""

import time

from support.net import udp_receive_buffer_errors
from support.python_sdk import emit_segments, make_recorder
from support.xray import delivery_problems, wait_for_segments

COUNT = 100


def test_hundred_sdk_segments_arrive_with_identical_content(relay, xray):
    recorder, emitter = make_recorder(relay.udp_port, relay.tcp_port)
    started = int(time.time()) - 60
    drops_before = udp_receive_buffer_errors()
    emit_segments(recorder, COUNT, tag="py100")
    sent = emitter.documents()
    assert len(sent) == COUNT, f"the SDK sent {len(sent)} datagrams, expected one per segment"
    assert all(len(doc["subsegments"]) == 3 and doc["annotations"] and doc["metadata"] for doc in sent)

    found = wait_for_segments(xray, sent, timeout=30)
    problems = delivery_problems(sent, found)
    if problems:
        drops = udp_receive_buffer_errors() - drops_before
        problems += f"\nkernel UDP receive-buffer drops on this machine meanwhile: {drops}"
    assert not problems, f"{problems}\n{relay.report()}"

    # The traces are also listed by the query API a user would start from.
    summaries = xray.get_trace_summaries(StartTime=started, EndTime=int(time.time()) + 60)["TraceSummaries"]
    listed = {summary["Id"] for summary in summaries}
    unlisted = {doc["trace_id"] for doc in sent} - listed
    assert not unlisted, f"{len(unlisted)} traces missing from GetTraceSummaries, e.g. {sorted(unlisted)[:3]}"
    assert relay.running, f"relay died\n{relay.report()}"

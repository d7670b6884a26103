"""Offline mode: with --local-sink the relay needs no credentials and writes each accepted segment as a JSON line."""

import json

import pytest

from support.net import wait_udp_drained
from support.python_sdk import emit_segments, make_recorder
from support.segments import Sender
from support.xray import delivery_problems

COUNT = 25


@pytest.mark.parametrize("sink", ["file", "stdout"])
def test_local_sink_gets_exactly_the_sent_segments(start_relay, tmp_path, sink):
    path = tmp_path / "segments.jsonl"
    relay = start_relay(endpoint=None, credentials=None, args=("--local-sink", str(path) if sink == "file" else "-"))
    if sink == "stdout":
        path = relay.stdout_path

    recorder, emitter = make_recorder(relay.udp_port, relay.tcp_port)
    emit_segments(recorder, COUNT, tag=f"sink-{sink}")
    garbage = Sender(relay.udp_port)
    garbage.send(b'{"format":"json","version":2}\n{"not": "accepted"}')
    garbage.send(b"no header at all")
    garbage.close()
    wait_udp_drained(relay.udp_port)
    code = relay.stop()
    assert code == 0, f"relay exited with {code} after SIGTERM\n{relay.report()}"

    sent = emitter.documents()
    assert path.exists(), f"the sink {path} was not written\n{relay.report()}"
    lines = path.read_text().splitlines()
    by_id = {}
    for number, line in enumerate(lines, 1):
        try:
            doc = json.loads(line)
        except ValueError:
            pytest.fail(f"line {number} of the sink is not JSON: {line[:300]!r}\n{relay.report()}")
        assert isinstance(doc, dict) and "id" in doc, f"line {number} is not a segment: {line[:300]!r}"
        by_id[doc["id"]] = line

    problems = delivery_problems(sent, by_id)
    assert not problems, f"{problems}\n{relay.report()}"
    assert len(lines) == len(sent), f"the sink has {len(lines)} lines for {len(sent)} segments sent:\n" + "\n".join(
        line[:300] for line in lines if json.loads(line)["id"] not in {doc["id"] for doc in sent}
    )

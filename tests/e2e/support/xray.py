"""Reading segments back from the X-Ray API (moto) and comparing them with what was sent."""

import difflib
import json
import time

import requests

from support.segments import Sender, datagram, encode, make_segment

BATCH_GET_LIMIT = 5  # X-Ray's BatchGetTraces takes at most 5 trace ids per call


def fetch_documents(xray, trace_ids) -> dict[str, str]:
    """Segment id -> raw document, for every segment stored under the given traces."""
    ids = sorted(set(trace_ids))
    found = {}
    for start in range(0, len(ids), BATCH_GET_LIMIT):
        response = xray.batch_get_traces(TraceIds=ids[start : start + BATCH_GET_LIMIT])
        for trace in response["Traces"]:
            for segment in trace["Segments"]:
                found[segment["Id"]] = segment["Document"]
    return found


def wait_for_segments(xray, sent: list[dict], timeout: float = 30.0) -> dict[str, str]:
    """Poll BatchGetTraces until every sent segment is stored or the deadline passes.

    Returns what was found (segment id -> raw document); the caller asserts."""
    wanted = {segment["id"]: segment["trace_id"] for segment in sent}
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while True:
        missing_traces = {trace for seg_id, trace in wanted.items() if seg_id not in found}
        if not missing_traces:
            return found
        found.update(fetch_documents(xray, missing_traces))
        if time.monotonic() > deadline:
            return found
        if any(seg_id not in found for seg_id in wanted):
            time.sleep(0.25)


def _diff(sent: dict, got: dict) -> str:
    left = json.dumps(sent, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
    right = json.dumps(got, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
    return "\n".join(difflib.unified_diff(left, right, "sent", "stored", lineterm="", n=1))


def delivery_problems(sent: list[dict], found: dict[str, str], show: int = 3) -> str:
    """'' when every sent segment is stored with identical JSON content; otherwise a report."""
    missing = [segment for segment in sent if segment["id"] not in found]
    changed = []
    for segment in sent:
        raw = found.get(segment["id"])
        if raw is None:
            continue
        try:
            stored = json.loads(raw)
        except ValueError:
            changed.append(f"segment {segment['id']}: stored document is not JSON: {raw[:300]!r}")
            continue
        if stored != segment:
            changed.append(f"segment {segment['id']} content differs:\n{_diff(segment, stored)[:3000]}")
    if not missing and not changed:
        return ""
    lines = [f"{len(sent)} segments sent, {len(sent) - len(missing)} stored, {len(changed)} with changed content"]
    for segment in missing[:show]:
        lines.append(f"missing: {json.dumps(segment, ensure_ascii=False)[:400]}")
    if len(missing) > show:
        lines.append(f"... and {len(missing) - show} more missing")
    lines.extend(changed[:show])
    return "\n".join(lines)


def upload(relay, xray, name: str, count: int = 3) -> None:
    """Sends `count` segments to the relay over UDP and asserts every one is stored unchanged."""
    segments = [make_segment(name) for _ in range(count)]
    sender = Sender(relay.udp_port)
    for segment in segments:
        sender.send(datagram(segment))
    sender.close()
    problems = delivery_problems(segments, wait_for_segments(xray, segments, timeout=30))
    assert not problems, f"{problems}\n{relay.report()}"


def forward_through_proxy(relay, xray, name: str) -> None:
    """Posts a segment unsigned to the relay's TCP proxy, as an SDK calls the API through it, and
    asserts X-Ray's answer comes back and the segment is stored."""
    relay.wait_proxy()
    segment = make_segment(name)
    body = json.dumps({"TraceSegmentDocuments": [encode(segment).decode()]})
    response = requests.post(f"http://127.0.0.1:{relay.tcp_port}/TraceSegments", data=body,
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 200, f"{response.status_code} {response.text[:500]}\n{relay.report()}"
    assert json.loads(response.text) == {"UnprocessedTraceSegments": []}
    problems = delivery_problems([segment], wait_for_segments(xray, [segment], timeout=10))
    assert not problems, f"{problems}\n{relay.report()}"

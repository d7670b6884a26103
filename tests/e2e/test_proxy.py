"""The TCP proxy (-t) signs what SDKs send it and forwards it to the X-Ray endpoint."""

import json

import requests

from support.segments import encode, make_segment
from support.xray import delivery_problems, wait_for_segments


def test_proxy_signs_and_forwards_unsigned_requests(relay, xray):
    relay.wait_proxy()
    segment = make_segment("proxy-forward")
    body = json.dumps({"TraceSegmentDocuments": [encode(segment).decode()]})
    response = requests.post(f"http://127.0.0.1:{relay.tcp_port}/TraceSegments", data=body,
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 200, f"{response.status_code} {response.text[:500]}\n{relay.report()}"
    assert json.loads(response.text) == {"UnprocessedTraceSegments": []}
    problems = delivery_problems([segment], wait_for_segments(xray, [segment], timeout=10))
    assert not problems, f"{problems}\n{relay.report()}"

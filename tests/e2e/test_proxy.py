"""The TCP proxy (-t): SDKs' unsigned X-Ray API calls go out signed; /healthz and /metrics;
the SDKs' default sampling rule when offline."""

import json
import time

import pytest
import requests

from support.python_sdk import make_recorder
from support.sampling import SamplingEndpoint, rule
from support.xray import forward_through_proxy


def test_proxy_signs_and_forwards_unsigned_requests(relay, xray):
    forward_through_proxy(relay, xray, "proxy-forward")


@pytest.fixture
def sampling_endpoint(moto):
    endpoint = SamplingEndpoint(moto.relay_credentials, [
        rule("never", 1, rate=0.0, reservoir=0, service="svc-never"),
        rule("always", 2, rate=1.0, reservoir=0, service="svc-always"),
        rule("Default", 10000, rate=0.0, reservoir=0),
    ])
    yield endpoint
    endpoint.stop()


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not {what} after {timeout} s"
        time.sleep(0.05)


def test_the_python_sdk_fetches_and_applies_centralized_rules_through_the_relay(start_relay, sampling_endpoint):
    relay = start_relay(endpoint=sampling_endpoint.url)
    relay.wait_proxy()
    recorder, emitter = make_recorder(relay.udp_port, relay.tcp_port, sampling=True)
    cache = recorder.sampler._cache

    # The first decision starts the SDK's pollers; its rule poller fetches at once.
    recorder.begin_segment("warm-up")
    recorder.end_segment()
    wait_until(lambda: len(cache.rules) == 3, 20, f"rules loaded\n{relay.report()}")
    rules_calls = sampling_endpoint.calls("/GetSamplingRules")
    assert rules_calls, relay.report()
    problems = [call.signature_problem for call in sampling_endpoint.received if call.signature_problem]
    assert not problems, "\n".join(problems)
    assert "x-amzn-trace-id" not in rules_calls[0].headers.get("authorization", "")

    decisions = {}
    for service in ("svc-never", "svc-always", "svc-other"):
        sampled = []
        for _ in range(20):
            segment = recorder.begin_segment(service)
            sampled.append(segment.sampled)
            recorder.end_segment()
        decisions[service] = sampled
    assert decisions["svc-never"] == [False] * 20
    assert decisions["svc-always"] == [True] * 20
    assert decisions["svc-other"] == [False] * 20  # the Default rule here samples nothing

    # SamplingTargets through the relay, as the SDK's target poller does every 10 s.
    targets, last_modified = recorder.sampler._connector.fetch_sampling_target(cache.rules)
    assert targets["always"]["rate"] == 1.0 and targets["never"]["rate"] == 0.0
    assert last_modified == 1600000000
    assert len(sampling_endpoint.calls("/SamplingTargets")) == 1

    # Only the sampled segments were emitted (and the warm-up one, if the SDK's local fallback
    # sampled it before the rules arrived); the relay uploaded exactly those, signed.
    emitted = emitter.documents()
    assert sorted({doc["name"] for doc in emitted} - {"warm-up"}) == ["svc-always"]
    assert sum(doc["name"] == "svc-always" for doc in emitted) == 20
    sent = {doc["id"] for doc in emitted}
    def uploaded():
        return {json.loads(doc)["id"] for call in sampling_endpoint.calls("/TraceSegments")
                for doc in json.loads(call.body)["TraceSegmentDocuments"]}
    wait_until(lambda: uploaded() == sent, 20, f"all sampled segments uploaded\n{relay.report()}")
    problems = [call.signature_problem for call in sampling_endpoint.received if call.signature_problem]
    assert not problems, "\n".join(problems)


def test_offline_the_sdk_gets_its_default_rule_from_the_relay(start_relay, tmp_path):
    relay = start_relay(endpoint=None, credentials=None, args=("--local-sink", str(tmp_path / "segments.jsonl")))
    relay.wait_proxy()
    recorder, _ = make_recorder(relay.udp_port, relay.tcp_port, sampling=True)
    cache = recorder.sampler._cache
    recorder.begin_segment("warm-up")
    recorder.end_segment()
    wait_until(lambda: len(cache.rules) == 1, 20, f"the default rule loaded\n{relay.report()}")
    default = cache.rules[0]
    assert (default.name, default.rate, default.can_borrow) == ("Default", 0.05, True)
    targets, _ = recorder.sampler._connector.fetch_sampling_target(cache.rules)
    assert targets["Default"]["quota"] == 1 and targets["Default"]["rate"] == 0.05
    cache.load_targets(targets)
    # Each second: the reservoir's one request, then about 5 %.
    decisions = []
    for _ in range(300):
        second = int(time.time())
        segment = recorder.begin_segment("svc")
        decisions.append((second, segment.sampled))
        recorder.end_segment()
    # (The SDK reads the clock itself, so a second here may straddle one of its seconds.)
    seconds = len({second for second, _ in decisions})
    sampled = sum(sampled for _, sampled in decisions)
    assert decisions[0][1] is True
    assert seconds - 1 <= sampled <= seconds + 1 + 45, f"{sampled} of 300 sampled in {seconds} s"


def test_healthz_and_metrics(relay, xray):
    relay.wait_proxy()
    base = f"http://127.0.0.1:{relay.tcp_port}"
    health = requests.get(f"{base}/healthz", timeout=10)
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    metrics = requests.get(f"{base}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "xray_relay_segments_received_total 0" in metrics.text
    assert requests.post(f"{base}/healthz", timeout=10).status_code == 405

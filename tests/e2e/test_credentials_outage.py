"""Credentials expiring during an outage (issue 8): X-Ray is down for longer than the relay's
credentials live, and the relay must keep the segments, keep refreshing, and deliver every one
afterwards signed with credentials that are still valid, not with the keys of its first attempt.

The relay takes 15 s role credentials from the container credentials stand-in (moto issues them;
moto does not enforce the announced expiry, so the FaultyFront records which key signed each
PutTraceSegments call and when it arrived, and the test compares that with the expiry the stand-in
announced). The relay refreshes them at half their life, so a 40 s outage spans five refreshes
and two expiries of every key. Each test prints its figures (sent / delivered, keys, durations).
"""

import datetime
import re
import time
import urllib.request

import pytest

from support.container import ContainerStandIn
from support.faulty_front import FaultyFront
from support.segments import Sender, datagram, make_segment, new_trace_id
from support.xray import delivery_problems, wait_for_segments

LIFETIME = 15.0  # seconds the stand-in's credentials are announced to live
OUTAGE = 40.0  # seconds X-Ray is unreachable: longer than two lifetimes
COUNT = 300
RATE = 10  # segments per second: all are sent within the first 30 s of the outage
SEGMENTS_PER_TRACE = 30
TOKEN = "outage-agent-token"


class Agent:
    """Issues fresh role credentials from moto, each announced to expire LIFETIME seconds later
    (whole seconds, as the stand-in writes them), and answers 500 while `down` is set."""

    def __init__(self, moto):
        self.moto = moto
        self.down = False
        self.refused = []  # time.time() of each request answered 500

    def __call__(self):
        if self.down:
            self.refused.append(time.time())
            raise RuntimeError("credentials agent unavailable (injected)")
        credentials = self.moto.assume_role_credentials(session_name="outage")
        expiration = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        return credentials, expiration + datetime.timedelta(seconds=LIFETIME)


@pytest.fixture
def front(moto):
    front = FaultyFront(moto.url, moto.relay_credentials)
    yield front
    front.stop()


@pytest.fixture
def agent(moto):
    issuer = Agent(moto)
    stand_in = ContainerStandIn(issuer, authorization=TOKEN)
    stand_in.issuer = issuer
    yield stand_in
    stand_in.stop()


def start_relay_with_agent(start_relay, front, agent):
    return start_relay(endpoint=front.url, credentials=None, env={
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": agent.full_uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": TOKEN,
    })


def make_segments(tag: str) -> list[dict]:
    segments = []
    for i in range(COUNT):
        if i % SEGMENTS_PER_TRACE == 0:
            trace_id = new_trace_id()
        segments.append(make_segment(f"{tag}-{i}", trace_id=trace_id))
    return segments


def run_outage(relay, segments, steps) -> float:
    """Sends the segments at RATE from t=0 while running `steps` ([(at_seconds, action)], in
    order) on time; returns the time.time() at which it started."""
    sender = Sender(relay.udp_port)
    started = time.time()
    pending = list(steps)
    for i, segment in enumerate(segments):
        while pending and pending[0][0] <= time.time() - started:
            pending.pop(0)[1]()
        due = started + i / RATE
        if due > time.time():
            time.sleep(due - time.time())
        sender.send(datagram(segment))
    sender.close()
    for at, action in pending:
        delay = started + at - time.time()
        if delay > 0:
            time.sleep(delay)
        action()
    return started


def expirations(agent) -> dict[str, float]:
    """Access key id -> the expiry the stand-in announced for it."""
    return {credentials.access_key_id: expiration.timestamp() for credentials, expiration in agent.issued}


def expired_signatures(front, expiry: dict[str, float]) -> list[tuple[str, float, str]]:
    """Calls signed with a key the stand-in never issued, or that arrived after the key's expiry."""
    return [(call.access_key_id, round(call.arrived - expiry.get(call.access_key_id, 0.0), 1), call.mode)
            for call in front.signed if call.arrived >= expiry.get(call.access_key_id, 0.0)]


def expect_every_segment(name: str, relay, xray, segments, front, agent, started: float) -> None:
    """Waits until X-Ray has every segment (failing with the relay's log if not) and prints
    the run's figures."""
    found = wait_for_segments(xray, segments, timeout=90)
    report(name, segments, found, front, agent, started, recovered=time.time())
    problems = delivery_problems(segments, found)
    assert not problems, f"{problems}\n{relay.report(lines=60)}"


def report(name: str, segments, found, front, agent, started: float, recovered: float) -> None:
    accepted = [call for call in front.signed if call.status == 200]
    print(f"\n[{name}] delivered {len(found)} / {len(segments)}, outage {OUTAGE:.0f} s, credential lifetime "
          f"{LIFETIME:.0f} s, credentials issued {len(agent.issued)}, distinct keys signing uploads "
          f"{len({call.access_key_id for call in front.signed})} ({len({c.access_key_id for c in accepted})} on "
          f"accepted ones), calls refused by the front {sum(c.status != 200 for c in front.signed)}, "
          f"accepted {len(accepted)}, duplicates {front.duplicates()}, all found stored "
          f"{recovered - started - OUTAGE:.1f} s after the outage ended (polling every 0.25 s), agent 500s {len(agent.issuer.refused)}")


def test_uploads_after_a_long_outage_use_fresh_credentials(start_relay, front, agent, xray):
    """40 s outage (503, refused connections, 503) with 15 s credentials: every segment arrives,
    refreshes go on throughout, and no call is signed with an expired key."""
    relay = start_relay_with_agent(start_relay, front, agent)
    segments = make_segments("cred-outage")
    started = run_outage(relay, segments, [
        (0.0, lambda: front.set_mode("503")),
        (15.0, lambda: front.set_mode("refuse")),
        (30.0, lambda: front.set_mode("503")),
        (OUTAGE, lambda: front.set_mode("pass")),
    ])
    expect_every_segment("backend outage", relay, xray, segments, front, agent, started)

    expiry = expirations(agent)
    fetched = [request.time for request in agent.seen()]
    during = [at for at in fetched if started < at < started + OUTAGE]
    assert len(during) >= 4, f"only {len(during)} refreshes during the {OUTAGE} s outage\n{relay.report(60)}"
    expired = expired_signatures(front, expiry)
    assert not expired, f"calls signed with expired or unknown keys (key, seconds late, mode): {expired[:10]}"

    first_attempts = {call.access_key_id for call in front.signed if call.arrived < started + 5}
    assert first_attempts, "no upload was attempted early in the outage"
    accepted = [call for call in front.signed if call.mode == "pass" and call.status == 200]
    assert accepted, "nothing was accepted after the outage"
    reused = {call.access_key_id for call in accepted} & first_attempts
    assert not reused, f"uploads after the outage were signed with the first attempts' keys {reused}"
    log = relay.log()
    assert "will retry" in log and "dropping" not in log, relay.report(lines=60)
    assert "Refreshing AWS credentials failed" not in log


def test_credentials_source_down_while_they_expire(start_relay, front, agent, xray):
    """X-Ray down for 40 s and the credentials agent answering 500 from 1 s to 35 s: the relay's
    credentials expire with nothing to replace them. One warning says so, every segment is kept,
    and once both are back every segment arrives signed with new credentials."""
    relay = start_relay_with_agent(start_relay, front, agent)
    first_key = agent.issued[0][0].access_key_id
    segments = make_segments("cred-source-down")

    def agent_down(down: bool):
        agent.issuer.down = down

    started = run_outage(relay, segments, [
        (0.0, lambda: front.set_mode("503")),
        (1.0, lambda: agent_down(True)),
        (35.0, lambda: agent_down(False)),
        (OUTAGE, lambda: front.set_mode("pass")),
    ])
    expect_every_segment("backend and credentials outage", relay, xray, segments, front, agent, started)

    assert agent.issuer.refused, "the relay did not try to refresh while the agent was down"
    expired = expired_signatures(front, expiry=expirations(agent))
    assert not expired, f"calls signed with expired or unknown keys (key, seconds late, mode): {expired[:10]}"
    accepted = {call.access_key_id for call in front.signed if call.mode == "pass" and call.status == 200}
    assert accepted and first_key not in accepted, f"accepted calls were signed by {accepted}"

    log = relay.log()
    # One warning for the whole run of failures (later attempts log at debug level), saying
    # what failed, what the relay does meanwhile and until when.
    warnings = [line for line in log.splitlines() if "[Warn]" in line]
    assert len(warnings) == 1, "expected exactly one warning, found:\n" + "\n".join(warnings)
    assert re.search(
        r"\[Warn\] Refreshing AWS credentials failed; keeping the current ones until they expire at "
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ and retrying with backoff: credentials from container: "
        r"http://127\.0\.0\.1:\d+/v1/credentials answered HTTP 500$", warnings[0]), warnings[0]
    assert "dropping" not in log.lower(), relay.report(lines=60)
    assert re.search(r"\[Info\] Refreshed AWS credentials after \d+ failed attempts", log), relay.report(lines=60)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{relay.tcp_port}/metrics", timeout=5).read().decode()
    failures = re.search(r"^xray_relay_credential_refresh_failures_total (\d+)$", metrics, re.M)
    assert failures and int(failures.group(1)) >= 1, metrics
    print(f"[backend and credentials outage] xray_relay_credential_refresh_failures_total {failures.group(1)}")

"""The AWS X-Ray SDK for Node.js (aws-xray-sdk-core, tests/e2e/node) sends segments through the relay."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from support.xray import delivery_problems, wait_for_segments

NODE_DIR = Path(__file__).parent / "node"
COUNT = 40


def test_node_sdk_segments_arrive_with_identical_content(relay, xray):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Node.js SDK test needs node and `npm ci` in tests/e2e/node")
    if not (NODE_DIR / "node_modules" / "aws-xray-sdk-core").is_dir():
        pytest.fail(f"aws-xray-sdk-core is not installed: run `npm ci` in {NODE_DIR} (tests/run.sh does)")

    run = subprocess.run([node, "send.js", f"127.0.0.1:{relay.udp_port}", str(COUNT), "node40"],
                         cwd=NODE_DIR, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"send.js failed ({run.returncode}):\n{run.stderr[-3000:]}"
    sent = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(sent) == COUNT, f"the SDK sent {len(sent)} segments, expected {COUNT}"
    assert all(len(doc["subsegments"]) == 2 and doc["annotations"] for doc in sent)

    found = wait_for_segments(xray, sent, timeout=30)
    problems = delivery_problems(sent, found)
    assert not problems, f"{problems}\n{relay.report()}"

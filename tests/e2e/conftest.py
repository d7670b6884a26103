"""Fixtures of the end-to-end suite: a moto X-Ray API with IAM enforced, and relays started against it.

Environment:
  XRAY_BIN     the relay binary (default: target/debug/xray, built with `cargo build` when missing)
  XRAY_RUNNER  a command prefix to run it with, e.g. `qemu-aarch64-static`
"""

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from support.moto import MotoServer
from support.relay import Relay

REPO = Path(__file__).resolve().parents[2]
RELAYS = pytest.StashKey[list]()


def _relay_binary() -> Path:
    if "XRAY_BIN" in os.environ:
        binary = Path(os.environ["XRAY_BIN"]).resolve()
        if not binary.is_file():
            pytest.fail(f"XRAY_BIN={os.environ['XRAY_BIN']} is not a file")
        return binary
    binary = REPO / "target" / "debug" / "xray"
    if not binary.is_file():
        build = subprocess.run(["cargo", "build", "--bin", "xray"], cwd=REPO, capture_output=True, text=True)
        if build.returncode != 0:
            pytest.fail(f"cargo build failed:\n{build.stderr[-4000:]}")
    return binary


@pytest.fixture(scope="session")
def relay_command() -> list[str]:
    """The relay binary, with the XRAY_RUNNER prefix if one is set."""
    return shlex.split(os.environ.get("XRAY_RUNNER", "")) + [str(_relay_binary())]


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    """One moto server for the session; every request after its setup must be signed and allowed."""
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def start_relay(request, relay_command, moto, tmp_path):
    """Starts relays for a test: start_relay(endpoint=..., credentials=..., args=..., config_only=..., env=...,
    local_mode=..., region=...).

    By default a relay uploads to moto with the relay user's credentials. At teardown every relay
    still running gets SIGTERM and must exit with code 0 within 10 s."""
    relays: list[Relay] = []
    request.node.stash[RELAYS] = relays

    def start(endpoint: str | None = moto.url, credentials="relay", args: tuple[str, ...] = (),
              config_only: bool = False, **options) -> Relay:
        """options: env, local_mode, region (see Relay)."""
        if credentials == "relay":
            credentials = moto.relay_credentials
        relay = Relay(relay_command, tmp_path / f"relay{len(relays)}", endpoint, credentials, args, config_only,
                      **options)
        relays.append(relay)
        return relay

    yield start
    problems = []
    for relay in relays:
        if relay.killed:
            continue  # already failed the test with its report
        try:
            code = relay.stop()
        except AssertionError as error:
            problems.append(str(error))
            continue
        if code != 0:
            problems.append(f"relay exited with code {code} after SIGTERM, expected 0\n{relay.report()}")
    assert not problems, "\n\n".join(problems)


@pytest.fixture
def relay(start_relay) -> Relay:
    """A relay uploading to moto with the relay user's credentials."""
    return start_relay()


@pytest.fixture
def xray(moto):
    """A boto3 X-Ray client for moto, signed as the relay user."""
    return moto.xray()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the relays' logs to a failed test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for index, relay in enumerate(item.stash.get(RELAYS, [])):
            report.sections.append((f"relay {index} ({report.when})", relay.report(lines=200)))

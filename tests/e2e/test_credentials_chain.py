"""Every credentials source of the chain end to end, against moto with IAM enforced.

The relay uploads through a SigningRecorder in front of moto, so each test sees which access key
signed each PutTraceSegments call and whether it carried a session token; moto checks the
signature, the token and the policy. The "assumer" user may only assume the role, so segments
stored after it was the starting point prove the role's credentials were used."""

import datetime
import json
import re
import time

import pytest

from support.container import ContainerStandIn
from support.forward import SigningRecorder, WebIdentityStsForwarder
from support.imds import INSTANCE_ID, ImdsStandIn
from support.moto import REGION
from support.sso import REFRESHED_TOKEN, SsoStandIn
from support.xray import upload


@pytest.fixture
def stand_ins():
    """Stand-in servers a test starts; stopped at teardown."""
    started = []
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def recorder(moto, stand_ins) -> SigningRecorder:
    server = SigningRecorder(moto.port)
    stand_ins.append(server)
    return server


def role_issuer(moto, lifetime: float = 3600.0):
    """Fresh role credentials from moto on every call, announced to expire `lifetime` seconds ahead."""
    def issue():
        credentials = moto.assume_role_credentials(session_name="stand-in")
        expiration = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=lifetime)
        return credentials, expiration
    return issue


def assert_signed_by(recorder, access_key_ids, with_token: bool, relay) -> None:
    signers = recorder.signers()
    assert signers, f"no upload reached the recorder\n{relay.report()}"
    wrong = [(key, token) for key, token, _ in signers if key not in access_key_ids or token != with_token]
    assert not wrong, f"uploads signed by {wrong}, expected {access_key_ids} (session token: {with_token})"


def assert_no_secrets(relay, *secrets) -> None:
    log = relay.log() + relay.stderr_path.read_text(errors="replace")
    leaked = [secret[:6] + "..." for secret in secrets if secret and secret in log]
    assert not leaked, f"the relay logged secrets: {leaked}"


def test_web_identity_exchanges_the_token_file_for_the_role(start_relay, moto, xray, recorder, stand_ins, tmp_path):
    token = "eyJhbGciOiJSUzI1NiJ9.e2e-web-identity-token.signature"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    sts = WebIdentityStsForwarder(moto.port, moto.assumer_credentials, token)
    stand_ins.append(sts)
    relay = start_relay(endpoint=recorder.url, credentials=None, env={
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AWS_ROLE_ARN": moto.role_arn,
        "AWS_ROLE_SESSION_NAME": "irsa-pod",
        "AWS_ENDPOINT_URL_STS": sts.url,
    })
    upload(relay, xray, "web-identity")
    assert sts.seen() and not sts.problems, sts.problems
    assert "RoleSessionName=irsa-pod" in sts.seen()[0].body.decode()
    key = recorder.signers()[0][0]
    assert key != moto.assumer_credentials.access_key_id
    assert_signed_by(recorder, {key}, True, relay)
    assert "Using AWS credentials from web identity" in relay.log()
    assert_no_secrets(relay, token)


def relay_on_role_profile(start_relay, moto, recorder, tmp_path, config: str, keys_section: str):
    """A relay whose profile `xray` (config text `config`) assumes moto's role; the assumer's keys
    are in the credentials file under `keys_section`. Returns the relay and the assumer."""
    assumer = moto.assumer_credentials
    (tmp_path / "config").write_text(config)
    (tmp_path / "credentials").write_text(f"[{keys_section}]\naws_access_key_id = {assumer.access_key_id}\n"
                                          f"aws_secret_access_key = {assumer.secret_access_key}\n")
    relay = start_relay(endpoint=recorder.url, credentials=None, env={
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_PROFILE": "xray",
        "AWS_ENDPOINT_URL_STS": moto.url,
    })
    return relay, assumer


def assert_signed_with_the_role(relay, recorder, assumer) -> None:
    keys = {key for key, _, _ in recorder.signers()}
    assert assumer.access_key_id not in keys
    assert_signed_by(recorder, keys, True, relay)


def test_profile_role_arn_with_source_profile(start_relay, moto, xray, recorder, tmp_path):
    config = f"[profile xray]\nrole_arn = {moto.role_arn}\nsource_profile = base\nrole_session_name = on-prem\n"
    relay, assumer = relay_on_role_profile(start_relay, moto, recorder, tmp_path, config, "base")
    upload(relay, xray, "profile-role")
    assert_signed_with_the_role(relay, recorder, assumer)
    assert "Using AWS credentials from profile" in relay.log()
    assert_no_secrets(relay, assumer.secret_access_key)


def test_profile_role_arn_on_the_profiles_own_keys(start_relay, moto, xray, recorder, tmp_path):
    """No source_profile: the Go SDK v2 assumes the role with the profile's own keys."""
    config = f"[profile xray]\nrole_arn = {moto.role_arn}\n"
    relay, assumer = relay_on_role_profile(start_relay, moto, recorder, tmp_path, config, "xray")
    upload(relay, xray, "profile-own-keys-role")
    assert_signed_with_the_role(relay, recorder, assumer)


def test_profile_credential_process(start_relay, moto, xray, recorder, tmp_path):
    role = moto.assume_role_credentials(session_name="process")
    output = {"Version": 1, "AccessKeyId": role.access_key_id, "SecretAccessKey": role.secret_access_key,
              "SessionToken": role.session_token, "Expiration": "2099-01-01T00:00:00Z"}
    script = tmp_path / "creds.sh"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(output)}\nEOF\n")
    script.chmod(0o755)
    config = tmp_path / "config"
    config.write_text(f"[default]\ncredential_process = {script}\n")
    relay = start_relay(endpoint=recorder.url, credentials=None, env={
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    })
    upload(relay, xray, "credential-process")
    assert_signed_by(recorder, {role.access_key_id}, True, relay)
    assert_no_secrets(relay, role.secret_access_key, role.session_token)


def test_container_credentials_with_the_token_file(start_relay, moto, xray, recorder, stand_ins, tmp_path):
    token = "pod-identity-token-0123456789"
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text(token)
    agent = ContainerStandIn(role_issuer(moto), authorization=token)
    stand_ins.append(agent)
    relay = start_relay(endpoint=recorder.url, credentials=None, env={
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": agent.full_uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "the-file-wins-over-this",
    })
    upload(relay, xray, "container")
    assert agent.seen() and all(r.headers.get("authorization") == token for r in agent.seen())
    issued = agent.issued[0][0]
    assert_signed_by(recorder, {issued.access_key_id}, True, relay)
    assert_no_secrets(relay, token, issued.secret_access_key, issued.session_token)



SSO_START_URL = "https://e2e.awsapps.com/start"
SSO_ACCOUNT = "123456789012"
SSO_ROLE = "XRayWriter"


def write_sso_token(home, token: dict, session_name: str | None) -> None:
    """Caches `token` where and as the AWS CLI does after `aws sso login`, through botocore itself."""
    from botocore.tokens import _sso_json_dumps
    from botocore.utils import JSONFileCache, SSOTokenLoader

    cache = JSONFileCache(str(home / ".aws" / "sso" / "cache"), dumps_func=_sso_json_dumps)
    SSOTokenLoader(cache=cache).save_token(SSO_START_URL, token, session_name=session_name)


def read_sso_token(home, session_name: str | None) -> dict:
    from botocore.utils import JSONFileCache, SSOTokenLoader

    return SSOTokenLoader(cache=JSONFileCache(str(home / ".aws" / "sso" / "cache")))(SSO_START_URL, session_name)


def sso_config(home, form: str) -> None:
    """~/.aws/config with profile `dev` in the sso-session or the legacy form."""
    (home / ".aws").mkdir(parents=True, exist_ok=True)
    common = f"sso_account_id = {SSO_ACCOUNT}\nsso_role_name = {SSO_ROLE}\nregion = {REGION}\n"
    if form == "sso-session":
        text = (f"[profile dev]\nsso_session = e2e\n{common}"
                f"[sso-session e2e]\nsso_region = eu-west-1\nsso_start_url = {SSO_START_URL}\n"
                "sso_registration_scopes = sso:account:access\n")
    else:
        text = f"[profile dev]\nsso_start_url = {SSO_START_URL}\nsso_region = eu-west-1\n{common}"
    (home / ".aws" / "config").write_text(text)


@pytest.mark.parametrize("form", ["sso-session", "legacy"])
def test_sso_profile_signs_with_the_portal_role_credentials(start_relay, moto, xray, recorder, stand_ins, tmp_path,
                                                           form):
    home = tmp_path / "home"
    sso_config(home, form)
    bearer = "aoaAAAAAGe2e-sso-access-token"
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=8)
    write_sso_token(home, {"startUrl": SSO_START_URL, "region": "eu-west-1", "accessToken": bearer,
                           "expiresAt": expires}, session_name="e2e" if form == "sso-session" else None)
    portal = SsoStandIn(role_issuer(moto), bearer, SSO_ACCOUNT, SSO_ROLE)
    stand_ins.append(portal)
    relay = start_relay(endpoint=recorder.url, credentials=None, env={
        "HOME": str(home), "AWS_PROFILE": "dev", "AWS_ENDPOINT_URL_SSO": portal.url,
    })
    upload(relay, xray, f"sso-{form}")
    assert portal.issued and not portal.problems, portal.problems
    issued = portal.issued[0][0]
    assert_signed_by(recorder, {c.access_key_id for c, _ in portal.issued}, True, relay)
    assert "Using AWS credentials from profile" in relay.log()
    assert_no_secrets(relay, bearer, issued.secret_access_key, issued.session_token)


def test_sso_session_token_expired_is_refreshed_and_the_cache_rewritten(start_relay, moto, xray, recorder,
                                                                        stand_ins, tmp_path):
    home = tmp_path / "home"
    sso_config(home, "sso-session")
    now = datetime.datetime.now(datetime.timezone.utc)
    client = ("e2e-client-id", "e2e-client-secret", "e2e-refresh-token")
    write_sso_token(home, {
        "startUrl": SSO_START_URL, "region": "eu-west-1", "accessToken": "expired-bearer",
        "expiresAt": now - datetime.timedelta(minutes=1), "clientId": client[0], "clientSecret": client[1],
        "registrationExpiresAt": now + datetime.timedelta(days=80), "refreshToken": client[2],
    }, session_name="e2e")
    services = SsoStandIn(role_issuer(moto), "not-the-expired-one", SSO_ACCOUNT, SSO_ROLE, client=client)
    stand_ins.append(services)
    relay = start_relay(endpoint=recorder.url, credentials=None, env={
        "HOME": str(home), "AWS_PROFILE": "dev", "AWS_ENDPOINT_URL": services.url,
    })
    upload(relay, xray, "sso-refresh")
    assert not services.problems, services.problems
    calls = [(r.method, r.path.split("?")[0]) for r in services.seen()]
    assert calls[:2] == [("POST", "/token"), ("GET", "/federation/credentials")], calls
    assert services.seen()[1].headers.get("x-amz-sso_bearer_token") == REFRESHED_TOKEN
    assert_signed_by(recorder, {c.access_key_id for c, _ in services.issued}, True, relay)

    # botocore reads back what the relay wrote: new tokens, a later expiry, every other field kept.
    token = read_sso_token(home, "e2e")
    assert token["accessToken"] == REFRESHED_TOKEN and token["refreshToken"] == "refresh-token-2"
    from dateutil.parser import parse
    assert parse(token["expiresAt"]) > now + datetime.timedelta(minutes=50), token["expiresAt"]
    assert (token["startUrl"], token["clientId"], token["clientSecret"]) == (SSO_START_URL, client[0], client[1])
    assert "registrationExpiresAt" in token
    cache = home / ".aws" / "sso" / "cache"
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].stat().st_mode & 0o777 == 0o600, files
    assert_no_secrets(relay, REFRESHED_TOKEN, client[1], client[2], "refresh-token-2")


@pytest.mark.parametrize("token_status", [200, 403], ids=["imdsv2", "imdsv1-fallback"])
def test_instance_metadata_credentials_region_and_host(start_relay, moto, xray, recorder, stand_ins, token_status):
    imds = ImdsStandIn(role_issuer(moto), REGION, token_status=token_status)
    stand_ins.append(imds)
    relay = start_relay(endpoint=recorder.url, credentials=None, local_mode=False, region=None, env={
        "AWS_EC2_METADATA_DISABLED": "false",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url,
    })
    upload(relay, xray, f"imds-{token_status}")
    seen = imds.seen()
    assert seen[0].method == "PUT" and seen[0].path == "/latest/api/token"
    assert seen[0].headers.get("x-aws-ec2-metadata-token-ttl-seconds") == "21600"
    gets = [r for r in seen if r.method == "GET"]
    paths = {r.path for r in gets}
    assert {"/latest/meta-data/placement/region", "/latest/meta-data/hostname", "/latest/meta-data/instance-id",
            "/latest/meta-data/iam/security-credentials/"} <= paths, paths
    if token_status == 200:
        assert all(r.headers.get("x-aws-ec2-metadata-token") == imds.token for r in gets)
        assert sum(r.method == "PUT" for r in seen) == 1, "the session token is reused"
    else:
        assert all("x-aws-ec2-metadata-token" not in r.headers for r in gets)
    issued = imds.issued[0][0]
    assert_signed_by(recorder, {c.access_key_id for c, _ in imds.issued}, True, relay)
    log = relay.log()
    assert f"Fetch region {REGION} from ec2 metadata" in log
    assert f"Using {INSTANCE_ID} instance id for telemetry records" in log
    assert_no_secrets(relay, imds.token, issued.secret_access_key, issued.session_token)


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"])
def test_role_arn_flag_assumes_the_role_on_top_of_the_chain(start_relay, moto, xray, recorder, variable):
    assumer = moto.assumer_credentials
    relay = start_relay(endpoint=recorder.url, credentials=assumer, args=("-r", moto.role_arn),
                        env={variable: moto.url})
    upload(relay, xray, "role-arn-flag")
    keys = {key for key, _, _ in recorder.signers()}
    assert assumer.access_key_id not in keys, "uploads were signed with the chain's keys, not the role's"
    assert_signed_by(recorder, keys, True, relay)
    assert f"Assuming role {moto.role_arn} (session xray-daemon) through STS at {moto.url}" in relay.log()
    assert_no_secrets(relay, assumer.secret_access_key)


def test_no_secret_or_token_reaches_the_log_at_the_most_verbose_level(start_relay, moto, xray, recorder,
                                                                       stand_ins):
    """Container credentials (the assumer's keys) under -r, with -l dev: the container token, the
    container's keys and the assumed role's keys (read from moto's answer as it passes) are all
    absent from the log."""
    def issue_assumer_keys():
        expiration = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        return moto.assumer_credentials, expiration

    agent = ContainerStandIn(issue_assumer_keys, authorization="container-authorization-secret")
    sts = SigningRecorder(moto.port)
    stand_ins.extend([agent, sts])
    relay = start_relay(endpoint=recorder.url, credentials=None, args=("-r", moto.role_arn, "-l", "dev"), env={
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": agent.full_uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "container-authorization-secret",
        "AWS_ENDPOINT_URL_STS": sts.url,
    })
    upload(relay, xray, "no-secrets")
    assert "[Trace]" in relay.log(), "the relay did not run at the dev level"
    container = agent.issued[0][0]
    answer = sts.replies[0].body.decode()
    role_secret = re.search(r"<SecretAccessKey>(.*?)</SecretAccessKey>", answer, re.S).group(1).strip()
    role_token = re.search(r"<SessionToken>(.*?)</SessionToken>", answer, re.S).group(1).strip()
    role_key = re.search(r"<AccessKeyId>(.*?)</AccessKeyId>", answer, re.S).group(1).strip()
    assert_signed_by(recorder, {role_key}, True, relay)
    assert role_key in relay.log(), "access key ids are not secret and name the identity in use"
    assert_no_secrets(relay, "container-authorization-secret", container.secret_access_key, role_secret,
                      role_token)


def test_credentials_are_refreshed_before_they_expire(start_relay, moto, xray, recorder, stand_ins):
    """The container agent announces a 12 s lifetime: uploads over 36 s span three expiries."""
    agent = ContainerStandIn(role_issuer(moto, lifetime=12), authorization="refresh-token")
    stand_ins.append(agent)
    relay = start_relay(endpoint=recorder.url, credentials=None, env={
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": agent.full_uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "refresh-token",
    })
    deadline = time.monotonic() + 36
    rounds = 0
    while time.monotonic() < deadline:
        upload(relay, xray, f"refresh-{rounds}", count=2)
        rounds += 1
        time.sleep(1.5)
    expirations = {credentials.access_key_id: expiration.timestamp() for credentials, expiration in agent.issued}
    assert len(expirations) >= 4, f"only {len(expirations)} credentials fetched in 36 s\n{relay.report()}"
    fetch_times = [r.time for r in agent.seen()]
    issued_expirations = [expiration.timestamp() for _, expiration in agent.issued]
    late = [i for i in range(1, len(fetch_times)) if fetch_times[i] >= issued_expirations[i - 1]]
    assert not late, f"fetches {late} came after the previous credentials expired"
    expired = [(key, at) for key, _, at in recorder.signers() if at >= expirations.get(key, 0)]
    assert not expired, f"uploads signed with expired or unknown keys: {expired}"
    assert len({key for key, _, _ in recorder.signers()}) >= 3
    assert "Refreshing AWS credentials failed" not in relay.log()


def test_a_failed_refresh_keeps_the_old_credentials_and_retries(start_relay, moto, xray, recorder, stand_ins):
    """30 s credentials; the agent fails from 1 s to 18 s after the first fetch, covering the
    refresh at 15 s and its first retries."""
    issue = role_issuer(moto, lifetime=30)
    first_fetch = []

    def flaky_issue():
        now = time.time()
        if first_fetch and 1 < now - first_fetch[0] < 18:
            raise RuntimeError("agent unavailable")
        first_fetch.append(now)
        return issue()

    agent = ContainerStandIn(flaky_issue, authorization="flaky-token")
    stand_ins.append(agent)
    relay = start_relay(endpoint=recorder.url, credentials=None, env={
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": agent.full_uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "flaky-token",
    })
    upload(relay, xray, "before-refresh")
    time.sleep(max(0.0, first_fetch[0] + 16.5 - time.time()))
    upload(relay, xray, "while-refresh-fails")  # after the failed refresh at 15 s
    deadline = first_fetch[0] + 27
    while len(agent.issued) < 2 and time.time() < deadline:
        time.sleep(0.5)
    assert len(agent.issued) >= 2, f"the refresh never recovered\n{relay.report()}"
    upload(relay, xray, "after-recovery")
    first_key = agent.issued[0][0].access_key_id
    failing = [at for key, _, at in recorder.signers() if first_fetch[0] + 15 < at < first_fetch[0] + 18]
    assert failing, "no upload happened while the refresh was failing"
    assert all(key == first_key for key, _, at in recorder.signers() if at < first_fetch[0] + 18)
    log = relay.log()
    warnings = re.findall(r"\[Warn\].*Refreshing AWS credentials failed", log, flags=re.IGNORECASE)
    assert len(warnings) == 1, f"expected one warning, found {len(warnings)}\n{relay.report(80)}"
    assert "Refreshed AWS credentials after" in log


# Precedence: where two sources are configured, the one the SDKs pick wins, and the other is
# not even asked.

def test_environment_keys_win_over_container_credentials(start_relay, moto, xray, recorder, stand_ins):
    agent = ContainerStandIn(role_issuer(moto), authorization="t")
    stand_ins.append(agent)
    relay = start_relay(endpoint=recorder.url, env={
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": agent.full_uri, "AWS_CONTAINER_AUTHORIZATION_TOKEN": "t"})
    upload(relay, xray, "env-over-container")
    assert_signed_by(recorder, {moto.relay_credentials.access_key_id}, False, relay)
    assert agent.seen() == []


def test_web_identity_wins_over_the_profile(start_relay, moto, xray, recorder, stand_ins, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("web-token")
    sts = WebIdentityStsForwarder(moto.port, moto.assumer_credentials, "web-token")
    stand_ins.append(sts)
    denied = moto.denied_credentials  # if the profile won, X-Ray would refuse every upload
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {denied.access_key_id}\n"
                           f"aws_secret_access_key = {denied.secret_access_key}\n")
    relay = start_relay(endpoint=recorder.url, credentials=None, env={
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file), "AWS_ROLE_ARN": moto.role_arn,
        "AWS_ENDPOINT_URL_STS": sts.url, "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_CONFIG_FILE": str(tmp_path / "none")})
    upload(relay, xray, "web-over-profile")
    keys = {key for key, _, _ in recorder.signers()}
    assert denied.access_key_id not in keys
    assert_signed_by(recorder, keys, True, relay)


def test_the_profile_wins_over_container_credentials(start_relay, moto, xray, recorder, stand_ins, tmp_path):
    agent = ContainerStandIn(role_issuer(moto), authorization="t")
    stand_ins.append(agent)
    relay_keys = moto.relay_credentials
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {relay_keys.access_key_id}\n"
                           f"aws_secret_access_key = {relay_keys.secret_access_key}\n")
    relay = start_relay(endpoint=recorder.url, credentials=None, env={
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": agent.full_uri, "AWS_CONTAINER_AUTHORIZATION_TOKEN": "t"})
    upload(relay, xray, "profile-over-container")
    assert_signed_by(recorder, {relay_keys.access_key_id}, False, relay)
    assert agent.seen() == []


def test_container_credentials_win_over_instance_metadata(start_relay, moto, xray, recorder, stand_ins):
    agent = ContainerStandIn(role_issuer(moto), authorization="t")
    imds = ImdsStandIn(role_issuer(moto), REGION)
    stand_ins.extend([agent, imds])
    relay = start_relay(endpoint=recorder.url, credentials=None, env={
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": agent.full_uri, "AWS_CONTAINER_AUTHORIZATION_TOKEN": "t",
        "AWS_EC2_METADATA_DISABLED": "false", "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url})
    upload(relay, xray, "container-over-imds")
    assert_signed_by(recorder, {agent.issued[0][0].access_key_id}, True, relay)
    assert imds.seen() == [], "local mode with container credentials must not ask instance metadata"

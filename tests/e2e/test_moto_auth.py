"""The X-Ray API the relay is judged against really checks who signs: moto with IAM enforced.

These tests prove the judge, not the relay: a wrong secret, an unknown key, a user without an
X-Ray policy, a body changed after signing, and role credentials without their session token are
all refused, while correct signatures are accepted. They also pin down what moto does with
documents that are not valid segments (reported as unprocessed, the batch's other segments kept).
"""

import json

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError

from support.moto import REGION, Credentials
from support.segments import encode, make_segment
from support.xray import fetch_documents


def put(moto, credentials, documents):
    return moto.xray(credentials).put_trace_segments(TraceSegmentDocuments=documents)


def rejected(moto, credentials, code: str) -> None:
    """A PutTraceSegments with these credentials is refused with HTTP 403 and the given error code,
    and its segment is not stored."""
    segment = make_segment("auth-probe")
    with pytest.raises(ClientError) as caught:
        put(moto, credentials, [json.dumps(segment)])
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403, response
    assert code in str(caught.value), caught.value
    assert fetch_documents(moto.xray(), [segment["trace_id"]]) == {}


def test_right_secret_is_accepted(moto):
    segment = make_segment("auth-right")
    response = put(moto, moto.relay_credentials, [json.dumps(segment)])
    assert response["UnprocessedTraceSegments"] == []
    stored = fetch_documents(moto.xray(), [segment["trace_id"]])
    assert json.loads(stored[segment["id"]]) == segment


def test_wrong_secret_is_rejected(moto):
    wrong = Credentials(moto.relay_credentials.access_key_id, "wrong" + moto.relay_credentials.secret_access_key[5:])
    rejected(moto, wrong, "SignatureDoesNotMatch")


def test_unknown_access_key_is_rejected(moto):
    rejected(moto, Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), "InvalidClientTokenId")


def test_user_without_xray_policy_is_denied(moto):
    rejected(moto, moto.denied_credentials, "AccessDenied")


def test_role_credentials_need_their_session_token(moto):
    role = moto.assume_role_credentials()
    segment = make_segment("auth-role")
    assert put(moto, role, [json.dumps(segment)])["UnprocessedTraceSegments"] == []
    rejected(moto, Credentials(role.access_key_id, role.secret_access_key), "InvalidClientTokenId")
    rejected(moto, Credentials(role.access_key_id, role.secret_access_key, role.session_token[:-4] + "AAAA"),
             "InvalidClientTokenId")


def signed_request(moto, body: str) -> dict[str, str]:
    """SigV4 headers for POST /TraceSegments with this body, made by botocore's signer."""
    creds = moto.relay_credentials
    request = AWSRequest("POST", f"{moto.url}/TraceSegments", data=body.encode(),
                         headers={"Content-Type": "application/json"})
    SigV4Auth(BotoCredentials(creds.access_key_id, creds.secret_access_key), "xray", REGION).add_auth(request)
    return dict(request.headers.items())


def test_signature_covers_the_body(moto):
    """The payload hash is checked: one byte changed after signing and the request is refused."""
    segment = make_segment("auth-body")
    body = json.dumps({"TraceSegmentDocuments": [encode(segment).decode()]})
    headers = signed_request(moto, body)
    tampered = requests.post(f"{moto.url}/TraceSegments", data=body.replace("[", "[ ", 1).encode(), headers=headers)
    assert tampered.status_code == 403 and "SignatureDoesNotMatch" in tampered.text, tampered.text
    assert fetch_documents(moto.xray(), [segment["trace_id"]]) == {}
    genuine = requests.post(f"{moto.url}/TraceSegments", data=body.encode(), headers=headers)
    assert genuine.status_code == 200, genuine.text
    assert json.loads(genuine.text) == {"UnprocessedTraceSegments": []}


def test_unsigned_request_is_refused(moto):
    segment = make_segment("auth-unsigned")
    body = json.dumps({"TraceSegmentDocuments": [encode(segment).decode()]})
    response = requests.post(f"{moto.url}/TraceSegments", data=body, headers={"Content-Type": "application/json"})
    # moto fails on the missing Authorization header with a 500 rather than a 403; refused either way.
    assert response.status_code in (403, 500), response.text
    assert fetch_documents(moto.xray(), [segment["trace_id"]]) == {}


def test_invalid_documents_are_unprocessed_and_the_rest_kept(moto):
    good = make_segment("docs-good")
    incomplete = make_segment("docs-incomplete")
    del incomplete["end_time"]
    response = put(moto, moto.relay_credentials, ['{"name": "broken", "id": ', json.dumps(good), json.dumps(incomplete)])
    codes = sorted(item["ErrorCode"] for item in response["UnprocessedTraceSegments"])
    assert codes == ["JSONFormatError", "MissingParam"], response
    stored = fetch_documents(moto.xray(), [good["trace_id"], incomplete["trace_id"]])
    assert list(stored) == [good["id"]]

"""A Python client of tokend, as a platform team would write one: generated from proto/ with
grpcio-tools (by tests/python_client.rs, into a directory it puts on PYTHONPATH), branching on
ErrorInfo.reason rather than on messages, and discovering the API by server reflection.

Usage: tokend_client.py ADDRESS NAMESPACE. Prints one JSON object with what it saw; exits non-zero
(with a traceback) when a call fails unexpectedly.
"""

import json
import sys

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from tokend.v1 import errors_pb2, token_service_pb2, token_service_pb2_grpc

DOMAIN = "tokend.io"


def details(error):
    """The ErrorInfo and BadRequest of a failed call (google.rpc.Status details)."""
    status = rpc_status.from_call(error)
    info, bad = None, None
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
    return info, bad


def main():
    address, namespace = sys.argv[1], sys.argv[2]
    seen = {}
    with grpc.insecure_channel(address) as channel:
        stub = token_service_pb2_grpc.TokenServiceStub(channel)

        # Issue with a google.protobuf.Duration instead of the duration string.
        issued = stub.IssueToken(
            token_service_pb2.IssueTokenRequest(
                namespace=namespace,
                service_account="python",
                create_service_account=True,
                lifetime=duration_pb2.Duration(seconds=2 * 3600),
            ),
            timeout=60,
        )
        seen["issued_token_id"] = issued.token_id
        seen["token_present"] = bool(issued.token)
        seen["granted_seconds"] = issued.granted_lifetime.seconds

        # A bad request: branch on the reason, never on the English message.
        try:
            stub.IssueToken(
                token_service_pb2.IssueTokenRequest(
                    namespace="Not_A_Namespace",
                    service_account="python",
                    duration="1.5h",
                    labels={"tokend.io/forged": "x"},
                ),
                timeout=60,
            )
            seen["bad_request"] = "accepted"
        except grpc.RpcError as error:
            info, bad = details(error)
            seen["bad_code"] = error.code().name
            seen["bad_domain"] = info.domain if info else None
            if info and info.reason == errors_pb2.ErrorReason.Name(errors_pb2.INVALID_FIELDS):
                seen["bad_branch"] = "fix the fields"
            else:
                seen["bad_branch"] = "unexpected"
            seen["bad_reason"] = info.reason if info else None
            seen["violations"] = [
                [v.field, v.reason] for v in (bad.field_violations if bad else [])
            ]

        # A policy refusal: a lifetime over the server's maximum.
        try:
            stub.IssueToken(
                token_service_pb2.IssueTokenRequest(
                    namespace=namespace,
                    service_account="python",
                    lifetime=duration_pb2.Duration(seconds=100 * 365 * 86400),
                ),
                timeout=60,
            )
            seen["over_maximum"] = "accepted"
        except grpc.RpcError as error:
            info, _ = details(error)
            if info and info.reason == "DURATION_OVER_MAXIMUM":
                seen["over_maximum"] = int(info.metadata["maximum_seconds"])
            else:
                seen["over_maximum"] = str(info)

        stub.RevokeToken(
            token_service_pb2.RevokeTokenRequest(token_id=issued.token_id), timeout=60
        )

        # Reflection, as grpcurl and Postman use it.
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=60
        )
        seen["services"] = sorted(
            s.name for answer in answers for s in answer.list_services_response.service
        )
    print(json.dumps(seen))


if __name__ == "__main__":
    main()

"""The one place boto3 clients are made: botocore's standard credential chain, one region.

Credentials never come from conf: the chain (environment, profile, instance/task role)
supplies them. `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_<SERVICE>`) points a client at
another endpoint, e.g. a local moto server in tests.

It is also the one place an AWS failure becomes a sentence (`explain`, `aws_errors`): missing
or refused credentials, an endpoint that does not answer, a missing bucket and an access
denied each say what was being done, what is wrong and what to do, instead of botocore's
`NoCredentialsError: Unable to locate credentials` or boto3's `S3UploadFailedError`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from featurebank.errors import (AwsAccessDenied, AwsFailure, AwsResourceMissing, AwsUnreachable,
                                FeaturebankError)

# Codes AWS answers for credentials it does not accept (wrong, expired, from another partition).
CREDENTIAL_CODES = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "UnrecognizedClientException",
                    "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "InvalidToken",
                    "AuthFailure")
# Codes AWS answers when the identity is known but not allowed.
DENIED_CODES = ("AccessDenied", "AccessDeniedException", "403", "Forbidden", "AllAccessDisabled",
                "UnauthorizedOperation", "AuthorizationError")
MISSING_BUCKET_CODES = ("NoSuchBucket",)


def client(service: str, region: str | None, **config: Any) -> Any:
    """A boto3 client for `service` in `region` (None: the chain's default region).

    `AWS_ENDPOINT_URL` is honoured (boto3 reads it itself; it is also passed explicitly so
    older botocore versions agree). `config` goes to `botocore.config.Config`
    (e.g. `retries={"max_attempts": 1}`).
    """
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=region or None)
    return session.client(service, endpoint_url=endpoint_url(service), config=Config(**config) if config else None)


def endpoint_url(service: str) -> str | None:
    """The endpoint `AWS_ENDPOINT_URL_<SERVICE>` or `AWS_ENDPOINT_URL` names, or None (AWS itself)."""
    return os.environ.get(f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}") or os.environ.get("AWS_ENDPOINT_URL")


def resolved_credentials() -> tuple[Any, str | None]:
    """(frozen credentials or None, region or None) as botocore's standard chain resolves them now.

    For code that must hand the chain's answer to a non-botocore client (delta-rs): the
    frozen credentials have `access_key`, `secret_key` and `token` (None unless temporary).
    """
    import boto3

    session = boto3.session.Session()
    credentials = session.get_credentials()
    return (None if credentials is None else credentials.get_frozen_credentials()), session.region_name


def explain(error: BaseException, doing: str) -> AwsFailure | None:
    """`error` as the sentence a user can act on, or None when it is not one of the AWS
    failures named below (the caller re-raises it, or handles the code it expects).

    `doing` says what was being done, in words (`uploading dist/x.whl to s3://b/k`). Returns an
    `AwsUnreachable` (no credentials, refused credentials, endpoint not answering), an
    `AwsResourceMissing` (NoSuchBucket) or an `AwsAccessDenied`; each message is
    `<doing> failed: <what is wrong>; <what to do>`. boto3's `S3UploadFailedError` is read
    through to the AWS answer it wraps.
    """
    from botocore import exceptions as botocore_errors

    if isinstance(error, FeaturebankError):
        return None
    if isinstance(error, (botocore_errors.NoCredentialsError, botocore_errors.PartialCredentialsError,
                          botocore_errors.CredentialRetrievalError, botocore_errors.TokenRetrievalError,
                          botocore_errors.SSOTokenLoadError, botocore_errors.UnauthorizedSSOTokenError)):
        return AwsUnreachable(
            f"{doing} failed: no usable AWS credentials were found ({error}); botocore's standard chain looks at "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, SSO, and the instance or task role; "
            "log in (`aws sso login --profile P` and export AWS_PROFILE=P, or `aws configure`) and run again")
    if isinstance(error, (botocore_errors.EndpointConnectionError, botocore_errors.ConnectTimeoutError,
                          botocore_errors.ConnectionClosedError, botocore_errors.ReadTimeoutError,
                          botocore_errors.ProxyConnectionError)):
        endpoint = getattr(error, "kwargs", {}).get("endpoint_url") or "the AWS endpoint"
        override = os.environ.get("AWS_ENDPOINT_URL")
        hint = (f"AWS_ENDPOINT_URL={override} is set: check that something serves it, or unset it to reach AWS"
                if override else "check the network, proxy (HTTPS_PROXY) and the region in conf, then run again")
        return AwsUnreachable(f"{doing} failed: {endpoint} does not answer ({type(error).__name__}); {hint}")
    code, message, bucket = _aws_answer(error)
    if code is None:
        return None
    if code in CREDENTIAL_CODES:
        return AwsUnreachable(
            f"{doing} failed: AWS refused the credentials in use ({code}: {message}); they are wrong, expired or "
            "for another account: log in again (`aws sso login`), or fix AWS_PROFILE / AWS_ACCESS_KEY_ID, and run again")
    if code in MISSING_BUCKET_CODES:
        name = f"the S3 bucket {bucket}" if bucket else "the S3 bucket"
        return AwsResourceMissing(
            f"{doing} failed: {name} does not exist; the bucket does not exist in the account the credentials "
            "belong to: create it (in the region conf names), or correct the bucket in conf "
            "(feature_root, aws.artifacts, variables), and run again")
    if code in DENIED_CODES:
        return AwsAccessDenied(
            f"{doing} failed: AWS denied it to the identity in use ({code}: {message}); grant that identity the "
            "permission (`featurebank iam-policy --env E` prints what the job role needs; `aws sts "
            "get-caller-identity` shows who you are), or run as a principal that has it")
    return None


@contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Turn the AWS failures `explain` knows, raised inside, into its sentence; re-raise the rest."""
    try:
        yield
    except Exception as error:
        failure = explain(error, doing)
        if failure is None:
            raise
        raise failure from error


def is_unreachable(error: BaseException) -> bool:
    """True when `error` (explained or not) means AWS could not be reached at all."""
    return isinstance(error, AwsUnreachable) or isinstance(explain(error, "reaching AWS"), AwsUnreachable)


def _aws_answer(error: BaseException) -> tuple[str | None, str, str]:
    """(error code, message, bucket) of the AWS answer in `error` or the error it wraps; code
    None when there is no AWS answer."""
    from botocore.exceptions import ClientError

    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, ClientError):
            details = seen.response.get("Error", {})
            return (str(details.get("Code", "")), str(details.get("Message") or details.get("Code", "")),
                    str(details.get("BucketName") or ""))
        seen = seen.__cause__ or seen.__context__
    # boto3's transfer errors keep only the text of the answer: "... (NoSuchBucket) when calling ..."
    match = re.search(r"An error occurred \(([A-Za-z0-9.]+)\)[^:]*: (.*)", str(error))
    if match and type(error).__module__.startswith(("boto3", "botocore", "s3transfer")):
        return match.group(1), match.group(2), ""
    return None, "", ""

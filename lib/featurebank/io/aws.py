"""The one place boto3 clients are made: botocore's standard credential chain, one region.

Credentials never come from conf: the chain (environment, profile, instance/task role)
supplies them. `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_<SERVICE>`) points a client at
another endpoint, e.g. a local moto server in tests.
"""

from __future__ import annotations

import os
from typing import Any


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

"""The AWS account a deploy targets: conf's `aws.account_id`, else whoever the credentials are.

Deployment settings are read with the rest of conf (`Config.aws`, a typed `AwsSettings`);
clients come from `featurebank.io.aws.client` (botocore's standard credential chain, the
environment's region, `AWS_ENDPOINT_URL` honoured).
"""

from __future__ import annotations

from featurebank.definitions.config import AwsSettings
from featurebank.io.aws import client


def account_id(settings: AwsSettings) -> str:
    """The account the ARNs of this environment live in: conf's `account_id`, else STS."""
    if settings.account_id:
        return settings.account_id
    return str(client("sts", settings.region).get_caller_identity()["Account"])

"""The Terraform state backend: an S3 bucket and a DynamoDB lock table.

Terraform's S3 backend needs both to exist before ``terraform init``. They live in
the estate's *control* region, never in a region the estate fails over from: a
state bucket in the failed region would make the failover's own ``terraform apply``
fail exactly when it is needed (terraform/envs/lab/README.md).

The same code prepares the lab (moto, ``endpoint_url`` set) and a real account
(``endpoint_url=None``): only the endpoint differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import boto3
from botocore.exceptions import ClientError

#: The attribute Terraform's S3 backend keys its locks by.
LOCK_HASH_KEY = "LockID"


@dataclass(frozen=True)
class StateBackend:
    """What ``ensure_state_backend`` found or made; ``actions`` says which, in order."""

    bucket: str
    table: str
    region: str
    actions: list[str] = field(default_factory=list)

    @property
    def decision(self) -> str:
        """One line for logs and the journal."""
        if not self.actions:
            return f"state backend s3://{self.bucket} + {self.table} in {self.region}: present"
        return f"state backend in {self.region}: " + "; ".join(self.actions)


def ensure_state_backend(
    endpoint_url: str | None,
    region: str,
    bucket: str,
    table: str,
    *,
    session: boto3.session.Session | None = None,
) -> StateBackend:
    """Create the state bucket (versioned, private, encrypted) and the lock table if missing.

    Idempotent: existing resources are left as they are, except that versioning is
    switched on if it was off (state history is how a bad apply is undone).
    Credentials come from the session or the environment, as for every AWS client.
    """
    session = session or boto3.session.Session()
    s3 = session.client("s3", region_name=region, endpoint_url=endpoint_url)
    dynamodb = session.client("dynamodb", region_name=region, endpoint_url=endpoint_url)
    actions: list[str] = []

    if _ensure_bucket(s3, region, bucket):
        actions.append(f"created bucket {bucket}")
    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if versioning != "Enabled":
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        actions.append(f"enabled versioning on {bucket}")
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )

    if _ensure_table(dynamodb, table):
        actions.append(f"created lock table {table}")
    dynamodb.get_waiter("table_exists").wait(
        TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    return StateBackend(bucket=bucket, table=table, region=region, actions=actions)


def _ensure_bucket(s3, region: str, bucket: str) -> bool:
    """True if the bucket was created now."""
    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    kwargs: dict = {"Bucket": bucket}
    if region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
        return False
    return True


def _ensure_table(dynamodb, table: str) -> bool:
    """True if the table was created now."""
    try:
        dynamodb.describe_table(TableName=table)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
    try:
        dynamodb.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": LOCK_HASH_KEY, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": LOCK_HASH_KEY, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
        return False
    return True

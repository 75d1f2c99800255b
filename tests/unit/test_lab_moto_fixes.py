"""The lab's control plane answers as AWS does where drkit depends on it."""

from __future__ import annotations

import boto3
import pytest

from drkit.lab import moto_fixes

moto = pytest.importorskip("moto")


def test_moving_awscurrent_changes_what_get_secret_value_answers(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    moto_fixes.apply()
    with moto.mock_aws():
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        sm.create_secret(Name="db", SecretString="old")
        token = "drkit-rotation-0000000000000000000001"
        sm.put_secret_value(SecretId="db", ClientRequestToken=token, SecretString="new",
                            VersionStages=["AWSPENDING"])
        stages = sm.describe_secret(SecretId="db")["VersionIdsToStages"]
        current = next(v for v, s in stages.items() if "AWSCURRENT" in s)
        sm.update_secret_version_stage(SecretId="db", VersionStage="AWSCURRENT",
                                       MoveToVersionId=token, RemoveFromVersionId=current)
        assert sm.get_secret_value(SecretId="db")["SecretString"] == "new"
        assert "AWSPREVIOUS" in sm.describe_secret(SecretId="db")["VersionIdsToStages"][current]

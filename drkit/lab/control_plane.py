"""The lab's control plane: a moto server inside the gateway namespace.

moto speaks the AWS APIs for every region at once (the region is part of each
request), so one server on http://10.77.0.2:5000 is the whole cloud. boto3,
Terraform and Ansible reach it from the root namespace over drk-root, and lab
hosts reach it through their bridge, by endpoint setting only. The same server
answers over TLS on https://s3.cloud.lab:443 (the lab's CA in <lab>/tls/ca.crt)
for pgBackRest, which speaks S3 only over TLS (drkit.lab.moto_server).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from drkit.lab import paths
from drkit.lab.processes import PidRecord, start, stop, wait_for_port

NAME = "moto"
#: Where drkit's own source tree sits, so child Pythons import the same drkit.
SOURCE_ROOT = Path(__file__).resolve().parent.parent.parent


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the lab's Python children: this drkit importable, fake creds."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SOURCE_ROOT), env.get("PYTHONPATH", "")) if p
    )
    env.update(paths.FAKE_CREDENTIALS)
    env.update(extra or {})
    return env


def start_control_plane(lab: paths.LabPaths, *, timeout: float = 30.0) -> tuple[PidRecord, float]:
    """Start moto on the gateway address, plain and TLS; return its record and seconds
    until the plain port answered."""
    from drkit.lab import tls

    certs = tls.ensure(lab.tls_dir, [paths.S3_TLS_NAME], [paths.GATEWAY_ADDR])
    argv = ["ip", "netns", "exec", paths.GATEWAY_NS, sys.executable, "-m",
            "drkit.lab.moto_server", "--host", paths.GATEWAY_ADDR,
            "--port", str(paths.CONTROL_PLANE_PORT),
            "--tls-port", str(paths.CONTROL_PLANE_TLS_PORT),
            "--cert", str(certs.server_cert), "--key", str(certs.server_key),
            "--s3-name", paths.S3_TLS_NAME, "--chaos-file", str(lab.chaos_json)]
    record = start(NAME, argv, pid_file=lab.pid_file(NAME), log_file=lab.log_file(NAME),
                   env=child_env())
    waited = wait_for_port(paths.GATEWAY_ADDR, paths.CONTROL_PLANE_PORT, timeout=timeout,
                           record=record)
    return record, waited


def stop_control_plane(lab: paths.LabPaths) -> str:
    return stop(lab.pid_file(NAME))


def client(service: str, region: str, endpoint_url: str = paths.CONTROL_PLANE_URL,
           **kwargs: Any) -> Any:
    """A boto3 client for ``service`` in ``region`` against ``endpoint_url``.

    The endpoint is the only thing that makes it a lab client; quick retries and
    short timeouts suit a local server that may be restarting.
    """
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=2, read_timeout=10,
                    retries={"max_attempts": 2, "mode": "standard"})
    return boto3.client(
        service, region_name=region, endpoint_url=endpoint_url, config=config,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID",
                                         paths.FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY",
                                             paths.FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]),
        **kwargs,
    )

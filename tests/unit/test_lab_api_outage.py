"""The lab control plane's regional API outage: requests signed for a region and
service the chaos file lists get 503; every other request reaches moto."""

from __future__ import annotations

import json

from drkit.lab.moto_server import ApiOutages, scope_of


def _environ(region: str, service: str) -> dict:
    return {"HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=testing/20261203/"
                                  f"{region}/{service}/aws4_request, SignedHeaders=host"}


def _call(app, environ) -> str:
    seen = []
    body = b"".join(app(environ, lambda status, headers: seen.append(status)))
    return f"{seen[0]} {body.decode()}"


def test_a_listed_region_and_service_answers_503_and_the_rest_pass(tmp_path):
    chaos = tmp_path / "chaos.json"
    app = ApiOutages(lambda environ, start: (start("200 OK", []), [b"moto"])[1], str(chaos))
    assert _call(app, _environ("eu-west-1", "secretsmanager")) == "200 OK moto"
    chaos.write_text(json.dumps({"api_down": ["eu-west-1/secretsmanager", "ap-south-1/*"]}))
    down = _call(app, _environ("eu-west-1", "secretsmanager"))
    assert down.startswith("503") and "secretsmanager in eu-west-1 is down" in down
    assert _call(app, _environ("eu-west-1", "s3")) == "200 OK moto"
    assert _call(app, _environ("us-east-1", "secretsmanager")) == "200 OK moto"
    assert _call(app, _environ("ap-south-1", "ec2")).startswith("503")
    assert _call(app, {}) == "200 OK moto"  # unsigned (health checks)
    chaos.write_text(json.dumps({"api_down": []}))
    assert _call(app, _environ("ap-south-1", "ec2")) == "200 OK moto"
    assert scope_of(_environ("us-east-1", "s3")) == ("us-east-1", "s3")

"""The per-run aws_ec2 inventory cache is used only while it describes exactly the
instances EC2 reports (a real moto server; the cache file as ansible-core writes it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drkit import inventory_cache
from drkit.env import Environment
from tests.support.moto import CREDENTIALS, aws_client, running_moto_server

INVENTORY = """plugin: amazon.aws.aws_ec2
regions: [us-east-1, eu-west-1]
filters:
  instance-state-name: running
  tag:Estate: cachetest
"""


@pytest.fixture(scope="module")
def moto_url():
    with running_moto_server() as url:
        yield url


@pytest.fixture
def env(tmp_path: Path, moto_url: str) -> Environment:
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "aws_ec2.yml").write_text(INVENTORY)
    return Environment(name="cachetest", path=inventory, settings={
        "aws": {"endpoint_url": moto_url,
                "env": {"AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
                        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"]}},
        "control_region": "us-east-1"})


def _launch(moto_url: str, region: str, estate: str = "cachetest") -> str:
    ec2 = aws_client("ec2", moto_url, region=region)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "Estate", "Value": estate}]}],
    )["Instances"][0]["InstanceId"]


def _write_cache(cache_dir: Path, instances: list[dict]) -> Path:
    """A cache file in the shape ansible-core 2.19's jsonfile plugin writes."""
    path = cache_dir / "ansible_inventory_s1_amazon.aws.aws_ec2_k0"
    path.write_text(json.dumps({"__payload__": json.dumps({"aws_ec2": instances},
                                                          default=str)}))
    return path


def test_the_cache_lives_while_ec2_agrees_and_goes_when_an_instance_changes(env, moto_url,
                                                                            tmp_path):
    _launch(moto_url, "us-east-1")
    second = _launch(moto_url, "eu-west-1")
    _launch(moto_url, "eu-west-1", estate="another")  # filtered out: changes nothing
    cache_dir = tmp_path / "cache"

    settings = inventory_cache.prepare(env, cache_dir)
    assert settings["ANSIBLE_INVENTORY_CACHE_CONNECTION"] == str(cache_dir)
    assert settings["ANSIBLE_INVENTORY_CACHE"] == "True"

    config = inventory_cache.ec2_source(env.inventory)
    now = inventory_cache.live_instances(env, config)
    assert len(now) == 2
    cached = _write_cache(cache_dir, list(reversed(now)))  # order does not matter
    inventory_cache.prepare(env, cache_dir)
    assert cached.exists()

    aws_client("ec2", moto_url, region="eu-west-1").stop_instances(InstanceIds=[second])
    inventory_cache.prepare(env, cache_dir)
    assert not cached.exists() and cache_dir.is_dir()


def test_an_unreadable_cache_is_dropped(env, moto_url, tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    (cache_dir / "garbage").write_text("{not json")
    inventory_cache.prepare(env, cache_dir)
    assert list(cache_dir.iterdir()) == []


def test_other_inventories_are_not_cached(tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    (static / "hosts.yml").write_text("all: {hosts: {db1: {}}}\n")
    env = Environment(name="static", path=static, settings={})
    assert inventory_cache.prepare(env, tmp_path / "cache") == {}
    assert not (tmp_path / "cache").exists()


def test_when_ec2_cannot_be_asked_nothing_is_cached(tmp_path):
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "aws_ec2.yml").write_text(INVENTORY)
    env = Environment(name="down", path=inventory, settings={
        "aws": {"endpoint_url": "http://127.0.0.1:9",
                "env": {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}}})
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    (cache_dir / "old").write_text("[]")
    assert inventory_cache.prepare(env, cache_dir) == {}
    assert not cache_dir.exists()

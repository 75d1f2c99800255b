"""The lab resolver's zone cache: answers never wait for a slow control plane."""

from __future__ import annotations

import threading
import time

from drkit.lab.resolver import ZoneCache


class SlowRoute53:
    """Just enough of a Route53 client: one zone whose db record the test changes;
    listing its records takes as long as the test says (a busy moto)."""

    def __init__(self) -> None:
        self.address = "10.10.1.5"
        self.delay = 0.0
        self.calls = 0
        self.release = threading.Event()
        self.release.set()

    def get_paginator(self, name: str):
        client = self

        class Pages:
            def paginate(self, **_kwargs):
                if name == "list_hosted_zones":
                    return [{"HostedZones": [{"Id": "Z1", "Name": "lab.internal.",
                                              "Config": {"PrivateZone": True}}]}]
                client.calls += 1
                client.release.wait(10)
                return [{"ResourceRecordSets": [{"Name": "db.lab.internal.", "Type": "A",
                                                 "TTL": 5, "ResourceRecords": [
                                                     {"Value": client.address}]}]}]
        return Pages()


def _db(cache: ZoneCache) -> list[str]:
    return cache.zones()["lab.internal."].records["db.lab.internal."]["A"][1]


def test_a_slow_refresh_serves_the_last_copy_then_the_new_one():
    route53 = SlowRoute53()
    cache = ZoneCache(route53, max_age=0.05)
    assert _db(cache) == ["10.10.1.5"]

    route53.address = "10.20.1.4"
    route53.release.clear()  # the control plane is stuck
    time.sleep(0.1)
    # Served from the last copy: a query that waited for the stuck refresh would
    # get the new address only once it is released.
    assert _db(cache) == ["10.10.1.5"]
    assert _db(cache) == ["10.10.1.5"]
    assert route53.calls == 2  # one refresh in flight, not one per query

    route53.release.set()
    deadline = time.monotonic() + 5
    while _db(cache) != ["10.20.1.4"]:
        assert time.monotonic() < deadline, "the refresh never landed"
        time.sleep(0.02)

#!/usr/bin/env python3
"""Print JSON configuration files as JSON with every secret masked, on the host.

For configuration backups: the value under a secret-looking key (password,
secret, token, private_key, credential) never leaves the host; the backup says
where it was masked, and the secret itself is restored from Secrets Manager.
A file that is missing is reported as missing, not as an error.

    masked_config.py /srv/app/config.json [...]
    -> {"/srv/app/config.json": {...masked...}, "missing": [...]}
"""

from __future__ import annotations

import json
import re
import sys

SECRET_KEY = re.compile(r"(secret|password|passwd|token|private_key|credential)", re.I)
MASK = "<redacted>"


def masked(value):
    if isinstance(value, dict):
        return {k: MASK if SECRET_KEY.search(str(k)) and v not in (None, "") else masked(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def main(paths: list[str]) -> None:
    out: dict = {"files": {}, "missing": []}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                out["files"][path] = masked(json.load(handle))
        except FileNotFoundError:
            out["missing"].append(path)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])

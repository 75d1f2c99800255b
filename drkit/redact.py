"""Keep secrets out of output, journals, reports and artifacts.

Values known to be secret are registered once (from the environment's settings,
from secrets a step fetched); everything drkit writes or prints passes through
``redact`` first. Keys that look secret are masked wherever they appear.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "<redacted>"
_SECRET_KEY = re.compile(r"(secret|password|passwd|token|private_key|credential)", re.I)
_secrets: set[str] = set()


def register_secret(value: object) -> None:
    """Remember a secret value so it is masked wherever it would be written."""
    if isinstance(value, str) and len(value) >= 4:
        _secrets.add(value)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-looking keys and registered secrets masked."""
    if isinstance(value, dict):
        return {
            k: (MASK if isinstance(k, str) and is_secret_key(k) and v not in (None, "")
                else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        for secret in _secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    return value

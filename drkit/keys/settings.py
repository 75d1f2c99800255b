"""Validation of ``drkit.keys`` (which keys the estate has), dotted-path problems."""

from __future__ import annotations

from typing import Any

from drkit.keys.sources import NAME

_KEYS_KEYS = {"passphrase_secret", "items"}
_ITEM_KEYS = {"name", "secret", "file", "consumers", "rotation"}
#: How drkit rotates a key (RB-DR-005); a key without one is rotated by hand.
ROTATIONS = {"postgres": "secret", "ssh": "file"}


def problems(keys: Any) -> list[str]:
    """Every problem in ``drkit.keys``, each with its dotted path."""
    if not isinstance(keys, dict):
        return ["drkit.keys: expected a mapping with passphrase_secret and items"]
    found = [f"drkit.keys.{k}: unknown key; expected one of: {', '.join(sorted(_KEYS_KEYS))}"
             for k in keys if k not in _KEYS_KEYS]
    secret = keys.get("passphrase_secret")
    if not isinstance(secret, str) or "REGION" not in secret:
        found.append("drkit.keys.passphrase_secret: expected a Secrets Manager id with REGION "
                     "in it (each region keeps a copy), e.g. drkit/lab/REGION/keys-passphrase")
    items = keys.get("items")
    if not isinstance(items, list) or not items:
        return [*found, "drkit.keys.items: expected a non-empty list of "
                        "{name, secret | file, consumers}"]
    seen: set[str] = set()
    for i, item in enumerate(items):
        path = f"drkit.keys.items[{i}]"
        if not isinstance(item, dict):
            found.append(f"{path}: expected a mapping")
            continue
        found += [f"{path}.{k}: unknown key; expected one of: {', '.join(sorted(_ITEM_KEYS))}"
                  for k in item if k not in _ITEM_KEYS]
        name = item.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            found.append(f"{path}.name: {name!r} is not a key name (lowercase letters, "
                         "digits and -)")
        elif name in seen:
            found.append(f"{path}.name: {name} is listed twice")
        seen.add(str(name))
        if ("secret" in item) == ("file" in item):
            found.append(f"{path}: give exactly one of secret (a Secrets Manager id) or file")
        consumers = item.get("consumers", [])
        if not isinstance(consumers, list) or not all(isinstance(c, str) for c in consumers):
            found.append(f"{path}.consumers: expected a list of who uses the key")
        rotation = item.get("rotation")
        if rotation is not None and (rotation not in ROTATIONS
                                     or ROTATIONS[rotation] not in item):
            found.append(f"{path}.rotation: {rotation!r}: expected postgres (a database "
                         "credentials secret) or ssh (the key file Ansible uses)")
    return found

"""The encrypted key archive: AES-256-GCM under a fresh data key, the data key
wrapped twice, under a key derived with Argon2id from the passphrase and under
the recovery secret custodians hold in shares.

    <header JSON, one line>\\n<ciphertext>

The header is plain JSON (format, label, the names of the keys, the KDF and its
parameters, both wrapped copies of the data key) and is bound as associated data:
the payload is encrypted with the whole header line as AAD, and each wrapped copy
with the header minus the wrapped copies, so changing a byte anywhere (a KDF
parameter, a name, the ciphertext) makes decryption fail rather than give
different keys. Every primitive is the `cryptography` package's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

FORMAT = 1
# RFC 9106's second recommended option (64 MiB, 3 passes, 4 lanes): ~0.45 s here.
KDF_DEFAULTS = {"name": "argon2id", "iterations": 3, "memory_kib": 65536, "lanes": 4}


class ArchiveError(Exception):
    """The archive cannot be opened with what was given; the message says why."""


@dataclass(frozen=True)
class Sealed:
    """A sealed archive and the recovery secret that also opens it."""

    data: bytes
    header: dict[str, Any]
    recovery_secret: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def derive(passphrase: str, kdf: dict[str, Any]) -> bytes:
    """The 32-byte key-encryption key for ``passphrase`` under the header's KDF."""
    if kdf.get("name") != "argon2id":
        raise ArchiveError(f"unknown key derivation {kdf.get('name')!r} (expected argon2id)")
    return Argon2id(salt=_unb64(kdf["salt"]), length=32, iterations=int(kdf["iterations"]),
                    lanes=int(kdf["lanes"]), memory_cost=int(kdf["memory_kib"])).derive(
        passphrase.encode())


def seal(keys: dict[str, bytes], *, passphrase: str, about: dict[str, Any],
         kdf: dict[str, Any] | None = None) -> Sealed:
    """Encrypt ``keys`` ({name: value}). ``about`` (label, created, ...) goes in the
    header in the clear: never put a secret in it."""
    data_key, recovery = AESGCM.generate_key(256), os.urandom(32)
    core = {"format": FORMAT, **about, "keys": sorted(keys), "cipher": "AES-256-GCM",
            "kdf": {**KDF_DEFAULTS, **(kdf or {}), "salt": _b64(os.urandom(16))}}
    core_aad = _canonical(core)
    wrapped = {}
    for name, kek in (("passphrase", derive(passphrase, core["kdf"])), ("recovery", recovery)):
        nonce = os.urandom(12)
        wrapped[name] = {"nonce": _b64(nonce),
                         "key": _b64(AESGCM(kek).encrypt(nonce, data_key, core_aad))}
    header = {**core, "wrapped": wrapped, "nonce": _b64(os.urandom(12))}
    line = _canonical(header)
    plaintext = _canonical({"keys": {name: _b64(value) for name, value in keys.items()},
                            "sha256": {name: hashlib.sha256(value).hexdigest()
                                       for name, value in keys.items()}})
    body = AESGCM(data_key).encrypt(_unb64(header["nonce"]), plaintext, line)
    return Sealed(line + b"\n" + body, header, recovery)


def read_header(data: bytes) -> dict[str, Any]:
    """The archive's header, or ArchiveError when it is not one of ours."""
    line, sep, _ = data.partition(b"\n")
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    if not sep or not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ArchiveError("not a drkit key archive (no format-1 header line)")
    return header


def open_archive(data: bytes, *, passphrase: str | None = None,
                 recovery_secret: bytes | None = None) -> dict[str, bytes]:
    """The keys in the archive, opened with the passphrase or the recovery secret and
    each checked against the SHA-256 the archive's (encrypted) manifest recorded.
    Nothing is written anywhere; a wrong secret or a changed byte is an ArchiveError."""
    header = read_header(data)
    line, _, body = data.partition(b"\n")
    core = {k: v for k, v in header.items() if k not in ("wrapped", "nonce")}
    if passphrase is not None:
        kek, how, what = derive(passphrase, header["kdf"]), "passphrase", "the passphrase is wrong"
    elif recovery_secret is not None:
        kek, how, what = recovery_secret, "recovery", "the shares do not open this archive"
    else:
        raise ArchiveError("give the passphrase or the custodians' shares")
    wrapped = header["wrapped"][how]
    try:
        data_key = AESGCM(kek).decrypt(_unb64(wrapped["nonce"]), _unb64(wrapped["key"]),
                                       _canonical(core))
    except InvalidTag:
        raise ArchiveError(f"{what}, or the archive's header was altered") from None
    try:
        plaintext = AESGCM(data_key).decrypt(_unb64(header["nonce"]), body, line)
    except InvalidTag:
        raise ArchiveError("the archive was altered: its ciphertext or header fails "
                           "authentication") from None
    inner = json.loads(plaintext)
    keys = {name: _unb64(value) for name, value in inner["keys"].items()}
    wrong = [name for name, value in keys.items()
             if hashlib.sha256(value).hexdigest() != inner["sha256"].get(name)]
    if wrong or sorted(keys) != header["keys"]:
        raise ArchiveError(f"the archive's keys do not match its manifest: "
                           f"{', '.join(wrong) or 'the names differ'}")
    return keys

"""The recovery secret split among custodians with Shamir's scheme: SLIP-39
(`shamir-mnemonic`, SatoshiLabs' reference implementation), one group, any
``threshold`` of ``count`` shares. Each share is 33 words with its own checksum
and the backup's identifier, so a mistyped word or a share from another backup is
named, and fewer than ``threshold`` shares reveal nothing and are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shamir_mnemonic import MnemonicError, combine_mnemonics, generate_mnemonics
from shamir_mnemonic.share import Share


class SharesError(Exception):
    """The shares given cannot recover the secret; the message says why and what to do."""


@dataclass(frozen=True)
class ShareFile:
    """One custodian's share, as written for them."""

    index: int  # 1-based
    count: int
    threshold: int
    label: str
    identifier: int
    words: str

    def text(self) -> str:
        return (f"drkit key backup: share {self.index} of {self.count} "
                f"(any {self.threshold} open the backup)\n"
                f"backup: {self.label}\nidentifier: {self.identifier}\n"
                f"words: {self.words}\n")


def split(secret: bytes, *, count: int, threshold: int, label: str) -> list[ShareFile]:
    """``count`` shares of ``secret``, any ``threshold`` of which recover it."""
    if not 2 <= threshold <= count <= 16:
        raise SharesError(f"--threshold {threshold} of --shares {count}: need "
                          "2 <= threshold <= shares <= 16")
    words = generate_mnemonics(1, [(threshold, count)], secret, extendable=False)[0]
    ident = Share.from_mnemonic(words[0]).identifier
    return [ShareFile(i, count, threshold, label, ident, w) for i, w in enumerate(words, 1)]


def read(path: Path) -> tuple[str, str]:
    """(where, words) from a share file: its ``words:`` line, else the whole text."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SharesError(f"share file {path}: {exc.strerror}") from None
    lines = [line.split(":", 1)[1] for line in text.splitlines() if line.startswith("words:")]
    return str(path), " ".join((lines[0] if lines else text).split())


def combine(shares: list[tuple[str, str]], *, identifier: int, threshold: int,
            label: str) -> bytes:
    """The secret from ``shares`` ([(where, words)]), refusing with a clear message:
    too few, the same share twice, a damaged share, a share of another backup."""
    parsed: dict[int, str] = {}
    distinct: list[str] = []
    for where, words in shares:
        try:
            share = Share.from_mnemonic(words)
        except MnemonicError as exc:
            raise SharesError(f"{where}: not a valid share ({exc}); compare it word by word "
                              "with the custodian's copy") from None
        if share.identifier != identifier:
            raise SharesError(f"{where} is a share of another key backup (identifier "
                              f"{share.identifier}; {label}'s is {identifier})")
        if share.index in parsed:
            raise SharesError(f"{where} is the same share as {parsed[share.index]}; "
                              "each custodian's share counts once")
        parsed[share.index] = where
        distinct.append(words)
    if len(parsed) < threshold:
        raise SharesError(f"{len(parsed)} share(s) given; {label} needs {threshold} "
                          "different custodians' shares (fewer reveal nothing)")
    try:
        return combine_mnemonics(distinct[:threshold])  # SLIP-39 takes exactly threshold
    except MnemonicError as exc:
        raise SharesError(f"the shares do not combine: {exc}") from None

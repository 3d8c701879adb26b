"""A blocklist of samples to take out of the release (as Re-LAION removed listed samples).

One entry per line: an image URL (http:// or https://) or the SHA-256 of an image (64 hex
digits). Blank lines and lines starting with '#' are ignored, as is anything after ' #'. Any
other line is an error naming the file and the line: a typo must never leave a sample listed
for removal in the release.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
URL = re.compile(r"^https?://\S+$")


class BlocklistError(ValueError):
    """A malformed blocklist line; the message names the file and the line."""


@dataclass(frozen=True)
class Blocklist:
    urls: frozenset[str] = field(default_factory=frozenset)
    sha256s: frozenset[str] = field(default_factory=frozenset)  # lower case

    def __len__(self) -> int:
        return len(self.urls) + len(self.sha256s)

    def reason(self, url: str | None, *hashes: str | None) -> str | None:
        """'url' or 'sha256' when the sample is listed (by its URL or any of its image hashes), else None."""
        if url is not None and url in self.urls:
            return "url"
        if any(h is not None and h.lower() in self.sha256s for h in hashes):
            return "sha256"
        return None


def read_blocklist(path: str | Path | None) -> Blocklist:
    """The blocklist in `path`; an empty one when no path is set."""
    if not path:
        return Blocklist()
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"blocklist {path} is a directory, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"blocklist {path} does not exist")
    urls, hashes = set(), set()
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            lines = f.read().splitlines()
        except UnicodeDecodeError as exc:
            raise BlocklistError(f"{path}: not UTF-8 text ({exc})") from None
    for number, line in enumerate(lines, 1):
        entry = line.split(" #", 1)[0].strip()
        if not entry or entry.startswith("#"):
            continue
        if SHA256.match(entry):
            hashes.add(entry.lower())
        elif URL.match(entry):
            urls.add(entry)
        else:
            raise BlocklistError(
                f"{path}, line {number}: {line[:120]!r} is neither an http(s) URL nor a SHA-256 (64 hex digits)"
            )
    return Blocklist(frozenset(urls), frozenset(hashes))

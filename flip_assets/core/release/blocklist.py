"""A blocklist of samples to take out of the release (as Re-LAION removed listed samples).

One entry per line: an image URL (http:// or https://) or the SHA-256 of an image (64 hex
digits). Blank lines and lines starting with '#' are ignored, as is anything after ' #'. Any
other line is an error naming the file and the line: a typo must never leave a sample listed
for removal in the release.

A URL entry removes every sample whose URL names the same resource (canonical_url): a takedown
request copied as `https://Example.org/a.jpg` must remove the crawled `http://example.org/a.jpg`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
URL = re.compile(r"^https?://\S+$", re.IGNORECASE)

DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# A percent-escape, or a character that is neither unreserved nor reserved (RFC 3986 2.2) and so
# must be escaped: a space, non-ASCII, a lone '%'.
_ESCAPE_OR_UNSAFE = re.compile(r"%([0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]")


def _escape(match: re.Match) -> str:
    if match.group(1):
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else f"%{ord(char):02X}"
    return "".join(f"%{byte:02X}" for byte in match.group(0).encode("utf-8", "surrogatepass"))


def _host(host: str) -> str:
    """Lower case (urlsplit did it), no trailing dot, internationalised names in IDNA (punycode)."""
    host = host.rstrip(".")
    if ":" in host:  # an IPv6 address
        return f"[{host}]"
    if not host.isascii():
        try:
            return host.encode("idna").decode("ascii")
        except UnicodeError:  # not a valid IDNA name: compared as written (lower case)
            pass
    return host


def canonical_url(url: str) -> str:
    """The form under which two http(s) URLs naming the same resource are equal: the scheme
    dropped (http and https are one), the host in lower case and IDNA without a trailing dot,
    the scheme's default port dropped, percent-escapes normalised (unreserved characters
    decoded, others in upper-case hex, spaces and non-ASCII escaped as UTF-8), an empty path
    as '/', a trailing '/' dropped from any other path, the fragment dropped. Path case, the
    query (order, '+') and escaped reserved characters ('%2F' is not '/') are kept.

    Anything else than an http(s) URL (a Flickr8k file name) is returned as it is. ValueError
    for an http(s) URL that cannot be parsed (a port that is not a number in range, no host)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in DEFAULT_PORTS:
        return url
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    port = parts.port  # ValueError when it is not a number in 0..65535
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + _host(parts.hostname)
    if port is not None and port != DEFAULT_PORTS[parts.scheme.lower()]:
        netloc += f":{port}"
    path = _ESCAPE_OR_UNSAFE.sub(_escape, parts.path)
    path = path.rstrip("/") or "/"
    query = _ESCAPE_OR_UNSAFE.sub(_escape, parts.query)
    return f"//{netloc}{path}" + (f"?{query}" if query else "")


def _sample_url_key(url: str) -> str:
    """A sample's URL as the blocklist compares it; one that cannot be parsed as written."""
    try:
        return canonical_url(url)
    except ValueError:
        return url


class BlocklistError(ValueError):
    """A malformed blocklist line; the message names the file and the line."""


@dataclass(frozen=True)
class Blocklist:
    # canonical_url -> the entry as written in the file (the first, when several are one URL)
    urls: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    sha256s: frozenset[str] = field(default_factory=frozenset)  # lower case

    def __len__(self) -> int:
        return len(self.urls) + len(self.sha256s)

    def _url_entry(self, url: str | None) -> str | None:
        return None if url is None else self.urls.get(_sample_url_key(url))

    def _hash_entries(self, hashes: Iterable[str | None]) -> list[str]:
        return sorted({h.lower() for h in hashes if h is not None and h.lower() in self.sha256s})

    def matches(self, url: str | None, *hashes: str | None) -> list[str]:
        """The entries (URLs as written, hashes in lower case) that list the sample with this
        URL and these image hashes."""
        entry = self._url_entry(url)
        return ([entry] if entry is not None else []) + self._hash_entries(hashes)

    def reason(self, url: str | None, *hashes: str | None) -> str | None:
        """'url' or 'sha256' when the sample is listed (by its URL or any of its image hashes), else None."""
        if self._url_entry(url) is not None:
            return "url"
        return "sha256" if self._hash_entries(hashes) else None

    def hosts(self) -> list[str]:
        """The hosts of the URL entries, lower case, in IDNA and as Unicode: a cheap filter
        (sql/blocklist_candidates.sql) for the samples whose URL may match one."""
        hosts = set()
        for key in self.urls:
            host = urlsplit(key).hostname or ""
            hosts.add(f"[{host}]" if ":" in host else host)
            try:
                hosts.add(host.encode("ascii").decode("idna"))
            except UnicodeError:
                pass
        return sorted(hosts)

    def matched(self, samples: Iterable[tuple[str | None, ...]]) -> set[str]:
        """The entries that list one of `samples` ((url, *image hashes) each)."""
        return {entry for url, *hashes in samples for entry in self.matches(url, *hashes)}

    def unmatched(self, samples: Iterable[tuple[str | None, ...]]) -> list[str]:
        """The entries that list none of `samples`, in file order for URLs, then hashes sorted."""
        matched = self.matched(samples)
        return [e for e in self.urls.values() if e not in matched] + sorted(self.sha256s - matched)


def read_blocklist(path: str | Path | None) -> Blocklist:
    """The blocklist in `path`; an empty one when no path is set."""
    if not path:
        return Blocklist()
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"blocklist {path} is a directory, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"blocklist {path} does not exist")
    urls, hashes = {}, set()
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
            continue
        problem = "is neither an http(s) URL nor a SHA-256 (64 hex digits)"
        if URL.match(entry):
            try:
                urls.setdefault(canonical_url(entry), entry)
                continue
            except ValueError as exc:
                problem = f"is not a usable URL ({exc})"
        raise BlocklistError(f"{path}, line {number}: {line[:120]!r} {problem}")
    return Blocklist(MappingProxyType(urls), frozenset(hashes))

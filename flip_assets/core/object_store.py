"""FLIP_HOME on an object store (s3://bucket/prefix; gs:// through the same pyarrow filesystem
layer): stages keep reading and writing local files, in a working copy of the store under a
local cache folder, and this module keeps that copy in step with the store.

- `pull` brings one object (or `pull_tree` a folder) into the working copy when the store's
  ETag differs from the one last fetched, and removes the local copy of an object the store no
  longer has (a withdrawn publication), so readers never go on with a stale file.
- `push` is the commit: the file is uploaded under a temp key in the folder's .staging/, then
  copied server-side (CopyObject) to its final key. S3 makes an object visible only once its
  upload or copy is complete, so a reader sees the old object or the whole new one, never a
  partial one; a writer that dies mid-upload leaves at most an invisible multipart upload or a
  temp key under .staging/, which no reader lists.

Credentials come only from the standard environment of the AWS SDK (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION, or an instance role): they never pass through here.
"""

from __future__ import annotations

import fnmatch
import os
import re
import secrets
from pathlib import Path

from flip_assets.core import storage

URL = re.compile(r"^([a-z][a-z0-9+.-]*)://(.+)$")
# Connection faults fail a run in seconds, not after the SDK's minutes of retries.
CONNECT_TIMEOUT_S, REQUEST_TIMEOUT_S, MAX_ATTEMPTS = 3, 60, 3
ETAGS_DIR = ".etags"
CHUNK = 1 << 20


def is_url(home: str) -> bool:
    return bool(URL.match(home))


class ObjectStoreError(OSError):
    """The object store behind FLIP_HOME could not be reached or refused a request."""


class ObjectHome:
    """FLIP_HOME at `url`, with its working copy under `cache`; `endpoint` overrides the S3
    endpoint (an S3-compatible server such as MinIO, Ceph, or moto in the tests)."""

    def __init__(self, url: str, cache: str | Path, endpoint: str = ""):
        match = URL.match(url)
        if not match:
            raise ValueError(f"FLIP_HOME={url!r} is not an object-store URL (s3://bucket/prefix)")
        self.url, self.scheme, self.endpoint = url.rstrip("/"), match[1], endpoint
        self.root = match[2].strip("/")  # bucket/prefix, as the filesystem names it
        self.local = Path(cache) / self.scheme / self.root
        self._fs = None

    def where(self) -> str:
        return f"FLIP_HOME={self.url}" + (f" (endpoint {self.endpoint})" if self.endpoint else "")

    @property
    def fs(self):
        if self._fs is None:
            from pyarrow import fs as pafs

            if self.scheme == "s3":
                self._fs = pafs.S3FileSystem(
                    endpoint_override=self.endpoint or None,
                    connect_timeout=CONNECT_TIMEOUT_S,
                    request_timeout=REQUEST_TIMEOUT_S,
                    retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=MAX_ATTEMPTS),
                )
            else:
                self._fs = pafs.FileSystem.from_uri(self.url)[0]
        return self._fs

    def _call(self, what: str, call, *args):
        try:
            return call(*args)
        except FileNotFoundError:
            raise
        except OSError as error:
            raise ObjectStoreError(f"{self.where()}: {what} failed: {error}") from error

    def key(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def check(self) -> None:
        """Fail fast when the store cannot be reached or its bucket does not exist."""
        from pyarrow import fs as pafs

        bucket = self.root.split("/", 1)[0]
        if self._call("reaching the bucket", self.fs.get_file_info, bucket).type == pafs.FileType.NotFound:
            raise ObjectStoreError(f"{self.where()}: bucket {bucket!r} does not exist")

    def _etag_file(self, rel: str) -> Path:
        return self.local / ETAGS_DIR / rel

    def _fetched_etag(self, rel: str) -> str | None:
        path = self._etag_file(rel)
        return path.read_text() if path.is_file() and (self.local / rel).is_file() else None

    def _record_etag(self, rel: str, etag: str) -> None:
        storage.atomic_write_bytes(self._etag_file(rel), lambda tmp: tmp.write_text(etag))

    def _forget(self, rel: str) -> None:
        (self.local / rel).unlink(missing_ok=True)
        self._etag_file(rel).unlink(missing_ok=True)

    def pull(self, rel: str) -> Path:
        """The working copy of object `rel`, brought in step with the store (absent if the store
        has no such object)."""
        local = self.local / rel
        try:
            source = self._call(f"reading {rel}", self.fs.open_input_file, self.key(rel))
        except FileNotFoundError:
            self._forget(rel)
            return local
        with source:
            etag = source.metadata().get("ETag", b"").decode()
            if etag and etag == self._fetched_etag(rel):
                return local

            def download(tmp: Path) -> None:
                with open(tmp, "wb") as out:
                    while block := self._call(f"reading {rel}", source.read, CHUNK):
                        out.write(block)

            storage.atomic_write_bytes(local, download)
        self._record_etag(rel, etag)
        return local

    def pull_tree(self, rel_dir: str, pattern: str = "*", recursive: bool = True) -> Path:
        """The working copy of folder `rel_dir` (its files matching `pattern`), in step with the
        store; in-progress files (.staging/, temp files) are neither fetched nor removed."""
        from pyarrow import fs as pafs

        selector = pafs.FileSelector(self.key(rel_dir), recursive=recursive, allow_not_found=True)
        infos = self._call(f"listing {rel_dir}", self.fs.get_file_info, selector)
        prefix = len(self.root) + 1
        remote = {
            info.path[prefix:] for info in infos
            if info.type == pafs.FileType.File and _visible(info.path[prefix:]) and fnmatch.fnmatch(info.base_name, pattern)
        }  # fmt: skip
        folder = self.local / rel_dir
        if folder.is_dir():
            for path in folder.rglob(pattern) if recursive else folder.glob(pattern):
                rel = path.relative_to(self.local).as_posix()
                if path.is_file() and _visible(rel) and rel not in remote:
                    self._forget(rel)
        for rel in sorted(remote):
            self.pull(rel)
        return folder

    def push(self, local: Path, rel: str) -> None:
        """Commit a local file as object `rel`: upload under a temp key, then copy server-side to
        the final key, so no reader ever sees a partial object."""
        name = rel.rsplit("/", 1)[-1]
        folder = rel[: -len(name)]
        tmp = self.key(f"{folder}{storage.STAGING_DIR}/.{name}.{storage.HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp")

        def upload() -> None:
            with open(local, "rb") as source, self.fs.open_output_stream(tmp) as out:
                while block := source.read(CHUNK):
                    out.write(block)

        try:
            self._call(f"uploading {rel}", upload)
            self._call(f"committing {rel}", self.fs.copy_file, tmp, self.key(rel))
        finally:
            try:
                self._call(f"removing the temp object of {rel}", self.fs.delete_file, tmp)
            except (FileNotFoundError, ObjectStoreError):
                pass  # never visible to readers; a failed commit's own error is what matters
        with self._call(f"reading {rel}", self.fs.open_input_file, self.key(rel)) as committed:
            etag = committed.metadata().get("ETag", b"").decode()
        # The caller puts the same bytes at the working copy's `rel` (storage.publish).
        self._record_etag(rel, etag)

    def delete(self, rel: str) -> None:
        try:
            self._call(f"removing {rel}", self.fs.delete_file, self.key(rel))
        except FileNotFoundError:
            pass
        self._forget(rel)


def _visible(rel: str) -> bool:
    """Whether a path is a published file: not in-progress (.staging/, .tmp) nor bookkeeping."""
    parts = rel.split("/")
    return not any(part.startswith(".") for part in parts)


def is_published_side_file(rel: str) -> bool:
    """Whether a file in an unpartitioned asset's folder is committed with its Parquet file:
    models and figures are, refused outputs (rejected/) and in-progress files are not."""
    return _visible(rel) and storage.REJECTED_DIR not in rel.split("/")[1:-1]

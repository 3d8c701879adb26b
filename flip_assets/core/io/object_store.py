"""FLIP_HOME on an S3 object store (s3://bucket/prefix, AWS or an S3-compatible server): stages
keep reading and writing local files, in a working copy of the store under a local cache folder,
and this module keeps that copy in step with the store.

- Reads are pinned: an object is read in ranges, each sent with If-Match on the ETag the read
  started from; when another machine commits a new object meanwhile (412), the read starts over
  (RESTARTS times at most, then fails), so a working copy never holds parts of two objects. A
  local copy of an object the store no longer has (a withdrawn publication) is removed.
- `push` commits one file (a partition's Parquet file, a shared file): uploaded under a temp key
  in the folder's .staging/, then copied server-side (CopyObject) to its final key. S3 makes an
  object visible only once its upload or copy is complete: a reader sees the old object or the
  whole new one.
- `commit_version` commits the files of an unpartitioned asset's folder together (the table and
  its model folder, config.json, word2vec.model, figures): each is uploaded under
  <asset>/.versions/<version>/, then one small manifest, <asset>/.manifest.json, naming the
  version's files and their ETags, is put (one PutObject: visible whole or not at all). Readers
  resolve the manifest first and fetch exactly its files, so a kill at any step leaves the old
  whole version or the new one. A folder without a manifest (written before versions, or
  withdrawn) is read from its plain keys; files not named by the manifest (a training's resume
  state, refusals under rejected/) stay plain keys.
- Every store operation (reading, writing, listing or deleting one object or folder, retries
  included) ends within `timeout_s` (FLIP_STORE_TIMEOUT_S), plus a second per MIN_RATE bytes of
  its object, or fails naming FLIP_HOME and the endpoint.

Credentials come only from the standard environment of the AWS SDK (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION, or an instance role): they never pass through here.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import math
import os
import re
import secrets
import threading
import time
from pathlib import Path

from flip_assets.core.io import storage

URL = re.compile(r"^([a-z][a-z0-9+.-]*)://(.+)$")
TIMEOUT_SETTING, DEFAULT_TIMEOUT_S = "FLIP_STORE_TIMEOUT_S", 10.0
# A transfer may take one more second per this many bytes (a 400 MiB model: 100 s more).
MIN_RATE = 4 << 20
CONNECT_TIMEOUT_S = 3
# botocore waits up to this long for a "100 Continue" before it sends a file body.
EXPECT_CONTINUE_WAIT_S = 1.0
ETAGS_DIR = ".etags"
CHUNK = 8 << 20
MANIFEST, VERSIONS_DIR = ".manifest.json", ".versions"
# How often a read starts over because a writer replaced what it was reading.
RESTARTS = 4
# A version neither published nor the previous one is deleted once its files are this old: a
# younger one may be a concurrent writer's upload, not committed yet.
STALE_VERSION_S = storage.UNJUDGED_TMP_MAX_AGE_S


def is_url(home: str) -> bool:
    return bool(URL.match(home))


class ObjectStoreError(OSError):
    """The object store behind FLIP_HOME could not be reached or refused a request."""


class _Changed(Exception):
    """What a read started from was replaced or removed meanwhile: start over."""


class ObjectHome:
    """FLIP_HOME at `url`, with its working copy under `cache`; `endpoint` overrides the S3
    endpoint (an S3-compatible server such as MinIO, Ceph, or moto in the tests)."""

    def __init__(self, url: str, cache: str | Path, endpoint: str = "", timeout_s: float = DEFAULT_TIMEOUT_S):
        match = URL.match(url)
        if not match:
            raise ValueError(f"FLIP_HOME={url!r} is not an object-store URL (s3://bucket/prefix)")
        if match[1] != "s3":
            raise ValueError(
                f"FLIP_HOME={url!r}: only s3:// stores are supported (for Google Cloud Storage, its S3-compatible "
                "API: FLIP_HOME=s3://bucket/prefix, FLIP_S3_ENDPOINT=https://storage.googleapis.com, HMAC keys)"
            )
        self.url, self.scheme, self.endpoint, self.timeout_s = url.rstrip("/"), match[1], endpoint, timeout_s
        root = match[2].strip("/")
        self.bucket, _, self.prefix = root.partition("/")
        self.local = Path(cache) / self.scheme / root
        self._clients: dict[float, object] = {}

    def where(self) -> str:
        return f"FLIP_HOME={self.url}" + (f" (endpoint {self.endpoint})" if self.endpoint else "")

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    # --- requests, each bounded in time -------------------------------------------------------

    def _client(self, timeout_s: float):
        """An S3 client whose requests give up after `timeout_s` (rounded up to half seconds)
        without an answer; the SDK's own retries are off: `_attempts` retries within the
        operation's time."""
        seconds = max(1, math.ceil(timeout_s * 2)) / 2
        if seconds not in self._clients:
            from botocore.config import Config

            config = Config(connect_timeout=min(CONNECT_TIMEOUT_S, seconds), read_timeout=seconds, retries={"total_max_attempts": 1})
            with _SESSION_LOCK:  # a session makes one client at a time
                self._clients[seconds] = _session().client("s3", endpoint_url=self.endpoint or None, config=config)
        return self._clients[seconds]

    def _deadline(self, size: int = 0) -> float:
        return time.monotonic() + self.timeout_s + size / MIN_RATE

    def _op(self, what: str, request, size: int = 0, waits_s: float = 0.0):
        """request(client), as one store operation: within FLIP_STORE_TIMEOUT_S (and its size's share)."""
        return self._attempts(what, request, self._deadline(size), waits_s)

    def _attempts(self, what: str, request, deadline: float, waits_s: float = 0.0):
        """request(client), retried on faults that pass (no answer, a refused connection, a 5xx)
        until `deadline`; each attempt's timeout is the time left (less `waits_s` the request
        spends waiting otherwise). A missing object raises FileNotFoundError, a failed If-Match
        _Changed, any other refusal ObjectStoreError."""
        from botocore.exceptions import BotoCoreError, ClientError

        pause = 0.1
        while True:
            try:
                return request(self._client(min(self.timeout_s, deadline - time.monotonic()) - waits_s))
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code in ("404", "NoSuchKey", "NotFound"):
                    raise FileNotFoundError(f"{self.where()}: {what}: no such object") from error
                if status == 412 or code == "PreconditionFailed":
                    raise _Changed(what) from error
                if status < 500 and code not in ("SlowDown", "RequestTimeout"):
                    raise ObjectStoreError(f"{self.where()}: {what} failed: {error}") from error
                failure: Exception = error
            except BotoCoreError as error:  # no answer in time, refused or dropped connection
                failure = error
            if deadline - time.monotonic() <= pause:
                raise ObjectStoreError(
                    f"{self.where()}: {what} failed within {TIMEOUT_SETTING}={self.timeout_s:g} s: {failure}"
                ) from failure
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    def check(self) -> None:
        """Fail fast when the store cannot be reached or its bucket does not exist."""
        try:
            self._op("reaching the bucket", lambda c: c.head_bucket(Bucket=self.bucket))
        except FileNotFoundError:
            raise ObjectStoreError(f"{self.where()}: bucket {self.bucket!r} does not exist") from None

    # --- the working copy ---------------------------------------------------------------------

    def _etag_file(self, rel: str) -> Path:
        return self.local / ETAGS_DIR / rel

    def _fetched_etag(self, rel: str) -> str | None:
        """The ETag of the object the working copy's `rel` holds, unless the file was changed
        locally since (a writer's new file in its own working copy is not what the store has)."""
        record, local = self._etag_file(rel), self.local / rel
        if not (record.is_file() and local.is_file()):
            return None
        etag, _, stamp = record.read_text().partition("\n")
        return etag if stamp == _stamp(local) else None

    def _record_etag(self, rel: str, etag: str, local: Path | None = None) -> None:
        """Record that the working copy's `rel` (or `local`, a file about to be moved there)
        holds the object with this ETag."""
        stamp = _stamp(local or self.local / rel)
        storage.atomic_write_bytes(self._etag_file(rel), lambda tmp: tmp.write_text(f"{etag}\n{stamp}"))

    def _forget(self, rel: str) -> None:
        (self.local / rel).unlink(missing_ok=True)
        self._etag_file(rel).unlink(missing_ok=True)

    # --- reading ------------------------------------------------------------------------------

    def published(self, asset: str) -> dict | None:
        """The manifest of the version an asset's folder publishes, None for plain keys only."""
        what = f"reading {asset}/{MANIFEST}"
        try:
            body = self._op(what, lambda c: c.get_object(Bucket=self.bucket, Key=self.key(f"{asset}/{MANIFEST}"))["Body"].read())
        except FileNotFoundError:
            return None
        return json.loads(body)

    def _source(self, rel: str, manifest: dict | None) -> tuple[str, str | None, int | None]:
        """The key holding published file `rel`, with its ETag and size when the manifest names them."""
        asset, _, name = rel.partition("/")
        entry = (manifest or {}).get("files", {}).get(name)
        if entry is None:
            return self.key(rel), None, None
        return self.key(f"{asset}/{VERSIONS_DIR}/{manifest['version']}/{name}"), entry["etag"], entry["size"]

    def _fetch(self, rel: str, key: str, etag: str | None, size: int | None) -> None:
        """Bring the working copy's `rel` to object `key` (ETag `etag`, looked up when None):
        every ranged read pinned to that ETag. FileNotFoundError: no such object; _Changed: it
        was replaced or removed during the read."""
        if etag is None:
            head = self._op(f"reading {rel}", lambda c: c.head_object(Bucket=self.bucket, Key=key))
            etag, size = head["ETag"], head["ContentLength"]
        if etag == self._fetched_etag(rel):
            return
        deadline = self._deadline(size)

        def download(tmp: Path) -> None:
            with open(tmp, "wb") as out:
                for start in range(0, size, CHUNK):
                    span = f"bytes={start}-{min(start + CHUNK, size) - 1}"
                    get = lambda c, span=span: c.get_object(Bucket=self.bucket, Key=key, IfMatch=etag, Range=span)["Body"].read()  # noqa: E731
                    try:
                        out.write(self._attempts(f"reading {rel}", get, deadline))
                    except FileNotFoundError:
                        raise _Changed(rel) from None

        storage.atomic_write_bytes(self.local / rel, download)
        self._record_etag(rel, etag)

    def _restarting(self, what: str, read, forget: list[str]):
        """read(), started over while what it read changed meanwhile; then the working copy's
        `forget` files are removed (no stale or torn copy is left) and it fails."""
        for _ in range(RESTARTS):
            try:
                return read()
            except _Changed:
                continue
        for rel in forget:
            self._forget(rel)
        raise ObjectStoreError(f"{self.where()}: {what} changed while reading it, {RESTARTS} times in a row")

    def pull(self, *rels: str) -> None:
        """Bring published files of one asset (its table, its refusal note) into the working copy,
        from the version its manifest names; a file the store does not have is removed."""
        asset = rels[0].split("/", 1)[0]

        def read() -> None:
            manifest = self.published(asset)
            for rel in rels:
                try:
                    self._fetch(rel, *self._source(rel, manifest))
                except FileNotFoundError:
                    if manifest is not None and self._source(rel, manifest)[1] is not None:
                        raise _Changed(rel) from None  # the version was deleted: a newer one is published
                    self._forget(rel)

        self._restarting(", ".join(rels), read, list(rels))

    def pull_tree(self, rel_dir: str, pattern: str = "*", recursive: bool = True) -> Path:
        """The working copy of folder `rel_dir` (its files matching `pattern`), in step with the
        store: one whole version of the asset's files plus its plain keys; in-progress files
        (.staging/, temp files, versions not published) are neither fetched nor removed."""
        asset = rel_dir.split("/", 1)[0]
        folder = self.local / rel_dir

        def read() -> None:
            manifest = self.published(asset)
            remote = self._listing(rel_dir, pattern, recursive)
            for name in (manifest or {}).get("files", {}):
                if _in_folder(rel := f"{asset}/{name}", rel_dir, pattern, recursive):
                    remote[rel] = self._source(rel, manifest)
            if folder.is_dir():
                for path in folder.rglob(pattern) if recursive else folder.glob(pattern):
                    rel = path.relative_to(self.local).as_posix()
                    if path.is_file() and _visible(rel) and rel not in remote:
                        self._forget(rel)
            for rel, source in sorted(remote.items()):
                try:
                    self._fetch(rel, *source)
                except FileNotFoundError:
                    raise _Changed(rel) from None  # removed since the listing

        self._restarting(rel_dir, read, [])
        return folder

    def hidden_files(self, rel_dir: str, pattern: str = "*") -> list[str]:
        """The objects of a bookkeeping folder (such as <asset>/.commits) that readers never
        fetch as published files."""
        return sorted(self._listing(rel_dir, pattern, recursive=False, hidden=True))

    def _listing(self, rel_dir: str, pattern: str, recursive: bool, hidden: bool = False) -> dict[str, tuple[str, str, int]]:
        """The plain keys published in a folder (with `hidden`, all of them): {rel: (key, ETag, size)}."""
        found, token = {}, None
        prefix = self.key(rel_dir).rstrip("/") + "/"
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = self._op(f"listing {rel_dir}", lambda c: c.list_objects_v2(Bucket=self.bucket, Prefix=prefix, **extra))
            for item in page.get("Contents", []):
                rel = f"{rel_dir.rstrip('/')}/{item['Key'][len(prefix):]}"
                # A key ending in "/" is a folder marker (some tools write them), not a file.
                if not rel.endswith("/") and (hidden or _visible(rel)) and _in_folder(rel, rel_dir, pattern, recursive):
                    found[rel] = (item["Key"], item["ETag"], item["Size"])
            if not page.get("IsTruncated"):
                return found
            token = page["NextContinuationToken"]

    # --- writing ------------------------------------------------------------------------------

    def _put(self, client, key: str, local: Path) -> str:
        with open(local, "rb") as body:
            return client.put_object(Bucket=self.bucket, Key=key, Body=body)["ETag"]

    def push(self, local: Path, rel: str) -> None:
        """Commit a local file as object `rel`: upload under a temp key, then copy server-side to
        the final key, so no reader ever sees a partial object; one store operation."""
        name = rel.rsplit("/", 1)[-1]
        folder = rel[: -len(name)]
        tmp = self.key(f"{folder}{storage.STAGING_DIR}/.{name}.{storage.HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        deadline = self._deadline(2 * local.stat().st_size)
        copy = {"Bucket": self.bucket, "Key": self.key(rel), "CopySource": {"Bucket": self.bucket, "Key": tmp}}
        try:
            self._attempts(f"uploading {rel}", lambda c: self._put(c, tmp, local), deadline, EXPECT_CONTINUE_WAIT_S)
            etag = self._attempts(f"committing {rel}", lambda c: c.copy_object(**copy)["CopyObjectResult"]["ETag"], deadline)
        finally:
            try:
                if deadline > time.monotonic():
                    self._attempts(f"removing the temp object of {rel}", lambda c: c.delete_object(Bucket=self.bucket, Key=tmp), deadline)
            except (FileNotFoundError, ObjectStoreError):
                pass  # never visible to readers; a failed commit's own error is what matters
        # The caller puts the same bytes at the working copy's `rel` (storage.publish), or has them there.
        self._record_etag(rel, etag, local)

    def commit_version(self, asset: str, files: dict[str, Path]) -> None:
        """Commit an unpartitioned asset's files ({name in its folder: local file}) as one version:
        uploaded under .versions/<version>/, published by putting the manifest last."""
        previous = self.published(asset)
        version = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{storage.HOST}-{os.getpid()}-{secrets.token_hex(4)}"
        entries = {}
        for name, local in sorted(files.items()):
            key, size = self.key(f"{asset}/{VERSIONS_DIR}/{version}/{name}"), local.stat().st_size
            upload = lambda c, key=key, local=local: self._put(c, key, local)  # noqa: E731
            etag = self._op(f"uploading {asset}/{name}", upload, size, EXPECT_CONTINUE_WAIT_S)
            entries[name] = {"etag": etag, "size": size}
        manifest = json.dumps({"version": version, "files": entries}, indent=1).encode()
        self._op(f"committing {asset}", lambda c: c.put_object(Bucket=self.bucket, Key=self.key(f"{asset}/{MANIFEST}"), Body=manifest))
        for name, local in files.items():
            self._record_etag(f"{asset}/{name}", entries[name]["etag"], local)
        try:
            self._tidy(asset, json.loads(manifest), previous)
        except ObjectStoreError:
            pass  # published already; what is left is invisible or superseded, and the next commit tidies

    def _tidy(self, asset: str, manifest: dict, previous: dict | None) -> None:
        """Delete what the new version supersedes: plain keys of its files (the layout before
        versions), and versions older than the previous one (kept for readers mid-read)."""
        keys = [key for rel, (key, _, _) in self._listing(asset, "*", True).items() if rel.split("/", 1)[1] in manifest["files"]]
        keep = {manifest["version"], (previous or {}).get("version")}
        prefix, newest = self.key(f"{asset}/{VERSIONS_DIR}/"), {}
        token = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = self._op(f"listing {asset}/{VERSIONS_DIR}", lambda c: c.list_objects_v2(Bucket=self.bucket, Prefix=prefix, **extra))
            for item in page.get("Contents", []):
                version = item["Key"][len(prefix) :].split("/", 1)[0]
                newest.setdefault(version, []).append(item)
            if not page.get("IsTruncated"):
                break
            token = page["NextContinuationToken"]
        now = time.time()
        for version, items in newest.items():
            if version not in keep and now - max(i["LastModified"].timestamp() for i in items) > STALE_VERSION_S:
                keys += [i["Key"] for i in items]
        for start in range(0, len(keys), 1000):
            batch = {"Objects": [{"Key": key} for key in keys[start : start + 1000]], "Quiet": True}
            self._op(f"removing superseded objects of {asset}", lambda c, batch=batch: c.delete_objects(Bucket=self.bucket, Delete=batch))

    def withdraw_version(self, asset: str) -> None:
        """Withdraw the version an asset's folder publishes: readers then find no version."""
        self.delete(f"{asset}/{MANIFEST}")

    def delete(self, rel: str) -> None:
        try:
            self._op(f"removing {rel}", lambda c: c.delete_object(Bucket=self.bucket, Key=self.key(rel)))
        except FileNotFoundError:
            pass
        self._forget(rel)


_SESSION_LOCK = threading.Lock()


@functools.cache
def _session():
    """One SDK session for the process: it loads the S3 API's description once for all clients."""
    import boto3

    return boto3.session.Session()


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_mtime_ns} {stat.st_size}"


def _in_folder(rel: str, rel_dir: str, pattern: str, recursive: bool) -> bool:
    """Whether file `rel` is in folder `rel_dir` (directly, unless recursive) and matches `pattern`."""
    inside = rel[len(rel_dir.rstrip("/")) + 1 :] if rel.startswith(rel_dir.rstrip("/") + "/") else ""
    return bool(inside) and (recursive or "/" not in inside) and fnmatch.fnmatch(inside.rsplit("/", 1)[-1], pattern)


def _visible(rel: str) -> bool:
    """Whether a path is a published file: not in-progress (.staging/, .tmp, .versions/) nor bookkeeping."""
    parts = rel.split("/")
    return not any(part.startswith(".") for part in parts)


def is_published_side_file(rel: str) -> bool:
    """Whether a file in an unpartitioned asset's folder is committed with its Parquet file:
    models and figures are, refused outputs (rejected/) and in-progress files are not."""
    return _visible(rel) and storage.REJECTED_DIR not in rel.split("/")[1:-1]

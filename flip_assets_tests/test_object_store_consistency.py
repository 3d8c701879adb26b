"""What a second machine reads from an object-store FLIP_HOME while a writer commits, against
moto's S3 server on 127.0.0.1: a commit cut off at every one of its store requests leaves one
whole version (table, config.json, weights, word2vec.model), a read racing a writer's overwrite
ends with one whole object, and a store that accepts connections and never answers fails each
operation within FLIP_STORE_TIMEOUT_S, naming FLIP_HOME and the endpoint.

Faults are made at the HTTP level only: a proxy on 127.0.0.1 between the client and moto drops
every request past a budget of writes (a writer killed or cut off at that step), or lets another
writer overwrite an object between two ranged reads."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
from pyarrow import fs as pafs
import pytest
from test_object_store import BUCKET, s3  # noqa: F401 (the module's S3 server fixture)

from flip_assets.core.io import object_store, storage
from flip_assets.core.io.object_store import ObjectStoreError
from flip_assets.defs.storage import FlipStorage

ASSET = "classifier"
# Short enough that a cut-off writer gives up at once; every other store (readers, writers
# that are not cut off) is patient, so a busy machine does not fail them.
TIMEOUT_S, PATIENT_S = 0.5, 10.0


class StoreProxy:
    """An HTTP proxy in front of the S3 server. It forwards requests until `writes_left` writes
    (PUT, POST, DELETE) have gone through, then answers none (the connection is closed: the writer
    is gone); `before_get(path, headers)` runs before each GET is forwarded."""

    def __init__(self, upstream: str):
        self.upstream = upstream.removeprefix("http://")
        self.writes_left: int | None = None
        self.writes = 0
        self.before_get = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self):
                body = self._body()
                if self.command in ("PUT", "POST", "DELETE"):
                    if proxy.writes_left is not None and proxy.writes_left <= 0:
                        self.close_connection = True
                        return
                    proxy.writes += 1
                    if proxy.writes_left is not None:
                        proxy.writes_left -= 1
                if self.command == "GET" and proxy.before_get is not None:
                    proxy.before_get(self.path, self.headers)
                upstream = http.client.HTTPConnection(proxy.upstream, timeout=30)
                upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in ("transfer-encoding", "content-length", "expect", "connection"):
                        upstream.putheader(name, value)
                upstream.putheader("Content-Length", str(len(body)))
                upstream.endheaders(body)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "content-length", "connection", "server", "date"):
                        self.send_header(name, value)
                # A HEAD's Content-Length is the object's size, not that of the (empty) body.
                length = response.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(s3):  # noqa: F811
    proxy = StoreProxy(s3[0])
    yield proxy
    proxy.close()


def store(endpoint: str, cache, home: str, timeout_s: float = PATIENT_S) -> FlipStorage:
    return FlipStorage(home=home, local_cache=str(cache), s3_endpoint=endpoint, store_timeout_s=timeout_s)


def commit_version(flip: FlipStorage, version: int) -> None:
    """What an unpartitioned stage with side files does: its model folder, config.json (with the
    classifier threshold) and word2vec.model beside the table, all committed by one publish."""
    write_side_files(flip.directory(ASSET), version)
    staged = flip.write(ASSET, None, pa.table({"version": [version] * 10}))
    target = storage.partition_path(staged.parent.parent.parent, ASSET)
    flip._commit(target, staged, partitioned=False)
    storage.publish(target, staged, [], f"run-{version}")


def write_side_files(folder, version: int) -> None:
    (folder / "model").mkdir(parents=True, exist_ok=True)
    (folder / "model" / "config.json").write_text(json.dumps({"threshold": version / 10, "version": version}))
    (folder / "model" / "model.safetensors").write_bytes(bytes([version]) * 200_000)
    (folder / "word2vec.model").write_bytes(bytes([version]) * 50_000)


def read_version(flip: FlipStorage) -> tuple:
    """The versions of the table and of each side file, as a stage on this machine reads them."""
    table = flip.read(ASSET)
    home = flip.local_home(ASSET) / ASSET
    return (
        set(table.column("version").to_pylist()),
        json.loads((home / "model" / "config.json").read_text())["version"],
        set((home / "model" / "model.safetensors").read_bytes()),
        set((home / "word2vec.model").read_bytes()),
    )


def whole(version: int) -> tuple:
    return ({version}, version, {version}, {version})


def cut_off_at_every_write(endpoint: str, proxy: StoreProxy, tmp_path, name: str, commit, read, whole_version) -> None:
    """commit(store, 2) over version 1 through the proxy, cut off after each of its writes in turn
    (a writer killed there), then once not at all: readers on other machines, one that read
    version 1 before and one with an empty cache, see whole_version(1) or whole_version(2) with
    read(store), and version 2 once the commit went through."""
    home = f"s3://{BUCKET}/flip/{name}/count"
    commit(store(endpoint, tmp_path / f"{name}_count_v1", home), 1)
    proxy.writes = 0
    commit(store(proxy.endpoint, tmp_path / f"{name}_count_v2", home), 2)
    steps = proxy.writes  # uploads, the commit itself, cleanup
    assert steps >= 4, steps

    for cut in range(steps + 1):
        home = f"s3://{BUCKET}/flip/{name}/{cut}"
        commit(store(endpoint, tmp_path / f"{name}_{cut}_v1", home), 1)
        warm = store(endpoint, tmp_path / f"{name}_{cut}_warm", home)  # read v1 before the commit
        assert read(warm) == whole_version(1)
        proxy.writes_left = cut
        writer = store(proxy.endpoint, tmp_path / f"{name}_{cut}_v2", home, TIMEOUT_S)
        if cut < steps:
            with pytest.raises(ObjectStoreError):
                commit(writer, 2)
        else:
            commit(writer, 2)
        proxy.writes_left = None
        for reader in (store(endpoint, tmp_path / f"{name}_{cut}_cold", home), warm):
            seen = read(reader)
            assert seen in (whole_version(1), whole_version(2)), f"cut after {cut} of {steps} writes: {seen}"
        if cut == steps:
            assert seen == whole_version(2)


def test_a_commit_cut_off_at_any_step_leaves_the_old_or_the_new_whole_version(s3, proxy, tmp_path):  # noqa: F811
    cut_off_at_every_write(s3[0], proxy, tmp_path, "kill", commit_version, read_version, whole)


def test_a_folder_written_before_versions_is_read_then_replaced_by_a_version(s3, tmp_path):  # noqa: F811
    """An asset folder copied into the store as plain keys (with the folder markers pyarrow's
    copy writes): read from those keys; the first versioned commit supersedes them whole and
    deletes the plain copies of its files."""
    endpoint, fs = s3
    legacy = tmp_path / "legacy" / ASSET
    write_side_files(legacy, 1)
    storage.write_table(legacy / "all.parquet", pa.table({"version": [1] * 10}))
    pafs.copy_files(str(legacy), f"{BUCKET}/flip/legacy/{ASSET}", destination_filesystem=fs)
    home = f"s3://{BUCKET}/flip/legacy"
    warm = store(endpoint, tmp_path / "warm", home)
    assert read_version(warm) == whole(1)
    commit_version(store(endpoint, tmp_path / "writer", home), 2)
    for reader in (store(endpoint, tmp_path / "cold", home), warm):
        assert read_version(reader) == whole(2)
    plain = {i.path for i in fs.get_file_info(pafs.FileSelector(f"{BUCKET}/flip/legacy/{ASSET}", recursive=True))
             if i.type == pafs.FileType.File and "/." not in i.path}  # fmt: skip
    assert not plain, plain


def test_a_refusal_withdraws_the_whole_version(s3, tmp_path):  # noqa: F811
    """A blocking check refuses version 2: readers, one with an empty cache and one holding
    version 1, are refused the table and keep none of version 1's side files."""
    endpoint, _ = s3
    home = f"s3://{BUCKET}/flip/refused"
    writer = store(endpoint, tmp_path / "writer", home)
    commit_version(writer, 1)
    warm = store(endpoint, tmp_path / "warm", home)
    assert read_version(warm) == whole(1)
    staged = writer.write(ASSET, None, pa.table({"version": [2] * 10}))
    target = storage.partition_path(staged.parent.parent.parent, ASSET)
    storage.publish(target, staged, ["schema_and_values"], "run-2")  # what FlipStorage.publish does on a failure
    writer._withdraw(target)
    for reader in (store(endpoint, tmp_path / "cold", home), warm):
        with pytest.raises(storage.InputRejected, match="run-2"):
            storage.require_file(reader.path(ASSET))
        assert not [p.name for p in (reader.local_home(ASSET) / ASSET).rglob("*") if p.is_file() and "rejected" not in p.parts]


def test_a_reader_whose_version_is_deleted_midway_reads_the_next_whole_version(s3, proxy, tmp_path):  # noqa: F811
    """A reader resolves version 1; before it fetches its files another machine commits version
    2 and version 1's files are deleted (garbage collection): the reader starts over from the
    manifest and ends with the whole version 2."""
    endpoint, fs = s3
    home = f"s3://{BUCKET}/flip/gc"
    commit_version(store(endpoint, tmp_path / "v1", home), 1)
    versions = f"{BUCKET}/flip/gc/{ASSET}/.versions"
    (first,) = [i.path for i in fs.get_file_info(pafs.FileSelector(versions)) if i.type == pafs.FileType.Directory]
    replaced = []

    def commit_and_collect(path, headers):
        if "/.versions/" in path and not replaced:
            replaced.append(path)
            commit_version(store(endpoint, tmp_path / "v2", home), 2)
            fs.delete_dir(first)

    proxy.before_get = commit_and_collect
    assert read_version(store(proxy.endpoint, tmp_path / "reader", home, PATIENT_S)) == whole(2)
    assert replaced


def test_a_read_racing_an_overwrite_ends_with_one_whole_object(s3, proxy, tmp_path, monkeypatch):  # noqa: F811
    endpoint, fs = s3
    monkeypatch.setattr(object_store, "CHUNK", 1 << 20)
    size, key = 3 << 20, f"{BUCKET}/flip/torn/raw_shards/00000.parquet"
    with fs.open_output_stream(key) as out:
        out.write(b"1" * size)
    ranged_gets = []

    def overwrite_after_the_first_range(path, headers):
        if path.endswith("/torn/raw_shards/00000.parquet") and headers.get("Range"):
            ranged_gets.append(headers["Range"])
            if len(ranged_gets) == 2:  # another machine commits v2 between two ranged reads
                with fs.open_output_stream(key) as out:
                    out.write(b"2" * size)

    proxy.before_get = overwrite_after_the_first_range
    reader = store(proxy.endpoint, tmp_path / "reader", f"s3://{BUCKET}/flip/torn", PATIENT_S)
    data = reader.path("raw_shards", "00000").read_bytes()
    assert len(ranged_gets) >= 3  # the race happened: the object changed mid-read
    assert len(data) == size and set(data) in ({ord("1")}, {ord("2")}), {b: data.count(b) for b in set(data)}


def test_a_read_that_never_settles_fails_naming_the_store(s3, proxy, tmp_path, monkeypatch):  # noqa: F811
    """A writer that overwrites the object between every two ranged reads: the reader gives up
    after a bounded number of restarts instead of looping or keeping a torn file."""
    endpoint, fs = s3
    monkeypatch.setattr(object_store, "CHUNK", 1 << 20)
    size, key = 2 << 20, f"{BUCKET}/flip/churn/raw_shards/00000.parquet"
    with fs.open_output_stream(key) as out:
        out.write(b"0" * size)
    writes = []

    def overwrite_every_time(path, headers):
        if path.endswith("/churn/raw_shards/00000.parquet") and headers.get("Range", "").startswith("bytes=1048576"):
            writes.append(1)
            with fs.open_output_stream(key) as out:
                out.write(bytes([ord("a") + len(writes) % 20]) * size)

    proxy.before_get = overwrite_every_time
    reader = store(proxy.endpoint, tmp_path / "reader", f"s3://{BUCKET}/flip/churn", PATIENT_S)
    with pytest.raises(ObjectStoreError, match=f"FLIP_HOME=s3://{BUCKET}/flip/churn .*changed while"):
        reader.path("raw_shards", "00000")
    assert not (tmp_path / "reader" / "s3" / BUCKET / "flip" / "churn" / "raw_shards" / "00000.parquet").exists()


def test_a_store_that_accepts_and_never_answers_fails_within_the_timeout(tmp_path):
    """A server that takes connections and never answers: each store operation (the bucket check,
    a read, a commit) fails within about FLIP_STORE_TIMEOUT_S, naming FLIP_HOME and the endpoint, instead of minutes of retries."""
    import time

    # Listening but never accepting: the kernel completes each connection (up to the backlog)
    # and nothing ever answers on it.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    endpoint, home, bound = f"http://127.0.0.1:{listener.getsockname()[1]}", f"s3://{BUCKET}/flip", 2.0
    flip = FlipStorage(home=home, local_cache=str(tmp_path), s3_endpoint=endpoint, store_timeout_s=bound)
    staged = flip.write("raw_shards", "00000", pa.table({"x": [1]}))
    operations = {
        "check": flip.objects.check, "read": lambda: flip.path("raw_shards", "00000"),
        "commit": lambda: flip.objects.push(staged, "raw_shards/00000.parquet"),
    }  # fmt: skip
    try:
        for name, operation in operations.items():
            outcome = {}

            def run(operation=operation, outcome=outcome):
                started = time.monotonic()
                try:
                    operation()
                except BaseException as error:  # noqa: BLE001 (reported below)
                    outcome["error"] = error
                outcome["seconds"] = time.monotonic() - started

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            worker.join(bound * 3 + 5)
            assert "seconds" in outcome, f"{name} still waiting on the stalled store after {bound * 3 + 5:.0f} s"
            # Beyond the bound: the SDK client's start-up (about 0.5 s) and a busy two-core machine.
            assert outcome["seconds"] < bound + 3, (name, outcome)
            assert isinstance(outcome["error"], ObjectStoreError), (name, outcome)
            message = str(outcome["error"])
            assert f"FLIP_HOME={home} (endpoint {endpoint})" in message and "FLIP_STORE_TIMEOUT_S" in message, message
    finally:
        listener.close()


PAIR = ("flip_release", "release_exclusions")


def publish_pair(flip: FlipStorage, version: int) -> None:
    """What flip_release does with its two files: stage both, then publish them together."""
    files = []
    for asset in PAIR:
        staged = flip.write(asset, "00000", pa.table({"version": [version] * 3}))
        files.append((storage.partition_path(staged.parent.parent.parent, asset, "00000"), staged))
    flip._publish_files(files, [], f"run-{version}", partitioned=True)


def read_pair(flip: FlipStorage) -> tuple:
    return tuple(set(flip.read(asset, "00000").column("version").to_pylist()) for asset in PAIR)


def test_a_pair_cut_off_at_any_step_is_read_whole_on_another_machine(s3, proxy, tmp_path):  # noqa: F811
    """flip_release and release_exclusions on a store: a writer cut off after any of its writes
    leaves the old pair or the new one to every other machine (the new one once its journal is
    on the store: a reader finishes it), never one file of each."""
    cut_off_at_every_write(s3[0], proxy, tmp_path, "pair", publish_pair, read_pair, lambda version: ({version}, {version}))

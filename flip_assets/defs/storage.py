"""FLIP_HOME, the asset storage every stage reads and writes through: one Parquet file per asset
partition, staged, checked, then published (core/io/storage.py, core/io/object_store.py)."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import (
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
)
from pydantic import PrivateAttr

from flip_assets.core.io import object_store, storage
from flip_assets.core.curation.caption_classifier import classifier_model_dir
from flip_assets.core.training.dual_encoder import checkpoint_model_dir
from flip_assets.core.io.object_store import ObjectHome
from flip_assets.defs.asset_keys import CAPTION_CLASSIFIER, FLIP_CHECKPOINT
from flip_assets.defs.settings import EnvSettings


class FlipStorage(EnvSettings):
    """Asset files: $FLIP_HOME/<asset_key>/<partition>.parquet, written atomically.

    FLIP_HOME is a folder, or an object-store URL (s3://bucket/prefix): stages then read and
    write a working copy under FLIP_LOCAL_CACHE, `path` and `read` bring the published objects
    they name into it first, and `publish` commits the checked file to the store (see
    core/io/object_store.py). FLIP_S3_ENDPOINT points at an S3-compatible server other than AWS;
    FLIP_STORE_TIMEOUT_S bounds each store operation.
    """

    ENV = {
        "home": "FLIP_HOME", "local_cache": "FLIP_LOCAL_CACHE", "s3_endpoint": "FLIP_S3_ENDPOINT",
        "store_timeout_s": object_store.TIMEOUT_SETTING,
    }  # fmt: skip

    home: str
    # Only read when FLIP_HOME is an object store.
    local_cache: str = str(Path(tempfile.gettempdir()) / "flip-cache")
    s3_endpoint: str = ""
    store_timeout_s: float = object_store.DEFAULT_TIMEOUT_S

    _objects: ObjectHome | None = PrivateAttr(default=None)
    # The run this resource serves (its staged files and partition locks carry it), the locks
    # it holds and the file it staged per target, until the step ends.
    _run_id: str = PrivateAttr(default_factory=lambda: f"local-{secrets.token_hex(8)}")
    _locks: dict = PrivateAttr(default_factory=dict)
    _staged: dict = PrivateAttr(default_factory=dict)

    @property
    def objects(self) -> ObjectHome | None:
        """The object store behind FLIP_HOME, None when it is a folder."""
        if self._objects is None and object_store.is_url(self.home):
            self.require("store_timeout_s", self.store_timeout_s > 0, "must be a positive number of seconds")
            self._objects = ObjectHome(self.home, self.local_cache, self.s3_endpoint, self.store_timeout_s)
        return self._objects

    def setup_for_execution(self, context) -> None:
        if context.run_id:
            self._run_id = context.run_id
        if self.objects is not None:
            self.objects.check()

    def teardown_after_execution(self, context) -> None:
        """The step has ended and its events are stored: let other runs have its partitions,
        and drop what it staged but never published (a step that failed part way)."""
        for staged in self._staged.values():
            staged.unlink(missing_ok=True)
        for lock in self._locks.values():
            lock.release()
        self._staged.clear()
        self._locks.clear()

    def _folder(self) -> Path:
        return self.objects.local if self.objects is not None else Path(self.home)

    def _local_path(self, asset_key: str, partition: str | None = None) -> Path:
        return storage.partition_path(self._folder(), asset_key, partition)

    def path(self, asset_key: str, partition: str | None = None) -> Path:
        """The asset file to read; partition "*" gives the glob of all its partitions."""
        path = self._local_path(asset_key, partition)
        if self.objects is not None:
            self._finish_on_store(path)
            if partition == "*":
                self.objects.pull_tree(asset_key, pattern=path.name, recursive=False)
            else:
                self.objects.pull(self._rel(path), self._rel(storage.rejection_note(path)))
        return path

    def _rel(self, path: Path) -> str:
        return path.relative_to(self._folder()).as_posix()

    def local_home(self, *folders: str) -> Path:
        """The folder to read these assets' files from (folders: asset keys, or a subfolder of
        one such as "flip_checkpoint/model"), with every file they published: FLIP_HOME itself,
        or the working copy of the object store, brought up to date."""
        if self.objects is not None:
            for folder in folders:
                self.objects.pull_tree(folder)
        return self._folder()

    def resume_dir(self, name: str) -> Path:
        """A local folder for a stage's resume state; on an object store the files a run that
        stopped (on this machine or another) put there with `share` are brought in first."""
        if self.objects is not None:
            self.objects.pull_tree(name)
        return self.directory(name)

    def discard(self, folder: Path) -> None:
        """Remove a folder no longer needed (a finished training's resume state), and the copies
        of its files `share` put in the object store."""
        if self.objects is not None:
            for _, rel in self._shared_files(folder):
                self.objects.delete(rel)
        shutil.rmtree(folder, ignore_errors=True)

    def share(self, folder: Path) -> None:
        """Commit the files of a folder to the object store when they are not published with a
        Parquet file (the dataset card; a training's resume state at each save); a folder
        FLIP_HOME has them already."""
        if self.objects is not None:
            for file, rel in self._shared_files(folder):
                self.objects.push(file, rel)

    def _shared_files(self, folder: Path) -> list[tuple[Path, str]]:
        """The files of a folder that `share` commits (not temp files nor refused outputs), with
        their object names."""
        files = (file for file in sorted(folder.rglob("*")) if file.is_file())
        return [(file, rel) for file in files if object_store.is_published_side_file(rel := self._rel(file))]

    def directory(self, name: str) -> Path:
        """A folder for non-tabular outputs (models, caches) of one asset; on an object store
        this is local (the working copy), and an unpartitioned asset's files in its own folder
        are committed with its Parquet file by `publish`."""
        path = self._folder() / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, asset_key: str, partition: str | None, table: pa.Table) -> Path:
        """Stage the asset's new file and return its path, for the checks to read; `publish`
        then puts it in place, or sets it aside when a blocking check failed.

        The run first takes the partition's lock (held until its step ends): a second run of the
        same partition at the same time is refused with a message naming the first. The staged
        file carries the run id, so no run ever checks or publishes another run's file."""
        target = self._local_path(asset_key, partition)
        if target not in self._locks:
            self._locks[target] = storage.PartitionLock(target, self._run_id)
            storage.recover_commits(target)  # a killed run's half-published set, before anything new
            for leftover in storage.staged_files(target):  # of runs that ended without publishing
                leftover.unlink(missing_ok=True)
        self._staged[target] = storage.staging_path(target, self._run_id)
        return storage.write_table(self._staged[target], table)

    def publish(self, context: AssetExecutionContext, result: MaterializeResult) -> MaterializeResult:
        """Publish the file the asset staged unless one of its blocking checks failed; the
        result's `path` then says where the file is and `published` whether later runs use it."""
        return self.publish_together(context, [result])[0]

    def publish_together(self, context: AssetExecutionContext, results: Sequence[MaterializeResult]) -> list[MaterializeResult]:
        """Publish the files of a multi-asset's results as one (each result names its asset): all
        of them, or none when a blocking check of any failed. A run killed part way is finished by
        the next reader of any of the files (storage.publish_together)."""
        keys = [AssetKey.from_coercible(r.asset_key) if r.asset_key else context.asset_key for r in results]
        blocking = {(spec.asset_key, spec.name) for spec in context.assets_def.check_specs if spec.blocking}
        # As in Dagster, a failure reported at WARN severity does not block, even on a blocking check.
        failed = sorted(
            c.check_name for key, r in zip(keys, results) for c in r.check_results or []
            if not c.passed and (AssetKey.from_coercible(c.asset_key or key), c.check_name) in blocking
            and c.severity == AssetCheckSeverity.ERROR
        )  # fmt: skip
        partition = context.partition_key if context.has_partition_key else None
        files = []
        for key in keys:
            target = self._local_path(key.to_user_string(), partition)
            if target not in self._staged:
                raise RuntimeError(f"{key.to_user_string()}: this run staged no file to publish (FlipStorage.write first)")
            files.append((target, self._staged.pop(target)))
        paths = self._publish_files(files, failed, context.run.run_id, partitioned=partition is not None)
        if failed:
            shown = ", ".join(self._shown(path) for path in paths)
            context.log.error(f"not published: blocking check(s) {', '.join(failed)} failed; kept at {shown}")
        return [
            MaterializeResult(
                asset_key=result.asset_key, check_results=result.check_results, tags=result.tags,
                metadata={
                    **(result.metadata or {}), **table_metadata(path, partitioned=partition is not None),
                    "path": MetadataValue.path(self._shown(path)), "published": not failed,
                },
                # The file's content is its data version: a re-run that writes the same bytes leaves
                # everything downstream up to date ("Unsynced" compares data versions), and
                # automation (defs/automation.py) refreshes only what an input change reaches.
                data_version=result.data_version or DataVersion(storage.sha256_of(path)),
            )
            for result, path in zip(results, paths)
        ]  # fmt: skip

    def _publish_files(self, files: list[tuple[Path, Path]], failed: list[str], run_id: str, partitioned: bool) -> list[Path]:
        """storage.publish_together, on the store too: there the set's staged files and its
        journal are put first, so that a writer cut off part way is finished by the next reader
        on any machine (_finish_on_store)."""
        journals = storage.write_journals(files, failed, run_id)
        if self.objects is not None and journals:
            if not partitioned:  # the journal cannot name an unpartitioned asset's side files
                raise ValueError("files published together on an object store must be partitions")
            for rel in [self._rel(staged) for _, staged in files] + [self._rel(journal) for journal in journals]:
                self.objects.push(self._folder() / rel, rel)
        paths = [self._publish_file(target, staged, failed, run_id, partitioned) for target, staged in files]
        if self.objects is not None and journals:
            for rel in [self._rel(journal) for journal in journals] + [self._rel(staged) for _, staged in files]:
                self.objects.delete(rel)
        storage.remove_journals(journals)
        return paths

    def _publish_file(self, target: Path, staged: Path, failed: list[str], run_id: str, partitioned: bool) -> Path:
        if self.objects is not None and not failed:
            self._commit(target, staged, partitioned)
        path = storage.publish(target, staged, failed, run_id)
        if self.objects is not None and failed:
            self._withdraw(target)
        return path

    def _finish_on_store(self, path: Path) -> None:
        """Finish a publication of several files that a writer left part way on the store (its
        journal is there), before `path` (a partition's file, or the glob of all) is read."""
        folder = self._rel(path.parent / storage.COMMITS_DIR)
        pattern = "*.json" if path.stem == "*" else f"{path.stem}.json"
        for rel in self.objects.hidden_files(folder, pattern):
            self.objects.pull(rel)
            journal = self._folder() / rel
            if not journal.is_file():  # finished by another reader meanwhile
                continue
            files, failed, run_id = storage.read_journal(journal, self._folder())
            for target, staged in files:
                self.objects.pull(self._rel(staged))
                if staged.is_file():  # else it was committed before the writer stopped
                    self._publish_file(target, staged, failed, run_id, partitioned=True)
                    self.objects.delete(self._rel(staged))
            for target, _ in files:
                self.objects.delete(self._rel(storage.journal_path(target)))

    def _shown(self, path: Path) -> str:
        """Where a file is for a user: its object URL on an object store."""
        return f"{self.objects.url}/{self._rel(path)}" if self.objects is not None else str(path)

    def _commit(self, target: Path, staged: Path, partitioned: bool) -> None:
        """Commit the staged file of `target` to the store; an unpartitioned asset's other files
        in its folder (models, figures) are committed with it as one version, which readers see
        whole or not at all."""
        if partitioned:
            self.objects.push(staged, self._rel(target))
        else:
            files = {side.relative_to(target.parent).as_posix(): side for side, _ in self._shared_files(target.parent) if side != target}
            self.objects.commit_version(self._rel(target.parent), {**files, target.name: staged})
        for stale in (storage.rejection_note(target), storage.rejected_path(target)):
            self.objects.delete(self._rel(stale))

    def _withdraw(self, target: Path) -> None:
        """Mirror a refusal on the store: the note first (as storage.publish does locally), then
        the refused file, then withdraw the earlier publication (an unpartitioned asset's version)."""
        for kept in (storage.rejection_note(target), storage.rejected_path(target)):
            self.objects.push(kept, self._rel(kept))
        if target.stem == storage.UNPARTITIONED:
            self.objects.withdraw_version(self._rel(target.parent))
        self.objects.delete(self._rel(target))

    def read(self, asset_key: str, partition: str | None = None) -> pa.Table:
        return storage.read_table(self.path(asset_key, partition))

    def caption_classifier_dir(self) -> Path:
        """The fine-tuned caption classifier, once caption_classifier published (passed its checks)."""
        storage.require_file(self.path(CAPTION_CLASSIFIER))
        return classifier_model_dir(self.local_home(CAPTION_CLASSIFIER))

    def published_checkpoint_dir(self) -> Path:
        """The dual encoder flip_checkpoint saved last (Hugging Face layout), brought into the
        working copy of an object store (a folder FLIP_HOME has it in place)."""
        return checkpoint_model_dir(self.local_home(f"{FLIP_CHECKPOINT}/model"))


def column_schema(schema: pa.Schema) -> MetadataValue:
    """Dagster's column schema of an Arrow schema, with the columns' descriptions where the
    schema has them (core/io/storage.py `described`)."""
    columns = [TableColumn(field.name, str(field.type), description=storage.column_description(field)) for field in schema]
    return MetadataValue.table_schema(TableSchema(columns))


def table_metadata(path: Path, partitioned: bool) -> dict:
    """Dagster's standard row count and column schema (the catalog shows them), read from the
    Parquet footer of the file as written; a partition's rows are also its partition_row_count."""
    with pq.ParquetFile(path) as parquet:
        rows, schema = parquet.metadata.num_rows, parquet.schema_arrow
    return {
        "dagster/row_count": rows, "dagster/column_schema": column_schema(schema),
        **({"dagster/partition_row_count": rows} if partitioned else {}),
    }  # fmt: skip

"""The run directory: atomic writes, fingerprints and a manifest of finished work.

Every artifact is written to a temp file beside its target and renamed into place, so a killed
run never leaves a truncated file that a later stage would trust. A unit of work (one model's
training, one model's evaluation, ...) is marked complete in the manifest only after all its
artifacts exist, under a fingerprint of everything it depends on; a rerun skips units whose
fingerprint matches and redoes the rest.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import platform
import tempfile
import time
import socket
from collections.abc import Iterable, Iterator
import contextlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

import xaiquest
from xaiquest.console import console
from xaiquest.errors import XaiquestError
from xaiquest.layout import RunLayout


class StoreError(XaiquestError):
    """The run directory cannot be written, or one of its finished artifacts was damaged."""


def unwritable(path: Path, error: OSError | RuntimeError) -> StoreError:
    """One line for a write the file system refused (read-only, full, a file where a folder should be)."""
    reason = error.strerror if isinstance(error, OSError) and error.strerror else " ".join(str(error).split())
    blocking = next((folder for folder in path.parents if folder.exists() and not folder.is_dir()), None)
    if blocking is not None:
        fix = f"{blocking} is a file where a folder is needed: move it away"
    elif path.is_dir():
        fix = f"{path} is a folder where a file is needed: move it away"
    elif isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free disk space"
    else:
        fix = f"make {path.parent} writable"
    return StoreError(f"cannot write {path} ({reason}); {fix}")


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temp path beside ``path`` that replaces it only if the ``with`` block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
    except OSError as error:
        raise unwritable(path, error) from error
    try:
        yield Path(temp)
        os.chmod(temp, 0o644)  # mkstemp creates 0600; artifacts are meant to be shared
        os.replace(temp, path)
    except OSError as error:
        Path(temp).unlink(missing_ok=True)
        raise unwritable(path, error) from error
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_target(path) as temp:
        temp.write_text(text, encoding="utf-8")


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def atomic_torch_save(path: Path, obj: Any) -> None:
    with atomic_target(path) as temp:
        try:
            torch.save(obj, temp)
        except RuntimeError as error:  # torch reports a failed write (disk full) as a RuntimeError
            raise unwritable(path, error) from error


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts plus the code version."""
    payload = json.dumps([xaiquest.__version__, *parts], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def file_digest(path: Path) -> dict[str, Any]:
    """Size and BLAKE2b hash of a file: what a unit records of each key artifact it wrote."""
    digest = hashlib.blake2b()
    with open(path, "rb") as handle:  # hashlib.file_digest needs Python 3.11; we support 3.10
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "blake2b": digest.hexdigest()}


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive POSIX lock on ``path`` (created if missing), waited for if another process holds it.

    The kernel drops the lock when its holder dies, even by SIGKILL, so a killed worker never leaves
    a unit claimed; ``lockf`` locks also hold across NFS mounts with a lock daemon."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 - the lock lives exactly as long as this descriptor
    except OSError as error:
        raise unwritable(path, error) from error
    with handle:
        fcntl.lockf(handle, fcntl.LOCK_EX)
        try:
            handle.truncate(0)
            handle.write(f"{socket.gethostname()} pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
            handle.flush()
            yield
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)


def is_held(path: Path) -> bool:
    """Whether some process holds the POSIX lock on ``path`` (tested without waiting, released at once)."""
    with open(path, "a+") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.lockf(handle, fcntl.LOCK_UN)
        return False


class RunStore:
    """``runs/<experiment>/``: its layout (every artifact's path) plus ``manifest.json``, the record of finished units."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.layout = RunLayout(self.root)
        self.manifest_path = self.layout.manifest
        self._digests: dict[tuple[Path, int, int, int], dict[str, Any]] = {}

    def read_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            return {"units": {}}
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise StoreError(f"cannot read {self.manifest_path} ({error}); make it readable, or delete it to "
                             "redo the run from scratch") from error

    def initialise(self, config: dict[str, Any], data_source: str, data_path: Path | None = None,
                   data_fingerprint: str | None = None, dataset: dict[str, Any] | None = None,
                   runs: list[str] | None = None) -> None:
        """Record the resolved config, the data and environment; keeps the record of finished units.

        ``data_path`` is stored resolved, so the run can find its data again from any folder; ``runs``
        (the config's model ids) is what the report and dashboard list, not whatever folders exist."""
        with self.manifest_locked():
            self._initialise(config, data_source, data_path, data_fingerprint, dataset, runs)

    def _initialise(self, config: dict[str, Any], data_source: str, data_path: Path | None,
                    data_fingerprint: str | None, dataset: dict[str, Any] | None, runs: list[str] | None) -> None:
        manifest = self.read_manifest()
        manifest.update(
            experiment=self.root.name,
            config=config,
            data=data_source,
            data_path=None if data_path is None else str(Path(data_path).resolve()),
            data_fingerprint=data_fingerprint,
            dataset=dataset or {},
            runs=runs or [],
            xaiquest=xaiquest.__version__,
            torch=torch.__version__,
            python=platform.python_version(),
            machine={"cores": os.cpu_count(), "torch_threads": torch.get_num_threads()},
            updated=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        atomic_write_json(self.manifest_path, manifest)

    def is_complete(self, unit: str, unit_fingerprint: str) -> bool:
        """Finished under this fingerprint, with every recorded artifact unchanged since (else say which is not)."""
        entry = self.read_manifest()["units"].get(unit)
        if not entry or entry.get("fingerprint") != unit_fingerprint:
            return False
        for name, recorded in entry.get("artifacts", {}).items():
            path = self.root / name
            problem = self._artifact_problem(path, recorded)
            if problem:
                console.print(f"[yellow]{unit}[/]: {path} {problem} since it was finished; redoing it",
                              highlight=False)
                return False
        return True

    def is_current(self, unit: str, unit_fingerprint: str) -> bool:
        """Finished under exactly this fingerprint (no artifact check, no message): whether a reader
        may trust the unit's outputs as of today's config and inputs, or must call them stale."""
        return self.unit_record(unit).get("fingerprint") == unit_fingerprint

    def unit_record(self, unit: str) -> dict[str, Any]:
        return self.read_manifest()["units"].get(unit, {})

    def mark_complete(self, unit: str, unit_fingerprint: str, summary: dict[str, Any] | None = None,
                      artifacts: Iterable[Path] = ()) -> None:
        """Call only after every artifact of ``unit`` has been written; ``artifacts`` (its key files,
        under the run directory) are recorded by size and hash, and checked on every later skip or read."""
        recorded = {self._name(path): self._digest(Path(path)) for path in artifacts}
        with self.manifest_locked():
            manifest = self.read_manifest()
            manifest["units"][unit] = {
                "fingerprint": unit_fingerprint,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                **({"artifacts": recorded} if recorded else {}),
                **(summary or {}),
            }
            atomic_write_json(self.manifest_path, manifest)
        self.layout.failure(unit).unlink(missing_ok=True)

    def manifest_locked(self) -> contextlib.AbstractContextManager[None]:
        """Around every read-modify-write of the manifest: parallel workers append, never overwrite."""
        return file_lock(self.layout.manifest_lock)

    def claim(self, unit: str) -> contextlib.AbstractContextManager[None]:
        """Held while ``unit`` is computed: a second process wanting the same unit waits, then finds it complete."""
        return file_lock(self.layout.claim(unit))

    def record_failure(self, unit: str, report: str) -> Path:
        """Keep the traceback of a unit that failed for good, for the user and the report."""
        path = self.layout.failure(unit)
        atomic_write_text(path, report)
        return path

    def failures(self) -> dict[str, str]:
        """Unit name -> traceback of every unit whose last attempt failed and that has not succeeded since."""
        folder = self.layout.failures
        return {path.relative_to(folder).with_suffix("").as_posix(): path.read_text(encoding="utf-8")
                for path in sorted(folder.rglob("*.txt"))} if folder.is_dir() else {}

    def busy(self) -> bool:
        """Whether another process holds a unit's claim in this run now (then its temp files are live)."""
        folder = self.layout.claims
        return folder.is_dir() and any(is_held(path) for path in folder.rglob("*.lock"))

    def sweep_temp_files(self) -> int:
        """Delete the temp files of atomic writes that a killed process left behind; call only while no
        other process writes into this run (they are never read, only disk space). Returns how many."""
        leftovers = [path for path in self.root.rglob(".*.tmp") if path.is_file()]
        for path in leftovers:
            path.unlink(missing_ok=True)
        return len(leftovers)

    def artifact_hash(self, unit: str, path: Path) -> str | None:
        """The hash ``unit`` recorded for ``path`` (None if not recorded): downstream fingerprints include it,
        so units built on an artifact redo their work when it is rebuilt with other content."""
        recorded = self._recorded(unit, path)
        return None if recorded is None else recorded["blake2b"]

    def check_artifact(self, unit: str, path: Path, fix: str) -> None:
        """Before a later unit reads ``path``: fail with one line if it differs from what ``unit`` recorded."""
        recorded = self._recorded(unit, path)
        problem = recorded and self._artifact_problem(Path(path), recorded)
        if problem:
            raise StoreError(f"{path} {problem} since {unit} finished; {fix}")

    def _recorded(self, unit: str, path: Path) -> dict[str, Any] | None:
        return self.unit_record(unit).get("artifacts", {}).get(self._name(path))

    def _name(self, path: Path) -> str:
        return Path(path).relative_to(self.root).as_posix()

    def _artifact_problem(self, path: Path, recorded: dict[str, Any]) -> str | None:
        if not path.is_file():
            return "was deleted"
        actual = self._digest(path)
        if actual["bytes"] != recorded["bytes"]:
            return f"changed size ({actual['bytes']} bytes, {recorded['bytes']} when written)"
        if actual["blake2b"] != recorded["blake2b"]:
            return "changed content (its hash differs from the one recorded)"
        return None

    def _digest(self, path: Path) -> dict[str, Any]:
        """``file_digest`` memoised on the file's identity, so checking the same weights twice costs one hash."""
        stat = path.stat()
        key = (path.resolve(), stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if key not in self._digests:
            self._digests[key] = file_digest(path)
        return self._digests[key]

    def record_executor(self, summary: dict[str, Any]) -> None:
        """How the latest run's units were executed (backend, workers, overhead per unit), for reports and benchmarks."""
        with self.manifest_locked():
            manifest = self.read_manifest()
            manifest["executor"] = summary
            atomic_write_json(self.manifest_path, manifest)

    def record_timing(self, stage: str, seconds: float) -> None:
        """Wall time of the latest run of a stage (skipped work included), for reports and notes."""
        with self.manifest_locked():
            manifest = self.read_manifest()
            manifest.setdefault("timings_s", {})[stage] = round(seconds, 1)
            atomic_write_json(self.manifest_path, manifest)

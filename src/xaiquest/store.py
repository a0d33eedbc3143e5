"""The run directory: atomic writes, fingerprints and a manifest of finished work.

Every artifact is written to a temp file beside its target and renamed into place, so a killed
run never leaves a truncated file that a later stage would trust. A unit of work (one model's
training, one model's evaluation, ...) is marked complete in the manifest only after all its
artifacts exist, under a fingerprint of everything it depends on; a rerun skips units whose
fingerprint matches and redoes the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

import xaiquest


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temp path beside ``path`` that replaces it only if the ``with`` block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(temp)
        os.chmod(temp, 0o644)  # mkstemp creates 0600; artifacts are meant to be shared
        os.replace(temp, path)
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
        torch.save(obj, temp)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts plus the code version."""
    payload = json.dumps([xaiquest.__version__, *parts], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class RunStore:
    """``runs/<experiment>/``: paths for every stage plus ``manifest.json``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.manifest_path = self.root / "manifest.json"

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def read_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {"units": {}}
        return json.loads(self.manifest_path.read_text(encoding="utf-8"))

    def initialise(self, config: dict[str, Any], data_source: str, dataset: dict[str, Any] | None = None) -> None:
        """Record the resolved config, the data and environment; keeps the record of finished units."""
        manifest = self.read_manifest()
        manifest.update(
            experiment=self.root.name,
            config=config,
            data=data_source,
            dataset=dataset or {},
            xaiquest=xaiquest.__version__,
            torch=torch.__version__,
            python=platform.python_version(),
            updated=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        atomic_write_json(self.manifest_path, manifest)

    def is_complete(self, unit: str, unit_fingerprint: str) -> bool:
        entry = self.read_manifest()["units"].get(unit)
        return bool(entry) and entry.get("fingerprint") == unit_fingerprint

    def unit_record(self, unit: str) -> dict[str, Any]:
        return self.read_manifest()["units"].get(unit, {})

    def mark_complete(self, unit: str, unit_fingerprint: str, summary: dict[str, Any] | None = None) -> None:
        """Call only after every artifact of ``unit`` has been written."""
        manifest = self.read_manifest()
        manifest["units"][unit] = {
            "fingerprint": unit_fingerprint,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **(summary or {}),
        }
        atomic_write_json(self.manifest_path, manifest)

    def record_timing(self, stage: str, seconds: float) -> None:
        """Wall time of the latest run of a stage (skipped work included), for reports and notes."""
        manifest = self.read_manifest()
        manifest.setdefault("timings_s", {})[stage] = round(seconds, 1)
        atomic_write_json(self.manifest_path, manifest)

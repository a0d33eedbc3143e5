"""Run store: atomic writes leave nothing behind on failure; fingerprints gate completion."""

from __future__ import annotations

import pytest

from xaiquest.store import RunStore, StoreError, atomic_target, atomic_write_text, fingerprint


def test_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_target(target) as temp:
            temp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_units_are_complete_only_under_their_fingerprint(tmp_path):
    store = RunStore(tmp_path / "exp")
    store.initialise({"name": "exp"}, "somewhere")
    assert not store.is_complete("train/m", "abc")
    store.mark_complete("train/m", "abc", {"accuracy": 0.5})
    assert store.is_complete("train/m", "abc") and not store.is_complete("train/m", "other")
    store.initialise({"name": "exp", "changed": True}, "somewhere")  # re-running keeps finished units
    assert store.unit_record("train/m")["accuracy"] == 0.5


def test_fingerprint_is_stable_and_sensitive():
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_recorded_artifacts_gate_completion_and_reads(tmp_path):
    store = RunStore(tmp_path / "exp")
    weights = store.layout.model("m").weights
    atomic_write_text(weights, "weights")
    store.mark_complete("train/m", "abc", artifacts=[weights])
    assert store.is_complete("train/m", "abc") and store.artifact_hash("train/m", weights)
    store.check_artifact("train/m", weights, "retrain it")
    weights.write_text("weightz")  # same size, other content
    assert not store.is_complete("train/m", "abc")
    with pytest.raises(StoreError, match="model.pt changed content .* since train/m finished; retrain it"):
        store.check_artifact("train/m", weights, "retrain it")
    weights.unlink()
    assert not store.is_complete("train/m", "abc")

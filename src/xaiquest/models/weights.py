"""Weights the user brings: a state_dict file (``.pt``/``.pth``, or ``.safetensors``) loaded into a
zoo or torchvision architecture, safely, with one actionable line when it does not fit.

``torch.load`` runs with ``weights_only=True``: a checkpoint that needs arbitrary unpickling (a
whole pickled model, custom classes) could execute code, so it is refused with the fix (save
``model.state_dict()``) instead of being opened.
"""

from __future__ import annotations

import hashlib
import pickle
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from xaiquest.errors import ConfigError

SAFETENSORS_SUFFIX = ".safetensors"
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
"""Where common training checkpoints nest the state_dict (Lightning, tutorials)."""
_HASH_CHUNK = 1 << 20


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, CPU-resident, with a ``module.`` (DataParallel) prefix removed."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"weights file {path} does not exist; fix the model's weights: path")
    state = _read_safetensors(path) if path.suffix == SAFETENSORS_SUFFIX else _read_torch(path)
    if state and all(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    return state


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise ConfigError(f"cannot read {path} as safetensors ({error}); re-save it with safetensors.torch.save_file") from None


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(
            f"{path} needs unsafe unpickling (it stores Python objects, e.g. a whole pickled model), which could run "
            "code; save only the weights: torch.save(model.state_dict(), FILE)"
        ) from None
    except (RuntimeError, OSError, EOFError) as error:
        raise ConfigError(f"cannot read weights file {path} ({' '.join(str(error).split())[:200]}); re-save it") from None
    if isinstance(payload, dict):
        nested = next((payload[key] for key in _WRAPPER_KEYS if isinstance(payload.get(key), dict)), None)
        state = nested if nested is not None and not all(isinstance(v, torch.Tensor) for v in payload.values()) else payload
        if state and all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()):
            return state
    raise ConfigError(f"{path} holds no state_dict (a mapping of parameter names to tensors); save model.state_dict()")


def load_weights(model: nn.Module, path: str | Path, description: str) -> None:
    """Load a weights file into ``model`` strictly: every key present, none extra, every shape equal.

    A torchvision state_dict names its keys as torchvision does, so it is loaded into the wrapped
    network; ``description`` (model name, classes, image size) makes a mismatch actionable.
    """
    state = read_state_dict(path)
    target = getattr(model, "net", model)
    own = target.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    if missing or unexpected:
        raise ConfigError(
            f"weights {path} do not fit {description}: {_keys('missing', missing)}{_keys('unexpected', unexpected)}"
            "check the model name (and data.image_size: tv: and timm: models under 64 px have a small-image stem)"
        )
    wrong = [key for key in own if own[key].shape != state[key].shape]
    if wrong:
        key = wrong[0]
        raise ConfigError(
            f"weights {path} do not fit {description}: {key} is {list(state[key].shape)} in the file but "
            f"{list(own[key].shape)} in the model ({len(wrong)} tensors differ); check the model name, the class "
            "folders (the classifier's size is the number of classes) and data.image_size"
        )
    target.load_state_dict(state, strict=True)


def load_matching(model: nn.Module, path: str | Path) -> int:
    """Start training from a weights file: copy every tensor whose name and shape match (a new
    classifier for another class count keeps its fresh initialisation); returns how many matched."""
    state = read_state_dict(path)
    target = getattr(model, "net", model)
    own = target.state_dict()
    matching = {key: value for key, value in state.items() if key in own and own[key].shape == value.shape}
    if not matching:
        raise ConfigError(f"init weights {path} share no tensor (name and shape) with {type(model).__name__}; "
                          "check the model name")
    target.load_state_dict(matching, strict=False)
    return len(matching)


def _keys(kind: str, keys: list[str]) -> str:
    if not keys:
        return ""
    shown = ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")
    return f"{len(keys)} {kind} keys ({shown}); "


def weights_digest(path: str | Path) -> str:
    """SHA-256 of the file's bytes: a run's fingerprint follows the weights, not the path."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise ConfigError(f"weights file {resolved} does not exist; fix the model's weights: path")
    stat = resolved.stat()
    return _digest(str(resolved), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:  # size and mtime key the cache
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()

"""What the dashboard does, without a UI: open a run, list and load images, stress them, explain, score.

Every function here is plain and typed so it can be tested without a browser; ``app.py`` only
wires these into Gradio widgets. Explanations are computed on demand on the CPU and cached by
(model, image, stress, method, layer), so revisiting a combination costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import ValidationError
from torch import nn

from xaiquest.config import ExperimentConfig, PatchConfig
from xaiquest.data.corruptions import ALL_CORRUPTIONS, corrupt
from xaiquest.errors import XaiquestError
from xaiquest.layout import RunLayout
from xaiquest.explainers import EXPLAINERS, explain
from xaiquest.explainers.quality import deletion_insertion, top_k_overlap
from xaiquest.inference import audit_logits, prepare_batch
from xaiquest.models import last_depth
from xaiquest.models.base import named_depths
from xaiquest.patch import stamp
from xaiquest.runs import (
    AuditData,
    RunKey,
    load_logits,
    confident_mistakes,
    load_trained,
    planted_patch,
    prepare_data,
    run_keys,
)
from xaiquest.store import RunStore
from xaiquest.validation import check_config
from xaiquest.stress import PROBES, apply_probe

CPU = torch.device("cpu")
FILTERS = ("all", "correct", "misclassified", "confident failure")
"""Test-set filters; a confident failure is one of the evaluate stage's most confident mistakes."""
MAX_LISTED = 200
"""Images offered per filter: a 10,000-entry dropdown would stall the browser."""
LEVELS = (1, 2, 3, 4, 5)
"""The stress slider: corruption severity, the probe's n-th intensity, or the patch side in pixels at 32 px."""
NO_STRESS, PATCH = "none", "patch"
DEFAULT_LAYER = "last depth"
MAX_UPLOAD_BYTES = 10 * 2**20
MAX_UPLOAD_PIXELS = 4096 * 4096
UPLOAD_MODES = ("RGB", "RGBA", "L", "LA", "P")
"""8-bit modes with an unambiguous RGB conversion; 16-bit, float, CMYK and 1-bit images are refused."""
CACHE_SIZE = 1024
SERVING_THREADS = 1
"""Torch threads of a serving process: an interaction runs batches of 1-34 tiny images, where a
second thread gains little, and with another job on the cores it ruins latency (a single-image
forward pass on 2 busy cores: 80 ms with 2 threads, 1 ms with 1; docs/dashboard.md)."""


class UploadError(XaiquestError):
    """An uploaded file the dashboard cannot use; the message says why and what is accepted."""


@dataclass(frozen=True)
class Run:
    """A run directory reopened for browsing: its config, test split and trained models."""

    root: Path
    config: ExperimentConfig
    store: RunStore
    data: AuditData
    keys: dict[str, RunKey]


@dataclass(frozen=True)
class Stress:
    """A stress applied before predicting and explaining: ``kind`` is none, patch, a probe or a corruption."""

    kind: str = NO_STRESS
    level: int = 1


@dataclass(frozen=True)
class Prediction:
    model: str
    predicted: int
    probabilities: dict[str, float]


@dataclass(frozen=True)
class Explanation:
    """One map with its quality numbers; ``tko`` only when the stress planted a patch."""

    model: str
    method: str
    layer: str | None
    target: int
    heatmap: torch.Tensor
    deletion_auc: float
    insertion_auc: float
    tko: float | None
    seconds: float


def open_run(root: Path, data: Path | None = None) -> Run:
    """Reload a run's config (from its manifest), its test split and the models it finished training."""
    root = Path(root)
    manifest_path = RunLayout(root).manifest
    if not manifest_path.is_file():
        raise XaiquestError(f"{root} is not a run directory (no {manifest_path.name}); pass e.g. runs/quick")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    raw = manifest["config"]
    source = data if data is not None else _recorded_data(manifest)
    if source is not None:
        raw["data"] = {**raw.get("data", {}), "source": str(source)}
    try:
        config = ExperimentConfig(**raw)
    except ValidationError as error:
        raise XaiquestError(f"{manifest_path} holds a config this version cannot read: {error.errors()[0]['msg']}") from None
    store = RunStore(root)
    keys = {key.id: key for key in run_keys(config) if store.layout.model(key.id).weights.exists()}
    if not keys:
        raise XaiquestError(f"{root} has no trained model yet; run `xaiquest train` first")
    data = prepare_data(config)
    check_config(config, len(data.classes), data.image_size)
    return Run(root, config, store, data, keys)


def _recorded_data(manifest: dict) -> Path | None:
    """The absolute data folder the run read, if it is still there: the config may hold a path relative to
    the folder the run was started from."""
    recorded = manifest.get("data_path")
    return Path(recorded) if recorded and Path(recorded).is_dir() else None


def stress_choices() -> list[str]:
    """none, the planted patch, every probe that needs no foreground masks, every corruption."""
    probes = [name for name in PROBES.names() if not PROBES.get(name).uses_foreground]
    return [NO_STRESS, PATCH, *probes, *ALL_CORRUPTIONS]


def run_patch(config: ExperimentConfig) -> PatchConfig:
    """The patch a training variant of the run planted, else the default magenta square."""
    return planted_patch(config) or PatchConfig()


def apply_stress(image: torch.Tensor, stress: Stress, patch: PatchConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(stressed uint8 [3,H,W], patch mask [H,W] or None)``; seeded, so a stress always looks the same."""
    if stress.level not in LEVELS:
        raise XaiquestError(f"stress level must be one of {LEVELS}, got {stress.level!r}")
    batch = image[None]
    generator = torch.Generator().manual_seed(0)
    if stress.kind == NO_STRESS:
        return image, None
    if stress.kind == PATCH:
        stamped, masks = stamp(batch, patch.model_copy(update={"size": stress.level}), generator)
        return stamped[0], masks[0]
    if stress.kind in ALL_CORRUPTIONS:
        return corrupt(batch, stress.kind, stress.level)[0], None
    probe = PROBES.get(stress.kind)
    intensity = probe.intensities[min(stress.level, len(probe.intensities)) - 1]
    return apply_probe(stress.kind, batch, intensity, generator)[0][0], None


def load_upload(path: Path, size: int = 32) -> torch.Tensor:
    """An uploaded picture as a uint8 ``[3,size,size]`` image (centre-cropped and resized to the run's
    image size), or a clear UploadError."""
    path = Path(path)
    nbytes = path.stat().st_size
    if nbytes > MAX_UPLOAD_BYTES:
        raise UploadError(f"{path.name} is {nbytes / 2**20:.1f} MB; uploads are limited to {MAX_UPLOAD_BYTES // 2**20} MB")
    try:
        with Image.open(path) as picture:
            if picture.width * picture.height > MAX_UPLOAD_PIXELS:
                raise UploadError(f"{path.name} is {picture.width}x{picture.height} pixels; the limit is 4096x4096")
            if picture.mode not in UPLOAD_MODES:
                raise UploadError(f"{path.name} has image mode {picture.mode}; upload an 8-bit RGB, RGBA, grey or palette image")
            small = ImageOps.fit(picture.convert("RGB"), (size, size), Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        raise UploadError(f"{path.name} is not an image PIL can read; upload a PNG or JPEG") from None
    return torch.from_numpy(np.asarray(small).copy()).permute(2, 0, 1).contiguous()


def report_tables(root: Path) -> dict[str, Path]:
    """The run's comparison tables (every CSV under ``tables/``) by name."""
    tables = RunLayout(Path(root)).tables
    return {path.stem: path for path in sorted(tables.folder.glob(tables.csv("*").name))}


def report_figures(root: Path) -> list[Path]:
    """Every run figure (under ``figures/``)."""
    figures = RunLayout(Path(root)).figures
    return sorted(figures.folder.glob(figures.pattern("").name))


class Uploads:
    """A session's uploaded pictures at one image size, keyed by their content hash so a re-upload hits the cache."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._images: dict[str, tuple[str, torch.Tensor]] = {}

    def add(self, path: Path) -> tuple[str, str]:
        """``(label, image id)`` of an uploaded picture, or a clear UploadError."""
        image = load_upload(path, self.size)
        image_id = "upload:" + hashlib.sha1(image.numpy().tobytes()).hexdigest()[:12]
        self._images[image_id] = (f"upload {Path(path).name}", image)
        return self._images[image_id][0], image_id

    def listed(self) -> list[tuple[str, str]]:
        """``[(label, image id)]``, newest first."""
        return [(label, image_id) for image_id, (label, _) in reversed(self._images.items())]

    def get(self, image_id: str) -> torch.Tensor | None:
        """The uint8 ``[3,size,size]`` upload, or None when ``image_id`` is not one."""
        entry = self._images.get(image_id)
        return None if entry is None else entry[1]


class Dashboard:
    """One run's browsing session: loaded models, uploads and the explanation cache.

    Torch hooks that explainers register make concurrent calls on one model unsafe, and the CPU
    gains nothing from parallel requests, so computations are serialised by a lock.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self.patch = run_patch(run.config)
        self._models: dict[str, nn.Module] = {}
        self._predictions: dict[str, torch.Tensor] = {}
        self._uploads = Uploads(run.data.image_size)
        self._lock = threading.RLock()
        self._explain_cached = lru_cache(maxsize=CACHE_SIZE)(self._compute_explanation)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.run.data.classes

    def model_ids(self) -> list[str]:
        return list(self.run.keys)

    def model(self, model_id: str) -> nn.Module:
        if model_id not in self.run.keys:
            raise XaiquestError(f"unknown model {model_id!r}; this run has {', '.join(self.run.keys)}")
        with self._lock:
            if model_id not in self._models:
                self._models[model_id] = load_trained(self.run.store, self.run.keys[model_id], self.run.data, CPU)
            return self._models[model_id]

    def layers(self, model_ids: list[str]) -> list[str]:
        """Named depths every selected model has, shallow to deep, after the default (each model's last)."""
        depth_lists = [list(named_depths(self.model(m))) for m in model_ids]
        common = [d for d in depth_lists[0] if all(d in other for other in depth_lists[1:])] if depth_lists else []
        return [DEFAULT_LAYER, *common]

    def test_predictions(self, model_id: str) -> torch.Tensor:
        """Test-set probabilities ``[N,C]``: the evaluate stage's logits, else computed once."""
        if model_id not in self._predictions:
            try:
                logits = load_logits(self.run.store, self.run.keys[model_id])["test"]
            except XaiquestError:
                logits = audit_logits(self.model(model_id), self.run.data.test.images, CPU, self.run.config)
            self._predictions[model_id] = logits.softmax(1)
        return self._predictions[model_id]

    def list_images(self, model_id: str, class_name: str, which: str) -> tuple[list[tuple[str, str]], int]:
        """``([(label, image id)], matches)``: test images of a class (or "all") passing a filter, by ``model_id``'s predictions."""
        if which not in FILTERS:
            raise XaiquestError(f"unknown image filter {which!r}; choose one of {', '.join(FILTERS)}")
        labels = self.run.data.test.labels
        confidence, predicted = self.test_predictions(model_id).max(1)
        keep = torch.ones_like(labels, dtype=torch.bool) if class_name == "all" else labels == self.classes.index(class_name)
        if which == "correct":
            keep &= predicted == labels
        elif which == "misclassified":
            keep &= predicted != labels
        elif which == "confident failure":
            keep &= torch.isin(torch.arange(len(labels)), self.confident_failures(model_id))
        indices = keep.nonzero().squeeze(1)
        if which == "confident failure":
            indices = indices[confidence[indices].argsort(descending=True)]
        listed = [(f"#{i} {self.classes[labels[i]]} → {self.classes[predicted[i]]} {confidence[i]:.0%}", f"test:{i}")
                  for i in indices[:MAX_LISTED].tolist()]
        return listed, len(indices)

    def confident_failures(self, model_id: str) -> torch.Tensor:
        """Test indices of the model's most confident mistakes (none before the evaluate stage ran)."""
        try:
            return confident_mistakes(self.run.store, self.run.keys[model_id])
        except XaiquestError:
            return torch.empty(0, dtype=torch.long)

    def add_upload(self, path: Path) -> tuple[str, str]:
        """``(label, image id)`` of an uploaded picture; the id is its content hash, so re-uploads hit the cache."""
        return self._uploads.add(path)

    def uploads(self) -> list[tuple[str, str]]:
        """``[(label, image id)]`` of this session's uploads, newest first."""
        return self._uploads.listed()

    def image(self, image_id: str) -> torch.Tensor:
        """A uint8 ``[3,S,S]`` image (the run's size): ``test:<index>`` or an upload's id."""
        upload = self._uploads.get(image_id)
        if upload is not None:
            return upload
        kind, _, index = image_id.partition(":")
        if kind != "test" or not index.isdigit() or int(index) >= len(self.run.data.test):
            raise XaiquestError(f"unknown image {image_id!r}; pick one from the list or upload one")
        return self.run.data.test.images[int(index)]

    def stressed(self, image_id: str, stress: Stress) -> tuple[torch.Tensor, torch.Tensor | None]:
        return apply_stress(self.image(image_id), stress, self.patch)

    def true_label(self, image_id: str) -> str | None:
        if not image_id.startswith("test:"):
            return None
        return self.classes[int(self.run.data.test.labels[int(image_id.split(":")[1])])]

    def predict(self, model_id: str, image_id: str, stress: Stress) -> Prediction:
        image, _ = self.stressed(image_id, stress)
        with self._lock:
            probabilities = self._probabilities(self.model(model_id), image)[0]
        return Prediction(model_id, int(probabilities.argmax()), dict(zip(self.classes, probabilities.tolist())))

    def _probabilities(self, model: nn.Module, image: torch.Tensor) -> torch.Tensor:
        """Softmax of a uint8 ``[3,H,W]`` image as the evaluate stage computed it (the run's ``eval.tta``),
        so the page's prediction, the explained class and the image list's labels agree."""
        return audit_logits(model, image[None], CPU, self.run.config).softmax(1)

    def explain(self, model_id: str, image_id: str, stress: Stress, method: str, layer: str = DEFAULT_LAYER) -> Explanation:
        """The (cached) map of ``method`` for the model's predicted class on the stressed image, with its quality.

        ``seconds`` is the explainer's own time; the deletion/insertion curves come on top.
        """
        explainer = EXPLAINERS.get(method)
        resolved = None
        if explainer.uses_layer:
            resolved = last_depth(self.model(model_id)) if layer == DEFAULT_LAYER else layer
        return self._explain_cached(model_id, image_id, stress, method, resolved)

    def cache_hits(self) -> int:
        return self._explain_cached.cache_info().hits

    def _compute_explanation(self, model_id: str, image_id: str, stress: Stress, method: str, layer: str | None) -> Explanation:
        image, mask = self.stressed(image_id, stress)
        model = self.model(model_id)
        x = prepare_batch(image[None], CPU, channels_last=False)
        with self._lock:
            target = self._probabilities(model, image).argmax(1)
            started = time.perf_counter()
            heatmap = explain(method, model, x, target, layer=layer)
            seconds = time.perf_counter() - started
            curves = deletion_insertion(model, x, heatmap, target, steps=self.run.config.explain.deletion_steps)
        tko = None if mask is None else float(top_k_overlap(heatmap, mask[None])[0])
        return Explanation(model_id, method, layer, int(target), heatmap[0], float(curves["deletion_auc"][0]),
                           float(curves["insertion_auc"][0]), tko, seconds)

"""The dashboard for one model and no run: ``xaiquest dashboard --model NAME [--weights FILE] ...``.

What ``explain-image`` writes to files, on demand in the page: the model is loaded and each image
explained by :mod:`xaiquest.explain.single` (same class names, same errors, same numbers), the
images come from uploads or an ``--images`` folder, and the page reuses the run page's views.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import torch

from xaiquest.dashboard.session import CACHE_SIZE, DEFAULT_LAYER, MAX_LISTED, Explanation, Uploads
from xaiquest.data import Normalisation
from xaiquest.errors import ConfigError
from xaiquest.explainers import EXPLAINERS
from xaiquest.explain.single import LoadedModel, check_methods, explain_pixels, load_any_model, read_image
from xaiquest.models import last_depth
from xaiquest.models.base import named_depths

FILE_PREFIX = "file:"


def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` (any depth), sorted by path, or a ConfigError saying what is wrong."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    if not folder.is_dir():
        raise ConfigError(f"--images {folder} is not a folder; pass a folder of image files")
    files = sorted(path for path in folder.rglob("*") if path.is_file() and path.name.lower().endswith(IMG_EXTENSIONS))
    if not files:
        raise ConfigError(f"--images {folder} holds no image files ({', '.join(IMG_EXTENSIONS[:4])}, ...)")
    return files


def open_model(name: str, weights: Path | None, classes: Path | None, image_size: int | None, images: Path | None,
               normalisation: Normalisation | None) -> ModelSession:
    """Load the model as ``explain-image`` does and list the image folder; bad inputs fail here, before serving."""
    files = image_files(images) if images is not None else []
    return ModelSession(name, load_any_model(name, weights, classes, image_size, normalisation), files, images)


class ModelSession:
    """One model's browsing session: folder images, uploads and a cache of explanations.

    Computations are serialised by a lock, as in the run's session: explainer hooks make concurrent
    calls on one model unsafe.
    """

    def __init__(self, name: str, loaded: LoadedModel, files: list[Path], folder: Path | None = None) -> None:
        self.name = name
        self.loaded = loaded
        self.files = files
        self.folder = folder
        self._uploads = Uploads(loaded.image_size)
        self._lock = threading.RLock()
        self._explain_cached = lru_cache(maxsize=CACHE_SIZE)(self._compute_explanation)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.loaded.classes

    def layers(self) -> list[str]:
        """The default (the last depth), then the model's named depths, shallow to deep."""
        return [DEFAULT_LAYER, *named_depths(self.loaded.model)]

    def image_choices(self) -> tuple[list[tuple[str, str]], int]:
        """``([(label, image id)], folder images)``: uploads first, then at most ``MAX_LISTED`` folder images."""
        listed = [(self._label(file), f"{FILE_PREFIX}{index}") for index, file in enumerate(self.files[:MAX_LISTED])]
        return [*self._uploads.listed(), *listed], len(self.files)

    def _label(self, file: Path) -> str:
        return str(file.relative_to(self.folder)) if self.folder is not None else file.name

    def add_upload(self, path: Path) -> tuple[str, str]:
        return self._uploads.add(path)

    def image(self, image_id: str) -> torch.Tensor:
        """A uint8 ``[3,S,S]`` image at the model's size: an upload, or a folder file read as ``explain-image`` reads it."""
        upload = self._uploads.get(image_id)
        if upload is not None:
            return upload
        index = image_id.removeprefix(FILE_PREFIX)
        if not image_id.startswith(FILE_PREFIX) or not index.isdigit() or int(index) >= len(self.files):
            raise ConfigError(f"unknown image {image_id!r}; pick one from the list or upload one")
        return read_image(self.files[int(index)], self.loaded.image_size)

    def top_classes(self, image_id: str) -> dict[str, float]:
        """The top-5 classes and their probabilities."""
        image = self.image(image_id)
        with self._lock:
            return dict(explain_pixels(image, self.loaded, [], last_depth(self.loaded.model)).top)

    def explain(self, image_id: str, method: str, layer: str = DEFAULT_LAYER) -> Explanation:
        """The (cached) map of ``method`` for the top class, with its deletion/insertion AUC."""
        check_methods([method])
        uses_layer = EXPLAINERS.get(method).uses_layer and layer != DEFAULT_LAYER
        resolved = layer if uses_layer else last_depth(self.loaded.model)  # input attributions ignore it: one cache entry
        return self._explain_cached(image_id, method, resolved)

    def cache_hits(self) -> int:
        return self._explain_cached.cache_info().hits

    def _compute_explanation(self, image_id: str, method: str, layer: str) -> Explanation:
        image = self.image(image_id)
        with self._lock:
            result = explain_pixels(image, self.loaded, [method], layer)
        row = result.rows[0]
        return Explanation(self.name, method, str(row["layer"]) or None, result.target, result.maps[method][0],
                           float(row["deletion_auc"]), float(row["insertion_auc"]), None, float(row["explain_s"]))

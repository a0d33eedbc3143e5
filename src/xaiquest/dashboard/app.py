"""The Gradio pages: widgets wired to :class:`~xaiquest.dashboard.session.Dashboard` (a run) or
:class:`~xaiquest.dashboard.model_session.ModelSession` (one model); no logic of their own.

Element ids (``#model-a``, ``#image``, ``#methods``, ``#explain``, ``#heatmaps``, ...) are what the
browser test drives, so they are part of the page's contract.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import torch

from xaiquest.dashboard.concepts import concepts_tab
from xaiquest.dashboard.model_session import ModelSession
from xaiquest.dashboard.session import (
    DEFAULT_LAYER,
    FILTERS,
    LEVELS,
    MAX_LISTED,
    NO_STRESS,
    SERVING_THREADS,
    Dashboard,
    Explanation,
    Stress,
    report_figures,
    report_tables,
    stress_choices,
)
from xaiquest.dashboard.views import caption, enlarged, overlay, quality_table, rounded
from xaiquest.explainers import explainer_names

NO_MODEL = "(none)"
DEFAULT_METHODS = ("gradcam", "layercam")
COLUMNS, ROW_HEIGHT = 6, 210
"""Heatmap gallery layout: six maps a row (about 190 px each at the page's width), grown to fit every row."""
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
"""System fonts: the default theme would fetch Google Fonts, and the dashboard must work offline."""
CSS = """
#heatmaps .caption-label { white-space: normal; overflow: visible; max-width: 100%; left: 0; right: 0;
  font-size: 11px; line-height: 1.25; }
"""
"""Gradio cuts gallery captions to one line with an ellipsis; heatmap captions carry the numbers, so they wrap."""


def build_app(dashboard: Dashboard) -> gr.Blocks:
    """The page: an Explore tab (models, image, explainers, layer, stress -> predictions and heatmaps) and a Report tab."""
    models = dashboard.model_ids()
    with gr.Blocks(title=f"xaiquest · {dashboard.run.root.name}", analytics_enabled=False) as page:
        gr.Markdown(f"## xaiquest dashboard · run `{dashboard.run.root.name}`")
        message = gr.Markdown(elem_id="message")
        with gr.Tab("Explore"):
            with gr.Row():
                model_a = gr.Dropdown(models, value=models[0], label="model", elem_id="model-a")
                model_b = gr.Dropdown([NO_MODEL, *models], value=NO_MODEL, label="side by side with", elem_id="model-b")
                layer = gr.Dropdown(dashboard.layers([models[0]]), value=DEFAULT_LAYER, label="layer", elem_id="layer")
            with gr.Row():
                class_name = gr.Dropdown(["all", *dashboard.classes], value="all", label="class", elem_id="class")
                which = gr.Radio(list(FILTERS), value="all", label="test images", elem_id="filter")
                image = gr.Dropdown(label="image", elem_id="image", scale=2)
                upload = gr.File(label="…or upload an image", type="filepath", elem_id="upload", height=110)
            methods = gr.CheckboxGroup(explainer_names(), value=list(DEFAULT_METHODS), label="explainers", elem_id="methods")
            with gr.Row():
                stress = gr.Dropdown(stress_choices(), value=NO_STRESS, label="stress", elem_id="stress")
                level = gr.Slider(LEVELS[0], LEVELS[-1], value=LEVELS[0], step=1, label="stress level", elem_id="level")
                button = gr.Button("Explain", variant="primary", elem_id="explain")
            with gr.Row():
                shown = gr.Image(label="input (after stress)", elem_id="input-image", height=220, interactive=False)
                prediction_a = gr.Label(num_top_classes=5, label="prediction", elem_id="prediction-a")
                prediction_b = gr.Label(num_top_classes=5, label="prediction (side by side)", elem_id="prediction-b")
            heatmaps, quality = _heatmaps_and_quality()
        with gr.Tab("Concepts", elem_id="concepts-tab"):
            concepts_tab(dashboard)
        with gr.Tab("Report", elem_id="report-tab"):
            _report_tab(dashboard)

        def list_images(model: str, wanted_class: str, wanted: str) -> dict[str, Any]:
            return _image_choices(dashboard, model, wanted_class, wanted)

        def explain_all(model: str, other: str, image_id: str, chosen: list[str], depth: str, kind: str, strength: float):
            return _explain_all(dashboard, _selected(model, other), image_id, chosen, depth, Stress(kind, int(strength)))

        def add_upload(path: str | None, model: str, wanted_class: str, wanted: str):
            return _add_upload(dashboard, path, model, wanted_class, wanted)

        def choose_layers(model: str, other: str, current: str) -> dict[str, Any]:
            choices = dashboard.layers(_selected(model, other))
            return gr.update(choices=choices, value=current if current in choices else DEFAULT_LAYER)

        filters = [model_a, class_name, which]
        inputs = [model_a, model_b, image, methods, layer, stress, level]
        outputs = [shown, prediction_a, prediction_b, heatmaps, quality, message]
        page.load(list_images, filters, image)
        for widget in filters:
            widget.change(list_images, filters, image)
        for widget in (model_a, model_b):
            widget.change(choose_layers, [model_a, model_b, layer], layer)
        upload.upload(add_upload, [upload, *filters], [image, message, upload])
        button.click(explain_all, inputs, outputs)
        level.release(explain_all, inputs, outputs)
    return page


def build_model_app(session: ModelSession) -> gr.Blocks:
    """One model, no run: an image (from ``--images`` or uploaded), explainers and a layer -> top-5 and heatmaps."""
    with gr.Blocks(title=f"xaiquest · {session.name}", analytics_enabled=False) as page:
        gr.Markdown(f"## xaiquest dashboard · model `{session.name}` "
                    f"({len(session.classes)} classes, {session.loaded.image_size} px)")
        message = gr.Markdown(elem_id="message")
        with gr.Row():
            image = gr.Dropdown(elem_id="image", scale=2, **_model_image_choices(session))
            upload = gr.File(label="…or upload an image", type="filepath", elem_id="upload", height=110)
            layer = gr.Dropdown(session.layers(), value=DEFAULT_LAYER, label="layer", elem_id="layer")
        methods = gr.CheckboxGroup(explainer_names(), value=list(DEFAULT_METHODS), label="explainers", elem_id="methods")
        button = gr.Button("Explain", variant="primary", elem_id="explain")
        with gr.Row():
            shown = gr.Image(label="input", elem_id="input-image", height=220, interactive=False)
            prediction = gr.Label(num_top_classes=5, label="top-5 classes", elem_id="prediction-a")
        heatmaps, quality = _heatmaps_and_quality()

        def add_upload(path: str | None):
            return _add_model_upload(session, path)

        def explain_all(image_id: str | None, chosen: list[str], depth: str):
            return _explain_model(session, image_id, chosen, depth)

        upload.upload(add_upload, upload, [image, message, upload])
        button.click(explain_all, [image, methods, layer], [shown, prediction, heatmaps, quality, message])
    return page


def _heatmaps_and_quality() -> tuple[gr.Gallery, gr.Dataframe]:
    """The heatmap gallery (captions carry each map's numbers) and the quality table under it."""
    heatmaps = gr.Gallery(label="heatmaps", columns=COLUMNS, height=ROW_HEIGHT, elem_id="heatmaps",
                          object_fit="contain", allow_preview=True)
    return heatmaps, gr.Dataframe(label="quality of each map", elem_id="quality", interactive=False)


def _gallery(explanations: list[Explanation], image: torch.Tensor) -> dict[str, Any]:
    """Each map over the image, the gallery grown to show every row."""
    tiles = [(overlay(image, e.heatmap), caption(e)) for e in explanations]
    return gr.update(value=tiles, height=ROW_HEIGHT * math.ceil(len(tiles) / COLUMNS) + 40)


def _missing_input(image_id: str | None, methods: list[str]) -> str | None:
    if not image_id:
        return "pick an image first (or upload one)"
    return None if methods else "tick at least one explainer"


def _model_image_choices(session: ModelSession) -> dict[str, Any]:
    choices, files = session.image_choices()
    shown = f"showing {MAX_LISTED} of {files} in --images" if files > MAX_LISTED else f"{files} in --images"
    return {"choices": choices, "value": choices[0][1] if choices else None, "label": f"image ({shown})"}


def _add_model_upload(session: ModelSession, path: str | None):
    return _added_upload(session.add_upload, path, lambda image_id: gr.update(**{**_model_image_choices(session),
                                                                                 "value": image_id}))


def _explain_model(session: ModelSession, image_id: str | None, methods: list[str], layer: str) -> tuple[Any, ...]:
    """The image, its top-5 classes, one heatmap per method and the quality table."""
    unchanged = (gr.update(),) * 4
    missing = _missing_input(image_id, methods)
    if missing:
        return *unchanged, missing
    try:
        image = session.image(image_id)
        top = session.top_classes(image_id)
        explanations = [session.explain(image_id, method, layer) for method in methods]
    except Exception as error:  # noqa: BLE001  (the page reports any failure; the server keeps serving)
        return *unchanged, _error(error)
    return enlarged(image), top, _gallery(explanations, image), quality_table(explanations, session.classes), ""


def _selected(model: str, other: str) -> list[str]:
    """The first model, plus the side-by-side one when it is set and different."""
    return [model, *([other] if other not in (NO_MODEL, model) else [])]


def _report_tab(dashboard: Dashboard) -> None:
    """The run's tables (pick one) and its figures."""
    tables = report_tables(dashboard.run.root)
    if not tables:
        gr.Markdown("This run has no report tables yet (`xaiquest evaluate` / `xaiquest run` write them).")
        return
    first = next(iter(tables))
    chosen = gr.Dropdown(list(tables), value=first, label="table", elem_id="report-table")
    view = gr.Dataframe(rounded(pd.read_csv(tables[first])), interactive=False, elem_id="report-view")
    chosen.change(lambda name: rounded(pd.read_csv(tables[name])), chosen, view)
    figures = report_figures(dashboard.run.root)
    gr.Gallery([(str(path), path.stem) for path in figures], label="figures (click one for full size)", columns=2,
               height="auto", object_fit="contain", allow_preview=True, elem_id="report-figures")


def _image_choices(dashboard: Dashboard, model: str, wanted_class: str, wanted: str) -> dict[str, Any]:
    listed, matches = dashboard.list_images(model, wanted_class, wanted)
    choices = [*dashboard.uploads(), *listed]
    shown = f"showing {len(listed)} of {matches}" if matches > len(listed) else f"{matches} match"
    return gr.update(choices=choices, value=choices[0][1] if choices else None, label=f"image ({shown})")


def _add_upload(dashboard: Dashboard, path: str | None, model: str, wanted_class: str, wanted: str):
    def listed(image_id: str) -> Any:
        choices = _image_choices(dashboard, model, wanted_class, wanted)
        return gr.update(choices=choices["choices"], value=image_id, label=choices["label"])

    return _added_upload(dashboard.add_upload, path, listed)


def _added_upload(add: Callable[[Path], tuple[str, str]], path: str | None, listed: Callable[[str], Any]):
    """Add an upload and select it in the list ``listed(image_id)`` builds; a bad file only produces a message.
    The file box is emptied for the next one. Shared by the run page and the one-model page."""
    if path is None:
        return gr.update(), "", None
    try:
        label, image_id = add(Path(path))
    except Exception as error:  # noqa: BLE001  (the page reports any failure; the server keeps serving)
        return gr.update(), _error(error), None
    return listed(image_id), f"added {label} to the image list", None


def _explain_all(dashboard: Dashboard, models: list[str], image_id: str | None, methods: list[str], layer: str,
                 stress: Stress) -> tuple[Any, ...]:
    """Predictions of each model and one heatmap per model and method, with the quality table."""
    unchanged = (gr.update(),) * 5
    missing = _missing_input(image_id, methods)
    if missing:
        return *unchanged, missing
    try:
        image, _ = dashboard.stressed(image_id, stress)
        predictions = [dashboard.predict(model, image_id, stress) for model in models]
        explanations = [dashboard.explain(model, image_id, stress, method, layer) for model in models for method in methods]
    except Exception as error:  # noqa: BLE001  (the page reports any failure; the server keeps serving)
        return *unchanged, _error(error)
    second = predictions[1].probabilities if len(predictions) > 1 else None
    truth = dashboard.true_label(image_id)
    note = f"true class: **{truth}**" if truth else "uploaded image (no true class)"
    return (enlarged(image), predictions[0].probabilities, second, _gallery(explanations, image),
            quality_table(explanations, dashboard.classes), note)


def _error(error: Exception) -> str:
    return f"**error:** {error}"


def serve(dashboard: Dashboard | ModelSession, port: int, block: bool = True) -> gr.Blocks:
    """Serve a run's page or one model's on 127.0.0.1:``port``; ``block=False`` returns once the server
    answers (tests, screenshots).

    Gradio stays quiet: the CLI prints the address itself, and Gradio's "set share=True" hint offers
    the CLI user a public link this command deliberately never creates."""
    torch.set_num_threads(SERVING_THREADS)
    single = isinstance(dashboard, ModelSession)
    page = build_model_app(dashboard) if single else build_app(dashboard)
    page.queue(default_concurrency_limit=1)
    page.launch(server_name="127.0.0.1", server_port=port, share=False, ssr_mode=False, prevent_thread_lock=not block,
                allowed_paths=[] if single else [str(dashboard.run.store.layout.figures.folder)], theme=THEME, css=CSS, quiet=True,
                footer_links=[], max_file_size="40mb")
    return page

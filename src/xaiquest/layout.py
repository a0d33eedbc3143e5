"""The run directory's layout: the one place that spells an artifact's path.

Stages, the report, the dashboard and the tests all take their paths from here, so renaming a file
is one edit and a reader can never look for a table under a name no stage writes. Every class
holds the folder it describes; built on ``Path()`` instead of a real run folder it gives the
run-relative names the report cites (``RELATIVE.tables.comparison`` -> ``tables/comparison.csv``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EvalFiles:
    """``models/<run>/eval/``: Stage-1 metrics and the logits every later measurement reuses."""

    folder: Path

    @property
    def metrics(self) -> Path:
        return self.folder / "metrics.json"

    @property
    def per_class(self) -> Path:
        return self.folder / "per_class.csv"

    @property
    def confusion(self) -> Path:
        return self.folder / "confusion.csv"

    @property
    def confusion_figure(self) -> Path:
        return self.folder / "confusion.png"

    @property
    def misclassified(self) -> Path:
        return self.folder / "misclassified.csv"

    @property
    def logits(self) -> Path:
        return self.folder / "logits.pt"


@dataclass(frozen=True)
class CalibrationFiles:
    """``models/<run>/calibration/``."""

    folder: Path

    @property
    def summary(self) -> Path:
        return self.folder / "calibration.json"

    @property
    def bins(self) -> Path:
        return self.folder / "reliability_bins.csv"

    @property
    def bins_after(self) -> Path:
        return self.folder / "reliability_bins_after_ts.csv"

    @property
    def classwise(self) -> Path:
        return self.folder / "classwise_ece.csv"

    @property
    def figure(self) -> Path:
        return self.folder / "reliability.png"


@dataclass(frozen=True)
class ExplainFiles:
    """``models/<run>/explain/``: the maps, their quality and agreement, the re-examined mistakes."""

    folder: Path

    def table(self, name: str) -> Path:
        """One of the per-model tables the explain stage gathers into run tables (:data:`EXPLAIN_TABLES`)."""
        return self.folder / f"{name}.csv"

    @property
    def maps(self) -> Path:
        return self.folder / "maps.pt"

    @property
    def selection(self) -> Path:
        return self.folder / "selection.csv"

    @property
    def quality(self) -> Path:
        return self.table("quality")

    @property
    def agreement_iou(self) -> Path:
        return self.folder / "agreement_iou.csv"

    @property
    def agreement_spearman(self) -> Path:
        return self.folder / "agreement_spearman.csv"

    @property
    def agreement_figure(self) -> Path:
        return self.folder / "agreement.png"

    @property
    def grid(self) -> Path:
        return self.folder / "grid.png"

    @property
    def reexamine(self) -> Path:
        return self.folder / "reexamine.csv"

    @property
    def reexamine_figure(self) -> Path:
        return self.folder / "reexamine.png"


@dataclass(frozen=True)
class StressFiles:
    """``models/<run>/stress/``."""

    folder: Path

    def table(self, name: str) -> Path:
        """One of the per-model tables the stress stage gathers into run tables (:data:`STRESS_TABLES`)."""
        return self.folder / f"{name}.csv"

    @property
    def probes(self) -> Path:
        return self.table("probes")

    @property
    def focus(self) -> Path:
        return self.table("focus")

    @property
    def layerwise(self) -> Path:
        return self.table("layerwise")

    @property
    def patch_localisation(self) -> Path:
        return self.table("patch_localisation")

    @property
    def patch_sensitivity(self) -> Path:
        """The patch localisation per explained output and map post-processing (reliant models)."""
        return self.table("patch_sensitivity")

    @property
    def xai_benchmark(self) -> Path:
        """The planted-patch benchmark against the control twin (patch models that have one)."""
        return self.table("xai_benchmark")

    @property
    def xai_scores(self) -> Path:
        """The benchmark's per-image scores (reliant, control, baselines), pooled over seeds at run level."""
        return self.folder / "xai_scores.csv"

    def before_after(self, probe: str) -> Path:
        """A few images and their explanations before and after ``probe``."""
        return self.folder / f"before_after_{probe}.png"

    @property
    def first_layer_filters(self) -> Path:
        return self.folder / "first_layer_filters.png"

    @property
    def patch(self) -> Path:
        return self.folder / "patch.json"

    @property
    def patch_maps(self) -> Path:
        return self.folder / "patch_maps.png"

    @property
    def patch_contrast(self) -> Path:
        """The same stamped images' maps on the reliant model and on its control twin, side by side."""
        return self.folder / "patch_contrast.png"


@dataclass(frozen=True)
class ConceptFiles:
    """``models/<run>/concepts/``."""

    folder: Path

    def table(self, name: str) -> Path:
        """One of the per-model tables the concepts stage gathers into run tables (:data:`CONCEPT_TABLES`)."""
        return self.folder / f"{name}.csv"

    @property
    def bias(self) -> Path:
        return self.table("bias")

    @property
    def colour_reliance(self) -> Path:
        return self.table("colour_reliance")

    @property
    def tcav(self) -> Path:
        return self.table("tcav")

    @property
    def tcav_untrained(self) -> Path:
        """TCAV of an untrained copy of the architecture: written by one model per architecture (the sanity baseline)."""
        return self.table("tcav_untrained")

    @property
    def detectors(self) -> Path:
        return self.table("detectors")

    @property
    def top_units(self) -> Path:
        return self.table("top_units")

    @property
    def shape_bias(self) -> Path:
        return self.folder / "shape_bias.json"


@dataclass(frozen=True)
class TransferFiles:
    """``models/<run>/transfer/``: how far training moved a model from the weights it started from."""

    folder: Path

    def table(self, name: str) -> Path:
        """One of the per-model tables the transfer stage gathers into run tables (:data:`TRANSFER_TABLES`)."""
        return self.folder / f"{name}.csv"

    @property
    def depths(self) -> Path:
        return self.table("depths")


@dataclass(frozen=True)
class ModelFiles:
    """``models/<run>/``: one trained (or imported) model and everything measured on it."""

    folder: Path

    @property
    def weights(self) -> Path:
        return self.folder / "model.pt"

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoint.pt"

    @property
    def train_record(self) -> Path:
        return self.folder / "train.json"

    @property
    def history(self) -> Path:
        return self.folder / "history.csv"

    @property
    def curves(self) -> Path:
        return self.folder / "curves.png"

    @property
    def tensorboard(self) -> Path:
        return self.folder / "tensorboard"

    @property
    def eval(self) -> EvalFiles:
        return EvalFiles(self.folder / "eval")

    @property
    def calibration(self) -> CalibrationFiles:
        return CalibrationFiles(self.folder / "calibration")

    @property
    def explain(self) -> ExplainFiles:
        return ExplainFiles(self.folder / "explain")

    @property
    def stress(self) -> StressFiles:
        return StressFiles(self.folder / "stress")

    @property
    def concepts(self) -> ConceptFiles:
        return ConceptFiles(self.folder / "concepts")

    @property
    def transfer(self) -> TransferFiles:
        return TransferFiles(self.folder / "transfer")


EXPLAIN_TABLES = {"quality": "explain_quality"}
"""Per-model explain table -> the run table that gathers it."""
STRESS_TABLES = {"probes": "stress_probes", "focus": "stress_focus", "layerwise": "layerwise",
                 "patch_localisation": "patch_localisation", "xai_benchmark": "xai_benchmark",
                 "patch_sensitivity": "patch_sensitivity"}
"""Per-model stress table -> the run table that gathers it."""
CONCEPT_TABLES = {"bias": "concepts_bias", "colour_reliance": "concepts_colour_reliance", "tcav": "concepts_tcav",
                  "tcav_untrained": "concepts_tcav_untrained", "detectors": "concepts_detectors",
                  "top_units": "concepts_top_units"}
"""Per-model concepts table -> the run table that gathers it."""
TRANSFER_TABLES = {"depths": "transfer"}
"""Per-model transfer table -> the run table that gathers it."""


@dataclass(frozen=True)
class Tables:
    """``tables/``: one table per measurement across the run's models (CSV, some also as Markdown)."""

    folder: Path

    def csv(self, name: str) -> Path:
        return self.folder / f"{name}.csv"

    def markdown_of(self, table: Path) -> Path:
        """The Markdown twin of the CSV table ``table``, written beside it for people and the report."""
        return table.with_suffix(".md")

    @property
    def pattern_stress(self) -> Path:
        """The stress stage's probe tables (a glob pattern)."""
        return self.folder / "stress_*.csv"

    # the tables later readers (compare, the report, the dashboard) depend on, named once
    comparison = property(lambda self: self.csv("comparison"))
    calibration = property(lambda self: self.csv("calibration"))
    robustness_accuracy = property(lambda self: self.csv("robustness_accuracy"))
    robustness_per_class_f1 = property(lambda self: self.csv("robustness_per_class_f1"))
    robustness_ce = property(lambda self: self.csv("robustness_ce"))
    robustness_summary = property(lambda self: self.csv("robustness_summary"))
    explain_quality = property(lambda self: self.csv(EXPLAIN_TABLES["quality"]))
    reexamine = property(lambda self: self.csv("reexamine"))
    stress_probes = property(lambda self: self.csv(STRESS_TABLES["probes"]))
    layerwise = property(lambda self: self.csv(STRESS_TABLES["layerwise"]))
    patch_localisation = property(lambda self: self.csv(STRESS_TABLES["patch_localisation"]))
    patch_reliance = property(lambda self: self.csv("patch_reliance"))
    xai_benchmark = property(lambda self: self.csv(STRESS_TABLES["xai_benchmark"]))
    patch_sensitivity = property(lambda self: self.csv(STRESS_TABLES["patch_sensitivity"]))
    salience_sweep = property(lambda self: self.csv("salience_sweep"))
    xai_benchmark_pooled = property(lambda self: self.csv("xai_benchmark_pooled"))
    xai_benchmark_pairs = property(lambda self: self.csv("xai_benchmark_pairs"))
    concepts_summary = property(lambda self: self.csv("concepts_summary"))
    concepts_colour_reliance = property(lambda self: self.csv(CONCEPT_TABLES["colour_reliance"]))
    concepts_tcav = property(lambda self: self.csv(CONCEPT_TABLES["tcav"]))
    concepts_tcav_untrained = property(lambda self: self.csv(CONCEPT_TABLES["tcav_untrained"]))
    concepts_detectors = property(lambda self: self.csv(CONCEPT_TABLES["detectors"]))
    concepts_top_units = property(lambda self: self.csv(CONCEPT_TABLES["top_units"]))
    transfer = property(lambda self: self.csv(TRANSFER_TABLES["depths"]))
    # computed by the report itself
    findings = property(lambda self: self.csv("findings"))
    setup = property(lambda self: self.csv("setup"))
    stage_timings = property(lambda self: self.csv("stage_timings"))
    per_class_recall = property(lambda self: self.csv("per_class_recall"))
    robustness_families = property(lambda self: self.csv("robustness_families"))
    explain_quality_by_method = property(lambda self: self.csv("explain_quality_by_method"))
    xai_methods = property(lambda self: self.csv("xai_methods"))
    final_ranking = property(lambda self: self.csv("final_ranking"))
    transfer_summary = property(lambda self: self.csv("transfer_summary"))


@dataclass(frozen=True)
class Figures:
    """``figures/``: run-level figures, named by the stage that draws them."""

    folder: Path

    def png(self, name: str) -> Path:
        return self.folder / f"{name}.png"

    def pattern(self, prefix: str) -> Path:
        """Every figure whose name starts with ``prefix`` (a glob pattern)."""
        return self.folder / f"{prefix}*.png"


@dataclass(frozen=True)
class RunLayout:
    """``runs/<experiment>/``."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def manifest_lock(self) -> Path:
        """Held while a process rewrites the manifest, so parallel workers never lose each other's records."""
        return self.root / ".manifest.lock"

    def claim(self, unit: str) -> Path:
        """The lock file a process holds while it computes ``unit`` (released by the OS if it dies)."""
        return self.claims / f"{unit}.lock"

    @property
    def claims(self) -> Path:
        return self.root / ".claims"

    def failure(self, unit: str) -> Path:
        """The traceback of a unit that failed after its retries (removed when it later succeeds)."""
        return self.failures / f"{unit}.txt"

    @property
    def failures(self) -> Path:
        return self.root / "failures"

    @property
    def jobs(self) -> Path:
        """Submitit's job folders (pickled unit requests, Slurm logs)."""
        return self.root / "jobs"

    def unit_log(self, unit: str) -> Path:
        """What an executor's worker printed while it computed ``unit``."""
        return self.root / "logs" / f"{unit}.log"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def model(self, run_id: str) -> ModelFiles:
        return ModelFiles(self.models / run_id)

    @property
    def tables(self) -> Tables:
        return Tables(self.root / "tables")

    @property
    def figures(self) -> Figures:
        return Figures(self.root / "figures")

    @property
    def concept_probes(self) -> Path:
        return self.root / "concepts" / "probes.pt"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def report_markdown(self) -> Path:
        return self.root / "report.md"

    def relative(self, path: Path) -> str:
        """``path`` as the run-relative name the report cites and links."""
        return Path(path).relative_to(self.root).as_posix()


def unit_name(stage: str, run_id: str) -> str:
    """The manifest's name of ``stage``'s unit for one model (``evaluate/<run id>``)."""
    return f"{stage}/{run_id}"


RELATIVE = RunLayout(Path())
"""The layout with an empty root: run-relative names (``RELATIVE.tables.comparison.as_posix()``)."""
MODEL_RELATIVE = ModelFiles(Path())
"""One model's files relative to its folder (``MODEL_RELATIVE.eval.metrics`` -> ``eval/metrics.json``)."""

"""Command line: a thin typer layer over the pipeline; user errors print one line and exit 2."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from xaiquest.config import PROFILES, ExperimentConfig, ModelSpec, load_config
from xaiquest.errors import XaiquestError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train a CNN zoo on CIFAR-10 and audit it beyond accuracy.")
list_app = typer.Typer(no_args_is_help=True, help="List what the registries hold.")
app.add_typer(list_app, name="list")
err = Console(stderr=True)

ConfigArg = typer.Argument(None, help=f"YAML config file or profile name ({', '.join(PROFILES)}); default: quick")
DataOpt = typer.Option(None, "--data", help="CIFAR-10 location: cifar-10-batches-py folder or train/ test/ image folders "
                       "(default: $XAIQUEST_DATA, else download)")
Cifar10cOpt = typer.Option(None, "--cifar10c", help="folder of real CIFAR-10-C .npy files (default: generate on the fly)")
RunsOpt = typer.Option(Path("runs"), "--runs-dir", help="where run directories are created")
PortOpt = typer.Option(7860, "--port", help="localhost port to serve on")
RunDataOpt = typer.Option(None, "--data", help="CIFAR-10 location, if it moved since the run (default: the run's own)")


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn user mistakes and Ctrl-C into one clear line and a non-zero exit."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except XaiquestError as error:
            err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except OSError as error:  # the file system refused (read-only, full, missing folder) outside the store
            where = f" {error.filename}" if error.filename else ""
            err.print(f"[bold red]error:[/] cannot access{where} ({error.strerror or error}); check that the path "
                      "exists and is writable and that the disk has space", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]: finished work is kept; rerun the same command to resume")
            raise typer.Exit(130) from None

    return wrapper


ExecutorOpt = typer.Option(None, "--executor", help="where units run: inline (default), local (process pool), ray, "
                           "submitit (Slurm); overrides executor.backend")
WorkersOpt = typer.Option(None, "--workers", min=1, help="units at once (local, ray, submitit); overrides executor.workers")
RetriesOpt = typer.Option(None, "--retries", min=0, help="tries again per failed unit; overrides executor.retries")
RayAddressOpt = typer.Option(None, "--ray-address", help="Ray cluster address (default: start Ray here)")
PartitionOpt = typer.Option(None, "--slurm-partition", help="Slurm partition for --executor submitit")


def _run_stages(config: Optional[str], data: Optional[Path], runs_dir: Path, stages: Optional[list[str]],
                cifar10c: Optional[Path] = None, executor: Optional[dict[str, Any]] = None) -> None:
    """``stages`` None = every stage, in order; ``executor`` = the options given for the executor section."""
    overrides: dict[str, Any] = {"data": {"source": str(data)}} if data is not None else {}
    if cifar10c is not None:
        overrides["robustness"] = {"cifar10c": str(cifar10c)}
    if executor:
        overrides["executor"] = executor
    parsed = load_config(config, overrides)  # a schema mistake is reported before torch even loads

    from xaiquest.pipeline import STAGES, run_pipeline

    run_pipeline(parsed, runs_dir, list(STAGES) if stages is None else stages)


@app.command()
@user_errors
def run(config: Optional[str] = ConfigArg, data: Optional[Path] = DataOpt, runs_dir: Path = RunsOpt,
        cifar10c: Optional[Path] = Cifar10cOpt, executor: Optional[str] = ExecutorOpt, workers: Optional[int] = WorkersOpt,
        retries: Optional[int] = RetriesOpt, ray_address: Optional[str] = RayAddressOpt,
        slurm_partition: Optional[str] = PartitionOpt) -> None:
    """Run the whole audit (resumes and skips finished work), in this process or spread over workers."""
    given = {"backend": executor, "workers": workers, "retries": retries, "ray_address": ray_address,
             "slurm": {"partition": slurm_partition} if slurm_partition else None}
    _run_stages(config, data, runs_dir, None, cifar10c, {name: value for name, value in given.items() if value is not None})


@app.command()
@user_errors
def train(config: Optional[str] = ConfigArg, data: Optional[Path] = DataOpt, runs_dir: Path = RunsOpt) -> None:
    """Train every model x variant x seed of the config."""
    _run_stages(config, data, runs_dir, ["train"])


@app.command()
@user_errors
def evaluate(config: Optional[str] = ConfigArg, data: Optional[Path] = DataOpt, runs_dir: Path = RunsOpt) -> None:
    """Stage-1 metrics for trained models, and the comparison table."""
    _run_stages(config, data, runs_dir, ["evaluate", "compare"])


@app.command()
@user_errors
def calibrate(config: Optional[str] = ConfigArg, data: Optional[Path] = DataOpt, runs_dir: Path = RunsOpt) -> None:
    """Calibration (ECE, MCE, Brier, NLL, reliability diagrams) before and after temperature scaling."""
    _run_stages(config, data, runs_dir, ["calibrate", "compare"])


@app.command()
@user_errors
def robustness(config: Optional[str] = ConfigArg, data: Optional[Path] = DataOpt, runs_dir: Path = RunsOpt,
               cifar10c: Optional[Path] = Cifar10cOpt) -> None:
    """Accuracy, F1 and ECE under the 19 CIFAR-10-C corruptions x 5 severities; mCE."""
    _run_stages(config, data, runs_dir, ["robustness", "compare"], cifar10c)


@app.command()
@user_errors
def report(run_dir: Path = typer.Argument(..., help="a run directory, e.g. runs/quick")) -> None:
    """Write report.html (self-contained) and report.md into a finished run directory."""
    from xaiquest.report.stage import write_report

    html, markdown = write_report(run_dir)
    err.print(f"report: wrote {html} and {markdown}")


@app.command("explain")
@user_errors
def explain_command(config: Optional[str] = ConfigArg, data: Optional[Path] = DataOpt, runs_dir: Path = RunsOpt) -> None:
    """Explanations of every model with every method, their quality metrics, grids and tables."""
    _run_stages(config, data, runs_dir, ["explain"])


@app.command()
@user_errors
def stress(config: Optional[str] = ConfigArg, data: Optional[Path] = DataOpt, runs_dir: Path = RunsOpt) -> None:
    """Stress tests and bias probes (occlusion, channels, background, noise/blur, planted patch), layer-wise view."""
    _run_stages(config, data, runs_dir, ["stress", "compare"])


@app.command()
@user_errors
def concepts(config: Optional[str] = ConfigArg, data: Optional[Path] = DataOpt, runs_dir: Path = RunsOpt) -> None:
    """Shape/texture/colour bias, TCAV with significance tests, and dissection of every model."""
    _run_stages(config, data, runs_dir, ["concepts"])


@app.command()
@user_errors
def transfer(config: Optional[str] = ConfigArg, data: Optional[Path] = DataOpt, runs_dir: Path = RunsOpt) -> None:
    """Models trained from weights (init, pretrained) against those weights: CKA and map agreement per depth."""
    _run_stages(config, data, runs_dir, ["transfer"])


ModelOpt = typer.Option(None, "--model", help="zoo model or tv:<torchvision name>")
WeightsOpt = typer.Option(None, "--weights", help="state_dict file (.pt/.pth/.safetensors)")
ClassesOpt = typer.Option(None, "--classes", help="class names, one a line, in output order "
                          "(default: torchvision's ImageNet names for tv: models)")
ImageSizeOpt = typer.Option(None, "--image-size", help="default: 224 for tv: models, else 32")
MeanOpt = typer.Option(None, "--mean", help="input mean r,g,b in [0,1] (default: ImageNet's for tv:)")
StdOpt = typer.Option(None, "--std", help="input std r,g,b, with --mean")


@app.command()
@user_errors
def dashboard(run_dir: Optional[Path] = typer.Argument(None, help="a run directory, e.g. runs/quick (or --model)"),
              port: int = PortOpt, data: Optional[Path] = RunDataOpt, model: Optional[str] = ModelOpt,
              weights: Optional[Path] = WeightsOpt, classes: Optional[Path] = ClassesOpt,
              image_size: Optional[int] = ImageSizeOpt,
              images: Optional[Path] = typer.Option(None, "--images", help="folder of images to pick from (with --model)"),
              mean: Optional[str] = MeanOpt, std: Optional[str] = StdOpt) -> None:
    """Interactive explorer in the browser (Gradio on localhost): a run's models, or one --model on any image."""
    model_options = {"--weights": weights, "--classes": classes, "--image-size": image_size, "--images": images,
                     "--mean": mean, "--std": std}
    _check_dashboard_source(run_dir, model, data, [flag for flag, value in model_options.items() if value is not None])
    if importlib.util.find_spec("gradio") is None:
        raise XaiquestError("the dashboard needs gradio: run make install, or pip install gradio")
    from xaiquest.dashboard.app import serve
    from xaiquest.dashboard.model_session import open_model
    from xaiquest.dashboard.session import Dashboard, open_run
    from xaiquest.data import normalised_by

    if model is not None:
        session = open_model(model, weights, classes, image_size, images, _normalisation(mean, std))
        normalisation = session.loaded.normalisation
    else:
        session = Dashboard(open_run(run_dir, data))
        normalisation = session.run.data.normalisation
    err.print(f"dashboard: http://127.0.0.1:{port} (Ctrl-C stops it)")
    with normalised_by(normalisation):
        serve(session, port)


def _check_dashboard_source(run_dir: Optional[Path], model: Optional[str], data: Optional[Path], model_flags: list[str]) -> None:
    """Exactly one of RUN_DIR and --model, each with only its own options."""
    if (run_dir is None) == (model is None):
        raise XaiquestError("pass a run directory (xaiquest dashboard runs/quick) or --model NAME, not both or neither")
    if run_dir is not None and model_flags:
        raise XaiquestError(f"{model_flags[0]} goes with --model, not with a run directory")
    if model is not None and data is not None:
        raise XaiquestError("--data goes with a run directory; with --model pick images with --images DIR or upload them")


@app.command("explain-image")
@user_errors
def explain_image(
    images: list[Path] = typer.Argument(..., help="image files to explain"),
    model: str = typer.Option(..., "--model", help="zoo model or tv:<torchvision name>"),
    weights: Optional[Path] = WeightsOpt,
    classes: Optional[Path] = ClassesOpt,
    methods: str = typer.Option("gradcam,integrated_gradients", "--methods", help="comma-separated explainers"),
    layer: Optional[str] = typer.Option(None, "--layer", help="named depth or module path (default: the last depth)"),
    out: Path = typer.Option(Path("explain-image"), "--out", help="folder for the figures, JSON and CSV"),
    image_size: Optional[int] = ImageSizeOpt,
    mean: Optional[str] = MeanOpt,
    std: Optional[str] = StdOpt,
) -> None:
    """Explain image files with any model: one figure per image (top-5, heatmaps) and each map's deletion/insertion AUC."""
    from xaiquest.explain.single import explain_images, load_any_model

    loaded = load_any_model(model, weights, classes, image_size, _normalisation(mean, std))
    table = explain_images(images, loaded, [m.strip() for m in methods.split(",") if m.strip()], layer, out)
    for row in table.to_dict("records"):
        err.print(f"{Path(row['image']).name}: {row['method']} -> {row['class']} ({row['probability']:.1%}); "
                  f"deletion AUC {row['deletion_auc']:.3f}, insertion AUC {row['insertion_auc']:.3f}", highlight=False)
    err.print(f"explain-image: wrote {out}/")


def _normalisation(mean: Optional[str], std: Optional[str]) -> Any:
    """``--mean``/``--std`` as a Normalisation (both or neither)."""
    if mean is None and std is None:
        return None
    from xaiquest.data import Normalisation

    try:
        values = [tuple(float(v) for v in text.split(",")) for text in (mean or "", std or "")]
    except ValueError:
        values = []
    if len(values) != 2 or any(len(v) != 3 for v in values) or min(values[1]) <= 0:
        raise XaiquestError(f"--mean and --std need three comma-separated numbers each (std > 0), got {mean!r} and {std!r}")
    return Normalisation(values[0], values[1])  # type: ignore[arg-type]


@list_app.command("models")
@user_errors
def list_models() -> None:
    """Models of the zoo (any torchvision model also works as tv:<name>)."""
    from xaiquest.models import describe_models

    table = Table("name", "params", "description")
    for name, params, description in describe_models():
        table.add_row(name, "" if params is None else f"{params / 1e6:.2f} M", description)
    Console(width=200).print(table)


@list_app.command("profiles")
def list_profiles() -> None:
    """Built-in experiment profiles."""
    from xaiquest.config import load_config as load

    for name in PROFILES:
        cfg = load(name)
        models = ", ".join(_epochs(cfg, spec) for spec in cfg.models)
        Console(width=200).print(f"{name}: models {models}; variants {', '.join(cfg.variants)}; seeds {cfg.seeds}")


def _epochs(config: ExperimentConfig, spec: ModelSpec) -> str:
    """``name N epochs`` (``N-M`` when the experiment's variants train it for different lengths)."""
    epochs = sorted({config.train_config(spec, variant).epochs for variant in config.variants
                     if spec.variants is None or variant in spec.variants})
    return f"{spec.name} {'-'.join(map(str, epochs[:: max(len(epochs) - 1, 1)]))} epochs"

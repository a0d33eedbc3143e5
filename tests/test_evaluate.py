"""Stage-1 artifacts on disk and the cross-model comparison table."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from xaiquest.errors import DataError
from xaiquest.evaluate import comparison_table, write_comparison, write_evaluation
from xaiquest.evaluate.artifacts import confusion_figure
from xaiquest.evaluate.compare import comparison_markdown
from xaiquest.figures.training import plot_training_curves
from xaiquest.layout import EvalFiles, Tables
from xaiquest.metrics import classification_metrics, top_confident_mistakes

CLASSES = ["airplane", "automobile", "bird"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def evaluated():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3]])
    labels = torch.tensor([0, 0, 1, 1, 2])
    return classification_metrics(probs, labels, CLASSES), top_confident_mistakes(probs, labels, k=5)


def test_write_evaluation_writes_every_artifact(tmp_path, evaluated):
    metrics, mistakes = evaluated
    out = EvalFiles(tmp_path / "resnet18")
    write_evaluation(metrics, mistakes, CLASSES, out)

    assert sorted(out.folder.iterdir()) == sorted([
        out.confusion, out.confusion_figure, out.metrics, out.misclassified, out.per_class,
    ])  # and no temp files left behind
    assert json.loads(out.metrics.read_text()) == metrics.to_dict()

    confusion = pd.read_csv(out.confusion, index_col=0)
    assert list(confusion.index) == CLASSES == list(confusion.columns)
    np.testing.assert_array_equal(confusion.to_numpy(), metrics.confusion)

    per_class = pd.read_csv(out.per_class, index_col="class")
    pd.testing.assert_frame_equal(per_class, metrics.per_class, check_dtype=False, atol=1e-6)

    written = pd.read_csv(out.misclassified)
    assert written["index"].tolist() == mistakes["index"].tolist() == [1, 4, 3]
    assert written["true_class"].tolist() == ["airplane", "bird", "automobile"]
    assert written["predicted_class"].tolist() == ["automobile", "automobile", "bird"]

    assert out.confusion_figure.read_bytes().startswith(PNG_SIGNATURE)


def test_the_confusion_figure_stays_legible_at_100_classes(tmp_path):
    labels = torch.arange(100).repeat(3)
    logits = torch.randn(300, 100, generator=torch.Generator().manual_seed(0)) + 4 * torch.nn.functional.one_hot(labels, 100)
    classes = [f"class_{i:03d}" for i in range(100)]
    metrics = classification_metrics(logits.softmax(1), labels, classes)
    ax = (figure := confusion_figure(metrics.confusion, classes, "100 classes")).axes[0]
    assert not ax.texts  # no per-cell counts: 10,000 numbers are noise (they are in confusion.csv)
    assert max(figure.get_size_inches()) <= 16
    names = [label.get_text() for label in ax.get_yticklabels()]
    assert len(names) == 50 and names[:2] == ["class_000", "class_002"]  # every 2nd class named
    assert all(label.get_fontsize() <= 6 for label in ax.get_xticklabels())
    out = EvalFiles(tmp_path / "wide")
    write_evaluation(metrics, top_confident_mistakes(logits.softmax(1), labels, k=5), classes, out)
    with Image.open(out.confusion_figure) as png:
        assert max(png.size) <= 2600
    assert len(confusion_figure(metrics.confusion[:10, :10], classes[:10], "10 classes").axes[0].texts) == 100


def test_write_evaluation_rejects_wrong_class_names(tmp_path, evaluated):
    metrics, mistakes = evaluated
    with pytest.raises(DataError):
        write_evaluation(metrics, mistakes, CLASSES[:2], EvalFiles(tmp_path))


def test_plot_training_curves_without_validation(tmp_path):
    history = pd.DataFrame(
        {"epoch": [1, 2, 3], "train_loss": [2.0, 1.5, 1.2], "train_acc": [0.3, 0.5, 0.6],
         "val_loss": np.nan, "val_acc": np.nan}
    )
    path = tmp_path / "curves.png"
    plot_training_curves(history, path, title="fastnet seed 0")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    with pytest.raises(DataError):
        plot_training_curves(history.drop(columns="val_acc"), path, title="x")


def _run(model, seed, accuracy, **overrides):
    row = {
        "model": model, "variant": "baseline", "seed": seed,
        "accuracy": accuracy, "macro_precision": accuracy - 0.01, "macro_recall": accuracy,
        "macro_f1": accuracy - 0.005, "macro_auc": 0.98,
        "optimizer": "sgd", "lr_schedule": "onecycle", "epochs": 30, "batch_size": 128,
        "augmentations": ["crop", "flip"], "params": 11_200_000, "train_time_s": 100.0 + seed,
    }
    return row | overrides


RESNET_ACC = [0.8412 - 0.0031, 0.8412, 0.8412 + 0.0031]  # mean 84.12 %, sample std 0.31 %
ROWS = [_run("resnet18", seed, acc) for seed, acc in enumerate(RESNET_ACC)] + [_run("vgg11", 0, 0.90)]


def test_comparison_table_mean_and_sample_std_over_seeds():
    table = comparison_table(ROWS)
    assert table["model"].tolist() == ["vgg11", "resnet18"]  # accuracy descending
    resnet = table.set_index("model").loc["resnet18"]
    assert resnet["n_seeds"] == 3
    assert resnet["seeds"] == "0,1,2"
    assert resnet["accuracy_mean"] == pytest.approx(np.mean(RESNET_ACC))
    assert resnet["accuracy_std"] == pytest.approx(np.std(RESNET_ACC, ddof=1))
    assert resnet["macro_f1_std"] == pytest.approx(np.std(RESNET_ACC, ddof=1))
    assert resnet["train_time_s"] == pytest.approx(101.0)
    assert resnet["augmentations"] == "crop, flip"
    assert (resnet["optimizer"], resnet["epochs"]) == ("sgd", 30)


def test_comparison_table_single_seed_has_undefined_std():
    vgg = comparison_table(ROWS).set_index("model").loc["vgg11"]
    assert vgg["n_seeds"] == 1
    assert vgg["accuracy_mean"] == pytest.approx(0.90)
    assert np.isnan(vgg["accuracy_std"])


def test_comparison_table_keeps_extra_metric_columns():
    table = comparison_table([row | {"ece": 0.05 + row["seed"] / 100} for row in ROWS])
    assert table.set_index("model").loc["resnet18", "ece_mean"] == pytest.approx(0.06)


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [_run("resnet18", 0, 0.8), _run("resnet18", 0, 0.81)],  # same run twice
        [_run("resnet18", 0, 0.8), _run("resnet18", 1, 0.81, optimizer="adam")],  # mixed recipes
        [{"model": "resnet18", "seed": 0, "accuracy": 0.8}],  # no variant
    ],
)
def test_comparison_table_rejects_inconsistent_rows(rows):
    with pytest.raises(DataError):
        comparison_table(rows)


def test_write_comparison(tmp_path):
    tables = Tables(tmp_path)
    csv_path, md_path = write_comparison(ROWS, tables)
    assert (csv_path, md_path) == (tables.comparison, tables.markdown_of(tables.comparison))

    csv = pd.read_csv(csv_path)
    assert csv["model"].tolist() == ["vgg11", "resnet18"]
    assert csv.loc[1, "accuracy_std"] == pytest.approx(np.std(RESNET_ACC, ddof=1))
    assert np.isnan(csv.loc[0, "accuracy_std"])

    markdown = md_path.read_text()
    assert "Accuracy (%)" in markdown
    assert "84.12 ± 0.31" in markdown
    assert "| 90.00 " in markdown  # single seed: mean only, trailing zeros kept
    assert "11.20" in markdown  # params in millions
    assert markdown.index("vgg11") < markdown.index("resnet18")


def test_the_comparison_names_the_calibration_and_robustness_columns_it_quotes():
    rows = [{"model": "m", "variant": "baseline", "seed": 0, "accuracy": 0.8, "ece": 0.02, "ece_after_ts": 0.01,
             "mean_corruption_accuracy": 0.61, "mce": 1.0}]
    header = comparison_markdown(comparison_table(rows)).splitlines()[0]
    assert all(label in header for label in ("| ECE ", "ECE after T-scaling", "Corruption accuracy (%)", "| mCE "))
    assert "61.00" in comparison_markdown(comparison_table(rows))

"""Calibration and robustness figures render to PNG with the expected axes and lines."""

import pandas as pd
import pytest
import torch

from xaiquest.errors import DataError
from xaiquest.figures import save_figure
from xaiquest.figures.calibration import before_after_figure, reliability_figure, reliability_overlay_figure
from xaiquest.figures.robustness import severity_figure
from xaiquest.metrics.calibration import reliability_bins

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAMILIES = {"noise": ["gaussian_noise", "shot_noise"], "blur": ["motion_blur"], "weather": ["fog"]}


def _bins(scale: float, seed: int = 0) -> pd.DataFrame:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2000, 10, generator=generator)
    labels = torch.multinomial(logits.softmax(1), 1, generator=generator).squeeze(1)
    return reliability_bins((logits * scale).softmax(1), labels)


def _saved(fig, path):
    save_figure(fig, path)
    return path.read_bytes().startswith(PNG_SIGNATURE)


def test_reliability_figure(tmp_path):
    bins = _bins(scale=3.0)
    fig = reliability_figure(bins, "resnet18", ece=0.1234)
    assert _saved(fig, tmp_path / "reliability.png")
    top, histogram = fig.axes
    assert "12.34%" in top.get_title()
    filled = int((bins["count"] > 0).sum())
    assert [len(container) for container in top.containers] == [filled, filled]  # accuracy bars, gap bars
    assert len(top.lines) == 1  # the diagonal
    assert len(histogram.patches) == len(bins) and len(histogram.lines) == 2


def test_before_after_figure(tmp_path):
    fig = before_after_figure(_bins(3.0), _bins(1.0), ece_before=0.2, ece_after=0.01, temperature=3.0, title="vgg11")
    assert _saved(fig, tmp_path / "before_after.png")
    assert len(fig.axes) == 4
    assert "T = 3.00" in fig.axes[1].get_title()


def test_reliability_overlay_figure(tmp_path):
    fig = reliability_overlay_figure({"a": _bins(1.0), "b": _bins(2.0), "c": _bins(0.5)})
    assert _saved(fig, tmp_path / "overlay.png")
    (ax,) = fig.axes
    assert len(ax.lines) == 3 + 1  # one curve per model plus the diagonal
    with pytest.raises(DataError):
        reliability_overlay_figure({"a": _bins(1.0).drop(columns="gap")})


def _severity_table(with_clean: bool) -> pd.DataFrame:
    rows = [
        {"model": model, "corruption": corruption, "severity": severity, "value": 0.9 - 0.1 * severity - offset}
        for offset, model in ((0.0, "resnet18"), (0.05, "vgg11"))
        for corruption in ["gaussian_noise", "shot_noise", "motion_blur", "fog", "pixelate"]
        for severity in range(1, 6)
    ]
    if with_clean:
        rows += [{"model": "resnet18", "corruption": "clean", "severity": 0, "value": 0.95},
                 {"model": "vgg11", "corruption": "clean", "severity": 0, "value": 0.93}]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("with_clean", [True, False])
def test_severity_figure(tmp_path, with_clean):
    fig = severity_figure(_severity_table(with_clean), FAMILIES | {"digital": ["contrast"]}, ylabel="accuracy")
    assert _saved(fig, tmp_path / "severity.png")
    assert [ax.get_title() for ax in fig.axes] == ["noise", "blur", "weather"]
    noise = fig.axes[0]
    assert len(noise.lines) == 2 * (2 + 1)  # per model: one thin line per corruption and the thick mean
    first_x = noise.lines[0].get_xdata()
    assert list(first_x) == ([0, 1, 2, 3, 4, 5] if with_clean else [1, 2, 3, 4, 5])


def test_severity_figure_rejects_ambiguous_clean_values():
    table = _severity_table(with_clean=True)
    table.loc[len(table)] = {"model": "vgg11", "corruption": "fog", "severity": 0, "value": 0.5}
    with pytest.raises(DataError, match="vgg11"):
        severity_figure(table, FAMILIES, ylabel="accuracy")

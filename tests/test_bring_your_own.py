"""Models the audit did not train: a state_dict trained with plain PyTorch is audited as it is, and
bad weights files end with one line, exit 2 and nothing marked complete."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import yaml
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from xaiquest.cli import app
from xaiquest.config import ModelSpec, load_config
from xaiquest.errors import ConfigError
from xaiquest.explainers import explain
from xaiquest.layout import RunLayout
from xaiquest.models import build_model, named_depths
from xaiquest.runs import build_run_model, prepare_data
from xaiquest.store import RunStore
from xaiquest.validation import check_config

CLASSES = ["alpha", "beta", "gamma"]
SIZE = 64  # at >= 64 px tv: models are torchvision's own networks, so a plain state_dict fits
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _write_folder(root: Path, per_class: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            pixels = np.clip(rng.normal(60 * label + 50, 30, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index:02d}.png")


def _plain_tensors(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The folder read the way a user's own script would: PIL, sorted names, their normalisation."""
    images, labels = [], []
    for label, name in enumerate(CLASSES):
        for file in sorted((folder / name).iterdir()):
            pixels = torch.from_numpy(np.array(Image.open(file).convert("RGB"))).permute(2, 0, 1).float() / 255
            images.append((pixels - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1))
            labels.append(label)
    return torch.stack(images), torch.tensor(labels)


@pytest.fixture(scope="module")
def user_model(tmp_path_factory) -> tuple[Path, Path, torch.Tensor]:
    """Data folders, the state_dict a user trained with plain PyTorch, and its plain test logits."""
    root = tmp_path_factory.mktemp("byo")
    _write_folder(root / "data" / "train", per_class=8, seed=0)
    _write_folder(root / "data" / "test", per_class=4, seed=1)
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=len(CLASSES))
    x, y = _plain_tensors(root / "data" / "train")
    optimiser = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    net.train()
    for _ in range(3):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimiser.step()
    net.eval()
    with torch.no_grad():
        logits = net(_plain_tensors(root / "data" / "test")[0])
    torch.save(net.state_dict(), root / "resnet18.pt")
    return root / "data", root / "resnet18.pt", logits


def _config(tmp_path: Path, data: Path, weights: Path, stages_enabled: bool = False, **model: object) -> Path:
    config = {
        "name": "byo", "profile": "smoke", "threads": 2,
        "models": [{"name": "tv:resnet18", "weights": str(weights), **model}],
        "data": {"source": str(data), "val_size": 3, "train_subset": None, "test_subset": None,
                 "mean": list(MEAN), "std": list(STD), "cache_dir": str(tmp_path / "cache")},
        "eval": {"tta": "none"},  # the plain evaluation has no flip test-time augmentation
        "robustness": {"enabled": stages_enabled}, "explain": {"enabled": stages_enabled},
        "stress": {"enabled": stages_enabled},
    }
    path = tmp_path / "byo.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _train_and_evaluate(config: Path, runs: Path):
    trained = _invoke("train", str(config), "--runs-dir", str(runs))
    return trained if trained.exit_code else _invoke("evaluate", str(config), "--runs-dir", str(runs))


def test_plain_pytorch_weights_are_audited_without_training(tmp_path, user_model):
    data, weights, plain_logits = user_model
    result = _train_and_evaluate(_config(tmp_path, data, weights), tmp_path / "runs")
    assert result.exit_code == 0, result.output
    run = RunLayout(tmp_path / "runs" / "byo")
    files = run.model("tv-resnet18__baseline__s0")
    setup = json.loads(files.train_record.read_text())
    assert setup["train_time_s"] == 0 and setup["imported_from"] == str(weights)
    assert not files.history.exists()  # nothing was trained
    audited = torch.load(files.eval.logits)["test"]
    torch.testing.assert_close(audited, plain_logits, rtol=0, atol=1e-5)
    metrics = json.loads(files.eval.metrics.read_text())
    plain_accuracy = (plain_logits.argmax(1) == torch.arange(3).repeat_interleave(4)).float().mean().item()
    assert metrics["accuracy"] == pytest.approx(plain_accuracy)
    manifest = json.loads(run.manifest.read_text())
    assert manifest["dataset"]["classes"] == CLASSES and manifest["dataset"]["image_size"] == SIZE
    assert manifest["data_path"] == str(Path(data).resolve())
    # the imported weights are an artifact like trained ones: hashed, so evaluate's fingerprint covers them
    store = RunStore(run.root)
    assert store.artifact_hash("train/tv-resnet18__baseline__s0", files.weights) is not None


def _fails_cleanly(tmp_path: Path, config: Path, *fragments: str) -> None:
    result = _invoke("train", str(config), "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2, result.output
    message = result.output[result.output.index("error:"):].strip()
    assert "\n" not in message, message
    flat = message
    for fragment in fragments:
        assert fragment in flat, flat
    assert not (tmp_path / "runs").exists(), "a file that does not fit fails before the run directory opens"


def test_weights_of_another_architecture_name_the_missing_and_unexpected_keys(tmp_path, user_model):
    data, _, _ = user_model
    other = tmp_path / "vgg.pt"
    torch.save(build_model("vgg_small", 3).state_dict(), other)
    _fails_cleanly(tmp_path, _config(tmp_path, data, other), "do not fit tv:resnet18", "missing keys", "unexpected keys")


def test_weights_for_another_class_count_name_the_tensor_and_both_shapes(tmp_path, user_model):
    data, _, _ = user_model
    ten = tmp_path / "ten.pt"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), ten)
    _fails_cleanly(tmp_path, _config(tmp_path, data, ten), "fc.weight is [10, 512]", "[3, 512]")


def test_a_pickled_whole_model_is_refused_without_unpickling(tmp_path, user_model):
    data, _, _ = user_model
    whole = tmp_path / "whole.pt"
    torch.save(torchvision.models.resnet18(num_classes=3), whole)
    _fails_cleanly(tmp_path, _config(tmp_path, data, whole), "unsafe unpickling", "state_dict()")


def test_safetensors_weights_load_like_the_state_dict(tmp_path, user_model):
    data, weights, plain_logits = user_model
    converted = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in torch.load(weights).items()}, converted)
    result = _train_and_evaluate(_config(tmp_path, data, converted), tmp_path / "runs")
    assert result.exit_code == 0, result.output
    audited = torch.load(RunLayout(tmp_path / "runs" / "byo").model("tv-resnet18__baseline__s0").eval.logits)
    torch.testing.assert_close(audited["test"], plain_logits, rtol=0, atol=1e-5)


def test_tv_models_keep_the_imagenet_stem_from_64_px_and_adapt_it_below():
    small, large = build_model("tv:resnet18", 3, image_size=32), build_model("tv:resnet18", 3, image_size=64)
    assert small.net.conv1.kernel_size == (3, 3) and isinstance(small.net.maxpool, torch.nn.Identity)
    assert large.net.conv1.kernel_size == (7, 7) and large.net.conv1.stride == (2, 2)
    assert set(torchvision.models.resnet18(num_classes=3).state_dict()) == set(large.net.state_dict())
    assert list(named_depths(large)) == ["stem", "stage1", "stage2", "stage3", "stage4"]


def test_depths_can_be_named_by_module_path(tmp_path, user_model):
    data, weights, _ = user_model
    config = _config(tmp_path, data, weights, depths={"early": "net.layer1", "late": "net.layer4"})
    result = _invoke("train", str(config), "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    bad = _config(tmp_path, data, weights, depths={"late": "net.layer9"})
    _fails_cleanly(tmp_path / "other", bad, "no module 'net.layer9'")


def test_pretrained_offline_names_the_cache_file_and_folder(tmp_path, user_model, monkeypatch):
    data, _, _ = user_model
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    config = _config(tmp_path, data, tmp_path / "unused.pt")
    raw = yaml.safe_load(config.read_text())
    raw["models"] = [{"name": "tv:resnet18", "pretrained": True}]
    config.write_text(yaml.safe_dump(raw))
    folder = tmp_path / "torch-home" / "hub" / "checkpoints"
    _fails_cleanly(tmp_path, config, "resnet18-f37072fd.pth", str(folder))


def test_pretrained_reads_torchvisions_file_from_the_cache_and_init_reads_a_file(tmp_path, user_model, monkeypatch):
    data, weights, _ = user_model
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    folder = tmp_path / "torch-home" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    source = torchvision.models.resnet18()  # 1000 classes: the ImageNet file's shapes
    torch.save(source.state_dict(), folder / "resnet18-f37072fd.pth")
    audit_data = prepare_data(load_config(str(_config(tmp_path, data, weights))))
    started = build_run_model(ModelSpec(name="tv:resnet18", pretrained=True), audit_data, start=True)
    assert torch.equal(started.net.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    assert started.net.fc.out_features == 3  # a fresh classifier for the data's classes
    from_file = build_run_model(ModelSpec(name="tv:resnet18", init=str(weights)), audit_data, start=True)
    assert torch.equal(from_file.net.fc.weight, torch.load(weights)["fc.weight"])
    with pytest.raises(Exception, match="exclude each other"):
        ModelSpec(name="tv:resnet18", init=str(weights), weights=str(weights))


@pytest.fixture(scope="module")
def scripted_model(user_model, tmp_path_factory) -> tuple[Path, torch.jit.ScriptModule, torchvision.models.ResNet]:
    """The user's trained network saved as TorchScript (its class need not be importable to audit it)."""
    _, weights, _ = user_model
    net = torchvision.models.resnet18(num_classes=len(CLASSES))
    net.load_state_dict(torch.load(weights))
    net.eval()
    file = tmp_path_factory.mktemp("scripted") / "resnet18.torchscript.pt"
    torch.jit.script(net).save(str(file))
    return file, torch.jit.load(str(file)), net


def _scripted_config(tmp_path: Path, data: Path, file: Path, **changes: object) -> Path:
    config = _config(tmp_path, data, file)
    raw = yaml.safe_load(config.read_text())
    raw["models"] = [{"name": "my_net", "torchscript": str(file)}]
    raw["concepts"] = {"enabled": False}  # TCAV and dissection read layers
    raw.update(changes)
    config.write_text(yaml.safe_dump(raw))
    return config


def test_a_torchscript_file_is_audited_as_it_is(tmp_path, user_model, scripted_model):
    data, _, _ = user_model
    file, scripted, _ = scripted_model
    result = _train_and_evaluate(_scripted_config(tmp_path, data, file), tmp_path / "runs")
    assert result.exit_code == 0, result.output
    files = RunLayout(tmp_path / "runs" / "byo").model("my_net__baseline__s0")
    setup = json.loads(files.train_record.read_text())
    assert setup["train_time_s"] == 0 and setup["imported_from"] == str(file) and setup["format"] == "torchscript"
    assert setup["weights_sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    with torch.no_grad():
        own = scripted(_plain_tensors(data / "test")[0])  # the scripted module's own output
    torch.testing.assert_close(torch.load(files.eval.logits)["test"], own, rtol=0, atol=1e-5)


def test_forward_hooks_cannot_watch_a_scripted_modules_layers(scripted_model):
    """Why CAMs refuse TorchScript models: if a torch release accepts these hooks, this fails and the
    refusal (models/torchscript.py) should become depth discovery."""
    _, scripted, _ = scripted_model
    with pytest.raises(RuntimeError, match="not supported on ScriptModules"):
        scripted.layer4.register_forward_hook(lambda *_: None)


def test_gradient_methods_run_on_a_torchscript_model_and_layer_methods_are_refused(tmp_path, user_model, scripted_model):
    data, _, _ = user_model
    file, _, eager = scripted_model
    model = build_run_model(ModelSpec(name="my_net", torchscript=str(file)), prepare_data(load_config(
        str(_scripted_config(tmp_path, data, file)))))
    x, y = _plain_tensors(data / "test")
    x, y = x[:2], y[:2]
    for method in ("saliency", "integrated_gradients"):
        torch.testing.assert_close(explain(method, model, x, y), explain(method, eager, x, y), rtol=1e-4, atol=1e-5)
    for method in ("gradcam", "guided_backprop"):  # guided backprop sees no activation run inside TorchScript
        refusal = f"^{method} works through the model's layers, but a TorchScript model takes no Python forward hooks"
        with pytest.raises(ConfigError, match=refusal):
            explain(method, model, x, y)


def test_a_torchscript_model_with_layer_methods_fails_the_config_check(tmp_path, user_model, scripted_model):
    data, _, _ = user_model
    file, _, _ = scripted_model
    config = load_config(str(_scripted_config(tmp_path, data, file, explain={"methods": ["saliency", "gradcam"]},
                                              stress={"enabled": True}, concepts={"enabled": True})))
    with pytest.raises(ConfigError) as caught:
        check_config(config, None, None)
    message = str(caught.value)
    assert "'explain.methods': gradcam on my_net" in message and "saliency on" not in message
    assert "'stress.enabled'" in message and "'concepts'" in message
    check_config(load_config(str(_scripted_config(
        tmp_path, data, file, explain={"methods": ["saliency", "integrated_gradients"]}))), None, None)


def test_a_file_that_is_no_torchscript_or_misfits_the_classes_fails_in_one_line(tmp_path, user_model, scripted_model):
    data, weights, _ = user_model
    _fails_cleanly(tmp_path, _scripted_config(tmp_path, data, weights), "is not a TorchScript file",
                   "torch.jit.script(model).save(FILE)")
    ten = tmp_path / "ten.pt"
    torch.jit.script(torchvision.models.resnet18(num_classes=10).eval()).save(str(ten))
    _fails_cleanly(tmp_path, _scripted_config(tmp_path, data, ten), "outputs shape [1, 10]", "the data has 3 classes")

"""``train.devices``: DDP replicas train the weights one device trains (checked on CPU with gloo, on a
network without BatchNorm, since SyncBatchNorm runs on GPUs only), and what DDP cannot do is refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from synthetic import class_coloured_split
from xaiquest.config import TrainConfig, load_config
from xaiquest.data import validation_split
from xaiquest.errors import ConfigError
from xaiquest.layout import ModelFiles
from xaiquest.train.trainer import train_model, train_on_devices
from xaiquest.validation import _device_problems, check_config


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4), nn.Conv2d(8, 8, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def test_two_replicas_train_the_weights_one_device_trains(tmp_path):
    """The global batch's shuffle, crops, flips and Mixup are drawn as on one device and split; DDP's averaged
    gradient is then the global batch's. Float sums differ in order only: 1e-5."""
    train, val = validation_split(class_coloured_split(per_class=12, seed=0, num_classes=4), 8, seed=0)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, mixup_alpha=0.4, tensorboard=False, devices=2)
    one = _net()
    alone = train_model(one, train, val, cfg, seed=3, device=torch.device("cpu"), files=ModelFiles(tmp_path / "one"),
                        fingerprint="fp", num_classes=4)
    two = _net()
    replicas = train_on_devices(two, train, val, cfg, seed=3, files=ModelFiles(tmp_path / "two"), fingerprint="fp",
                                num_classes=4, label="two", backend="gloo")

    for name, weight in one.state_dict().items():
        torch.testing.assert_close(two.state_dict()[name], weight, atol=1e-5, rtol=1e-5, msg=name)
    assert not torch.equal(two.state_dict()["7.weight"], _net().state_dict()["7.weight"])  # it did train
    for column in ("train_loss", "train_acc", "val_acc"):
        assert replicas.history[column].tolist() == pytest.approx(alone.history[column].tolist(), abs=1e-5)
    assert ModelFiles(tmp_path / "two").history.exists()  # replica 0 wrote it


@pytest.mark.parametrize(("gpus", "changes", "expected"), [
    (0, {}, "asks for 2 GPUs but this machine has no CUDA GPUs; set train.devices to 1"),
    (4, {"train": {"devices": 4, "batch_size": 510}}, "510 does not split evenly over 4 devices"),
    (2, {"executor": {"backend": "local"}}, "but a local worker holds one; train it with --executor inline"),
    (2, {"train": {"devices": 2, "whiten_bias_epochs": 3}}, "not supported on several devices"),
])
def test_what_ddp_cannot_do_is_one_line(gpus, changes, expected):
    config = load_config("smoke", {"train": {"devices": 2}, **changes})
    problems = list(_device_problems(config, gpus))
    assert len(problems) == 1 and expected in problems[0][1]


def test_a_cpu_machine_refuses_devices_before_any_work():
    config = load_config("smoke", {"train": {"devices": 2}, "device": "cpu"})
    with pytest.raises(ConfigError, match="config field 'train.devices'"):
        check_config(config, 10, 32, quick=True)


def test_the_device_count_is_not_part_of_what_a_model_is():
    """Like threads, it decides where a model trains: a run resumes on another device count."""
    from xaiquest.runs import RunKey, train_fingerprint

    one, two = load_config("smoke"), load_config("smoke", {"train": {"devices": 2}})
    data = type("Data", (), {"fingerprint": "d", "image_size": 32})()
    key = RunKey(one.models[0], "baseline", 0)
    assert train_fingerprint(one, data, key) == train_fingerprint(two, data, RunKey(two.models[0], "baseline", 0))
    assert "devices" not in TrainConfig().model_dump() and TrainConfig(devices=2).model_dump()["devices"] == 2

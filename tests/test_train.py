"""Trainer: learning on easy data, LR schedule shape, and bit-exact resume after a kill."""

from __future__ import annotations

import pytest
import torch

import xaiquest.train.trainer as trainer
from synthetic import class_coloured_split
from xaiquest.config import TrainConfig
from xaiquest.data import Split, validation_split
from xaiquest.inference import prepare_batch, seed_everything
from xaiquest.layout import ModelFiles
from xaiquest.models import build_model
from xaiquest.train.lookahead import EVERY, Lookahead
from xaiquest.train.schedule import build_optimizer, lr_factor

CPU = torch.device("cpu")


def _train(out_dir, cfg, model_name="fastnet", seed=0):
    data = class_coloured_split(per_class=24, seed=0)
    train, val = validation_split(data, 40, seed=0)
    seed_everything(seed)
    model = build_model(model_name, 10)
    outcome = trainer.train_model(model, train, val, cfg, seed=seed, device=CPU, files=ModelFiles(out_dir),
                                  fingerprint="fp", num_classes=10)
    return model, outcome


def test_onecycle_warms_up_then_decays_to_zero():
    factors = [lr_factor(step, 100, 0.25, "onecycle") for step in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[25] == pytest.approx(1.0)
    assert factors[100] == 0.0 and all(a <= b for a, b in zip(factors[:25], factors[1:26]))
    assert all(a >= b for a, b in zip(factors[25:], factors[26:]))
    assert lr_factor(60, 100, 0.2, "cosine") == pytest.approx(0.5)
    assert lr_factor(99, 100, 0.0, "constant") == 1.0


def test_training_learns_easy_data_and_writes_logs(tmp_path):
    cfg = TrainConfig(epochs=4, batch_size=32, lr=0.2, tensorboard=False)
    _, outcome = _train(tmp_path, cfg)
    assert outcome.history["val_acc"].iloc[-1] >= 0.8
    assert list(outcome.history["epoch"]) == [1, 2, 3, 4]
    files = ModelFiles(tmp_path)
    assert files.history.exists() and files.curves.exists()


AIRBENCH_INGREDIENTS = {"lookahead": True, "alt_flip": True, "bn_bias_lr_scale": 64.0, "whiten_bias_epochs": 1}


@pytest.mark.parametrize("variant", [{}, {"mixup_alpha": 0.2, "cutmix_alpha": 1.0}, AIRBENCH_INGREDIENTS])
def test_a_killed_run_resumes_to_the_same_weights(tmp_path, monkeypatch, variant):
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.2, tensorboard=False, **variant)
    reference, _ = _train(tmp_path / "straight", cfg)

    real_log = trainer._log_epoch

    def killed_during_epoch_2(path, history, writer):
        real_log(path, history, writer)
        if len(history) == 2:
            raise KeyboardInterrupt  # after epoch 2 is logged, before its checkpoint

    monkeypatch.setattr(trainer, "_log_epoch", killed_during_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "killed", cfg)
    assert torch.load(ModelFiles(tmp_path / "killed").checkpoint, weights_only=False)["epoch"] == 1
    monkeypatch.setattr(trainer, "_log_epoch", real_log)

    resumed, outcome = _train(tmp_path / "killed", cfg)
    assert list(outcome.history["epoch"]) == [1, 2, 3]
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_checkpoint_of_another_config_is_not_resumed(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=32, tensorboard=False)
    _train(tmp_path, cfg)
    torch.save({"fingerprint": "other", "epoch": 1}, ModelFiles(tmp_path).checkpoint)
    _, outcome = _train(tmp_path, cfg)  # would fail loading the bogus state if it were trusted
    assert len(outcome.history) == 1


def test_the_epoch_estimate_times_at_least_1024_images_and_scales_by_the_batches_of_an_epoch(monkeypatch):
    """The up-front estimate: seconds per timed step x batches per epoch, the timed steps covering >= 1024 images
    (as many warm-up steps untimed before them)."""
    assert trainer.timed_steps(512) == trainer.TIMED_STEPS == 2 and trainer.timed_steps(128) == 8
    clock = iter([10.0, 10.0 + 8 * 0.5])
    monkeypatch.setattr(trainer.time, "perf_counter", lambda: next(clock))
    split = Split(torch.zeros(4000, 3, 8, 8, dtype=torch.uint8), torch.arange(4000) % 2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    cfg = TrainConfig(batch_size=128, channels_last=False)
    assert trainer.estimated_epoch_seconds(model, split, cfg, torch.device("cpu"), 2) == pytest.approx(0.5 * 31)


def test_the_epoch_estimate_steps_on_mixed_classes_under_the_runs_own_schedule(monkeypatch):
    """A class-ordered folder's first images are one class; timed on them with the schedule squeezed into the
    timed steps, vgg_small's steps ran ~19x slower (the quick profile's estimate read 1 h 35 min for 11 min)."""
    from xaiquest.train.schedule import lr_factor

    calls = []
    monkeypatch.setattr(trainer, "_train_epoch", lambda model, images, labels, cfg, optimizer, scheduler, *rest, **kw:
                        calls.append((labels.unique().numel(), scheduler.lr_lambdas[0](16))))
    split = Split(torch.zeros(4000, 3, 8, 8, dtype=torch.uint8), torch.arange(4000) // 400)  # class 0 first
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    cfg = TrainConfig(batch_size=128, epochs=4, channels_last=False)
    trainer.estimated_epoch_seconds(model, split, cfg, torch.device("cpu"), 10)
    assert [classes for classes, _ in calls] == [10, 10]
    assert calls[0][1] == lr_factor(16, 4 * 31, cfg.warmup_frac, cfg.schedule)


def test_the_epoch_estimate_times_one_batch_on_data_smaller_than_two_batches():
    """Warm-up and timed images may then overlap; before, the timed slice came out empty (a division by zero)."""
    clock = iter([10.0, 10.5])
    split = Split(torch.zeros(100, 3, 8, 8, dtype=torch.uint8), torch.arange(100) % 2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    cfg = TrainConfig(batch_size=64, channels_last=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer.time, "perf_counter", lambda: next(clock))
        assert trainer.estimated_epoch_seconds(model, split, cfg, torch.device("cpu"), 2) == pytest.approx(0.5)


def test_an_epoch_line_without_a_validation_split_leaves_the_accuracy_out():
    assert trainer.epoch_line("m", 1, 2, 0.712, 20.0, 20.0).startswith("train: m epoch 1/2 val 71.2% (20.0 s; elapsed 20 s")
    assert trainer.epoch_line("m", 1, 2, float("nan"), 20.0, 20.0).startswith("train: m epoch 1/2 (20.0 s; elapsed 20 s")


def test_the_airbench_ingredients_learn_easy_data(tmp_path):
    cfg = TrainConfig(epochs=4, batch_size=32, lr=0.2, tensorboard=False, **AIRBENCH_INGREDIENTS)
    _, outcome = _train(tmp_path, cfg)
    assert outcome.history["val_acc"].iloc[-1] >= 0.8


def test_the_whitening_filters_stay_as_fitted_and_the_bias_trains_only_its_epochs(tmp_path, monkeypatch):
    data = class_coloured_split(per_class=24, seed=0)
    train, val = validation_split(data, 40, seed=0)
    model = build_model("fastnet", 10)
    fitted = build_model("fastnet", 10)
    fitted.fit_to_data(prepare_batch(train.images[: trainer.WHITENING_SAMPLE], CPU, channels_last=False))
    biases = []
    monkeypatch.setattr(trainer, "_log_epoch", lambda *args: biases.append(model.stem.conv.bias.detach().clone()))
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.2, tensorboard=False, whiten_bias_epochs=1)
    trainer.train_model(model, train, val, cfg, seed=0, device=CPU, files=ModelFiles(tmp_path), fingerprint="fp",
                        num_classes=10)
    assert torch.equal(model.stem.conv.weight, fitted.stem.conv.weight)
    assert biases[0].abs().sum() > 0, "the bias trains in the first epoch"
    assert torch.equal(biases[0], biases[1]) and torch.equal(biases[1], biases[2])


def test_batchnorm_biases_get_the_scaled_lr_and_the_same_per_step_decay():
    model = build_model("fastnet", 10)
    cfg = TrainConfig(lr=0.5, weight_decay=1e-3, bn_bias_lr_scale=64.0)
    groups = build_optimizer(model, cfg).param_groups
    bn_biases = {id(m.bias) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    (scaled,) = [g for g in groups if g["lr"] != cfg.lr]
    assert {id(p) for p in scaled["params"]} == bn_biases
    assert scaled["lr"] * scaled["weight_decay"] == pytest.approx(cfg.lr * cfg.weight_decay)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    plain = build_optimizer(model, TrainConfig(lr=0.5)).param_groups
    assert [g["lr"] for g in plain] == [0.5, 0.5]


def test_lookahead_pulls_the_weights_to_their_average_every_few_steps_and_ends_on_it():
    model = torch.nn.Linear(2, 1)
    lookahead = Lookahead(model, total_steps=2 * EVERY)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    lookahead.after_step(model, EVERY - 1)
    assert torch.equal(model.weight, start + 1), "no pull between the every-5th steps"
    lookahead.after_step(model, EVERY)
    decay = lookahead.decay(EVERY)
    assert 0 < decay < 0.95**EVERY
    assert torch.allclose(model.weight, start + (1 - decay))
    pulled = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    lookahead.after_step(model, 2 * EVERY)  # the last step: decay 0.95^5, then the weights become the average
    assert torch.allclose(model.weight, pulled + (1 - 0.95**EVERY))
    assert torch.equal(model.weight, lookahead.state_dict()["weight"])

"""Training: the loop, LR schedules and Mixup/CutMix."""

from xaiquest.train.trainer import TrainOutcome, train_model

__all__ = ["TrainOutcome", "train_model"]

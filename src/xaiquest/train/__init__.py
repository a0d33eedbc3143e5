"""Training: the loop, LR schedules and Mixup/CutMix."""

from xaiquest.train.trainer import CHECKPOINT, TrainOutcome, train_model

__all__ = ["CHECKPOINT", "TrainOutcome", "train_model"]

"""Stage 2b: accuracy and calibration under the 19 CIFAR-10-C corruptions."""

"""xaiquest: train a zoo of CNNs on CIFAR-10 and audit them beyond accuracy."""

__version__ = "0.1.0"

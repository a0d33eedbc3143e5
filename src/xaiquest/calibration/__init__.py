"""Stage 2a: calibration before and after temperature scaling."""

"""Calibration against measurements: fit the profiles correction terms (``fit``), score an estimate (``validate``)."""

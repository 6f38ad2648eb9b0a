"""Calibration against measurements: fit the profile's correction terms (``fit``), score an estimate (``validate``)."""

"""Scoring models on labelled faces and drawing the figures: metrics, TTA, calibration, plots."""

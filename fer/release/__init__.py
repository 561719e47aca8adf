"""Shipping trained runs into models/ with generated cards: FER-2013 networks and ensembles, and FER+ models."""

from fer.release.fer2013 import export_model, model_card, ship, ship_ensemble
from fer.release.ferplus import ship_ferplus

__all__ = ["export_model", "model_card", "ship", "ship_ensemble", "ship_ferplus"]

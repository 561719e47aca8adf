"""Shipping trained runs into models/ with generated cards: FER-2013 networks and ensembles, FER+ and dual models."""

from fer.release.dual import package_default, ship_dual
from fer.release.fer2013 import export_model, model_card, ship, ship_ensemble
from fer.release.ferplus import ship_ferplus

__all__ = ["export_model", "model_card", "package_default", "ship", "ship_dual", "ship_ensemble", "ship_ferplus"]

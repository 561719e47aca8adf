"""Releasing models: trained runs shipped into models/ with generated cards, and exported (ONNX, LiteRT, SavedModel)."""

from fer.release.dual import package_default, ship_dual
from fer.release.fer2013 import model_card, ship, ship_ensemble, strip_optimizer
from fer.release.ferplus import ship_ferplus

__all__ = ["strip_optimizer", "model_card", "package_default", "ship", "ship_dual", "ship_ensemble", "ship_ferplus"]

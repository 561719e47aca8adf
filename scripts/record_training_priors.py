"""Record each shipped model's training prior (the class shares its loss saw) in its metrics JSON and ONNX twins.

Runs trained from now on record it themselves (summary.json's `training_prior`, copied by `ship`); this fills it
in for the models shipped before, from their recipes' settings (same split, labels, class weights, smoothing):

    FER2013_DIR=../shared/fer2013 python scripts/record_training_priors.py
"""

from __future__ import annotations

import json
from pathlib import Path

from fer.analysis.probabilities import mean_prior
from fer.modeling.config import TrainConfig
from fer.modeling.files import MODELS_DIR, packaged_default
from fer.modeling.run_data import learned_prior


def prior_of(**settings) -> dict:
    return learned_prior(TrainConfig.from_dict({"model": "vgg_lite", **settings}))


def write(path: Path, prior: dict) -> None:
    data = json.loads(path.read_text())
    data["training_prior"] = prior
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"{path}: {prior}")


def main() -> None:
    votes = prior_of(labels="ferplus_votes", class_weighting=0.25, label_smoothing=0.0)
    cw05 = prior_of(labels="fer2013", class_weighting=0.5, label_smoothing=0.1)
    cw025 = prior_of(labels="fer2013", class_weighting=0.25, label_smoothing=0.1)
    shipped = {
        "ferplus_votes": votes,  # seed 32 of the GPU lease: votes, class weights ** 0.25, no smoothing
        "ferplus": votes,  # six such networks
        "fer_emotion": cw05,
        "fer_ensemble": mean_prior([cw05, cw025, cw05, cw025]),  # members' class weights: 0.5, 0.25, 0.5, 0.25
    }
    for name, prior in shipped.items():
        write(MODELS_DIR / f"{name}.metrics.json", prior)
        for twin in (MODELS_DIR / "onnx").glob(f"{name}*.json"):
            write(twin, prior)
    for precision in ("float32", "int8"):
        info = packaged_default(precision).with_suffix(".json")
        source = json.loads(info.read_text())["source_model"]
        write(info, shipped[Path(source).stem])


if __name__ == "__main__":
    main()

"""Named starting points for a training run's settings (the CLI's --recipe); light: no Keras import."""

# Named starting points for a run's settings (the CLI's --recipe, default "shipped"): the shipped single
# network's first 45 epochs (sweeps/vgg_lite_cosine_cw05.yaml; docs/experiments.md), and the seed baseline.
SHIPPED = {
    "model": "vgg_lite",
    "epochs": 45,
    "optimizer": "sgd",
    "learning_rate": 0.01,
    "momentum": 0.9,
    "weight_decay": 0.0005,
    "label_smoothing": 0.1,
    "class_weighting": 0.5,
    "augmentation": {"rotation": 10.0, "flip": True, "shift": 0.1, "zoom": 0.1, "erasing": 0.3, "contrast": 0.0},
    "lr_schedule": "cosine",
    "warmup_epochs": 2,
    "checkpoint": "final",
}
RECIPES: dict[str, dict] = {
    "shipped": SHIPPED,
    "seed": {},  # TrainConfig's defaults
    # One network for both label sets (issue 33): the shipped recipe, warm-started from the FER+ default and
    # distilled from both shipped ensembles (FER+ six, FER-2013 four) on their flip-averaged probabilities.
    "dual": {
        **SHIPPED,
        "labels": "dual",
        "epochs": 60,
        "learning_rate": 0.005,
        "warmup_epochs": 1,
        "class_weighting": 0.25,
        "init_weights": "models/ferplus_votes.keras",
        "teacher": "models/fer_ensemble.json",
        "ferplus_teacher": "models/ferplus.json",
        "teacher_tta": "flip",
        "distill_weight": 0.7,
    },
}

"""Where the checkout's folders are: the one place that knows the repository root and its models/, notebooks/, data/."""

from __future__ import annotations

from pathlib import Path

# The checkout (an editable install, as `make setup` makes). A plain install has none of these folders beside it:
# prediction then runs the model inside the package (fer.modeling.files.packaged_default).
REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO / "models"
NOTEBOOKS_DIR = REPO / "notebooks"
DATA_DIR = REPO / "data"
REPORTS_DIR = REPO / "reports"
# The notebook each step of a pipeline run executes, in NOTEBOOKS_DIR (`python -m fer run --steps`).
STEPS = {"eda": "01_eda.ipynb", "train": "02_train.ipynb", "evaluate": "03_evaluate.ipynb", "faces": "04_faces.ipynb"}

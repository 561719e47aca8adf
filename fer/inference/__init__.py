"""Using a trained model: faces in photos and videos, predictions, drawing, exported-model runtimes."""

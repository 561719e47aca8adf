"""Running a trained model: faces found and cut out, predictions, explanations, video, drawing, model runtimes."""

"""The browser demo (`python -m fer demo`): Gradio tabs for photos, the webcam and clips, over the public API."""

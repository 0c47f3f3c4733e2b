"""The trained models exported for the website's live translation (ONNX)."""

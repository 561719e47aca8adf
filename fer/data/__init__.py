"""Faces as data: loading FER-2013 and FER+ labels, pixel conversion, augmentation, batches, quality checks, samples."""

"""Intracranial hemorrhage segmentation on head CT: readers, preprocessing, models, pipeline.

Importing the package is cheap: nothing here imports TensorFlow, Keras or ONNX Runtime.
Use :class:`model.pipeline.Segmenter` (web service, evaluation) or ``python -m model`` (CLI).
"""

__version__ = "1.0.0"

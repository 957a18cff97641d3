"""Training and evaluation of the hemorrhage segmentation models (see README, "Training")."""
import os

# Set before any module of the package imports TensorFlow: it reads this once, at import. oneDNN is
# off by default on these CPUs and roughly halves a training step (U-Net, 8 x 224^2, 2 threads on a
# 2-core AMD EPYC: 1.2 s -> 0.73 s). training.evaluate imported TensorFlow (set_threads) before
# training.train set it, so its fold trainings ran without oneDNN.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

"""Training and evaluation of the hemorrhage segmentation models (see README, "Training")."""

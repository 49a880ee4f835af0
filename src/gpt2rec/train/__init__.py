"""Training: the gradient loop (BPR, early stopping, resume) and run-folder checkpoints."""

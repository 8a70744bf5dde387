"""Training: one entry point for CPU, GPU and DDP runs (``liquidbench.train.loop.train``)."""

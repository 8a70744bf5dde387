"""The evaluation stage: a trained run's kept weights (liquidbench.train.weights) tested under
perturbations, never retrained. ``stage.evaluate_run`` runs every configured family on one run;
``settings`` holds the section's checks and decides which data sets the closed-loop horizon runs
on. This file imports nothing, so that the workflow can import ``settings`` at start without torch.
"""

"""The tuning stage: a seeded quasi-random search over each model type's settings (space), each
trial scored on the validation split only, and the best trial's settings chosen (select)."""

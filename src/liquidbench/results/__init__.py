"""Turning run directories into tables and figures."""

# What the results stage writes; here, without matplotlib or pandas, so that the workflow can
# import it at start.
TABLES = ["summary", "scaling", "ratios", "time_to_target", "claims", "provenance"]


def figure_stems(datasets: list[str]) -> list[str]:
    """Every figure the plot step writes, without extension."""
    return ["train_time", "test_metric", "scaling", "pareto", "gpu", "energy", "impl_speedup"] + [f"loss_curves_{d}" for d in datasets]

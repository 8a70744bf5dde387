# Data sets: generate or download, then preprocess into data/processed/{dataset}/.


rule prepare_synthetic:
    """Generate a synthetic data set (kind: sine) from its parameters and seed."""
    output:
        dataset_files("{dataset}"),
    params:
        kind=lambda w: config["datasets"][w.dataset]["kind"],
        params=lambda w: as_json(config["datasets"][w.dataset].get("params", {})),
    log:
        "logs/prepare/{dataset}.log",
    wildcard_constraints:
        dataset=datasets_of_kind("sine"),
    resources:
        mem_mb=2000,
        runtime=15,
    shell:
        "liquidbench prepare --dataset {wildcards.dataset} --kind {params.kind} "
        "--params '{params.params}' --out data/processed/{wildcards.dataset} > {log} 2>&1"

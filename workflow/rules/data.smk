# Data sets: generate or download into data/raw/ (shared by every study), then preprocess into the
# study's data/processed/{dataset}/ (under its root).


# Downloads need the network, which HPC compute nodes often lack: run them where Snakemake runs.
# The data_mirror directories reach them through $LIQUIDBENCH_DATA_MIRROR (set in the Snakefile).
envvars:
    "LIQUIDBENCH_DATA_MIRROR",


localrules:
    download_source,
    download_members,


rule download_source:
    """Fetch a real data set's original file into data/raw/ (data_mirror first), verified by sha256."""
    output:
        "data/raw/{file}",
    log:
        "logs/download/{file}.log",
    wildcard_constraints:
        file=any_of([key for key, s in SOURCES.items() if not s.manifest]),
    params:
        url=lambda w: SOURCES[w.file].url,
        sha256=lambda w: SOURCES[w.file].sha256 or "null",
        sha256_of=lambda w: SOURCES[w.file].sha256_of,
    shell:
        "liquidbench download --url {params.url:q} --sha256 {params.sha256} --sha256-of {params.sha256_of} "
        "--name {wildcards.file:q} --out {output:q} > {log:q} 2>&1"


rule download_members:
    """Fetch an archive pinned member by member (source.manifest) into the folder data/raw/{folder}/
    of its verified members. A data_mirror may hold the archive under its original name or one of
    source.mirror_names (a re-packed copy), or the extracted folder itself."""
    input:
        manifest=lambda w: manifest_path(SOURCES[w.folder].manifest, workflow.basedir),
    output:
        directory("data/raw/{folder}"),
    log:
        "logs/download/{folder}.log",
    wildcard_constraints:
        folder=any_of([key for key, s in SOURCES.items() if s.manifest]),
    params:
        url=lambda w: SOURCES[w.folder].url,
        name=lambda w: SOURCES[w.folder].file_name,
        also=lambda w: SOURCES[w.folder].also_names(),
    shell:
        "liquidbench download --url {params.url:q} --manifest {input.manifest:q} --name {params.name:q} "
        "{params.also} --out {output:q} > {log:q} 2>&1"


rule prepare_synthetic:
    """Generate a synthetic data set (kind: sine) from its parameters and seed."""
    output:
        dataset_files("{dataset}"),
    log:
        log_file("prepare/{dataset}.log"),
    wildcard_constraints:
        dataset=datasets_of_kind("sine"),
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        kind=lambda w: config["datasets"][w.dataset]["kind"],
        params=data_params,
        out=lambda w: processed_dir(w.dataset),
    shell:
        "liquidbench prepare --dataset {wildcards.dataset} --kind {params.kind} "
        "--params {params.params:q} --out {params.out:q} > {log:q} 2>&1"


rule prepare_traffic:
    """Metro Interstate Traffic, LTC-paper protocol (kind: traffic)."""
    input:
        raw=raw_file,
    output:
        dataset_files("{dataset}"),
    log:
        log_file("prepare/{dataset}.log"),
    wildcard_constraints:
        dataset=datasets_of_kind("traffic"),
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        params=data_params,
        out=lambda w: processed_dir(w.dataset),
    shell:
        "liquidbench prepare --dataset {wildcards.dataset} --kind traffic --params {params.params:q} "
        "--raw {input.raw:q} --out {params.out:q} > {log:q} 2>&1"


rule prepare_har:
    """UCI HAR, protocol features561 (LTC paper) or inertial (kind: har), from its archive or the
    folder of its verified members."""
    input:
        raw=raw_file,
    output:
        dataset_files("{dataset}"),
    log:
        log_file("prepare/{dataset}.log"),
    wildcard_constraints:
        dataset=datasets_of_kind("har"),
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        params=data_params,
        out=lambda w: processed_dir(w.dataset),
    shell:
        "liquidbench prepare --dataset {wildcards.dataset} --kind har --params {params.params:q} "
        "--raw {input.raw:q} --out {params.out:q} > {log:q} 2>&1"

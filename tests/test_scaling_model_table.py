"""The scaling_model table: probes collected from their JSON, predictions against measured speedups."""

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from liquidbench.results import scaling_table as st
from liquidbench.results.scaling_model import TABLE_COLUMNS

# the synthetic study: t_c(b) = c0 + c1 b, ring all-reduce at width 2, strong scaling of a global batch 32
C0, C1 = 2e-3, 5e-5  # 2 ms per step, 0.05 ms per sample
ALPHA, BETA = 50e-6, 1e-9  # 50 us per message step, 1 ns per byte
GRAD = 40_000  # gradient bytes (10,000 float32 parameters)
BATCHES = [1, 2, 4, 8, 16, 32, 64]
SIZES = [4096 * 2 ** k for k in range(9)]
HARDWARE = {"cpu": {"device": "cpu"},
            "ddp-cpu-2": {"device": "cpu", "nproc_per_node": 2, "backend": "gloo", "scaling": "strong"}}
MODEL = {"widths": 64, "exposed": 1.0, "seed": 0}

# by hand: 640 samples / global batch 32 = 20 steps per epoch at every width (strong scaling)
STEPS = 20
T1 = C0 + C1 * 32  # 3.6 ms: one process, batch 32
T2_COMPUTE = C0 + C1 * 16  # 2.8 ms: two processes, 16 each
T2_ALLREDUCE = 2 * (2 - 1) * ALPHA + 2 * (2 - 1) / 2 * GRAD * BETA  # ring at n = 2: 2 alpha + m beta = 140 us
S2 = (STEPS * T1) / (STEPS * (T2_COMPUTE + T2_ALLREDUCE))  # 72 ms / 58.8 ms = 1.2244898


def point(x_name, x, t, repeats=7):
    return {x_name: x, "samples_s": [t] * repeats, "median_s": t, "lo_s": t, "hi_s": t, "coverage": 0.984}


def step_json(c0=C0, c1=C1):
    return {"probe": "step", "model_spec": {"type": "cfc", "units": 16}, "n_params": GRAD // 4, "gradient_bytes": GRAD,
            "task": "regression_per_step", "n_features": 1, "n_outputs": 1, "seq_len": 50,
            "env": {"device": "cpu", "device_name": "Test CPU", "threads": 1},
            "points": [point("batch", b, c0 + c1 * b) for b in BATCHES]}


def allreduce_json(world=2, alpha=ALPHA, beta=BETA):
    # ring: t(n, m) = 2 (n - 1) alpha + 2 (n - 1) / n m beta
    return {"probe": "allreduce", "backend": "gloo", "world": world, "hosts": ["h"] * world, "nodes": 1,
            "env": {"device": "cpu", "device_name": "Test CPU", "threads": 1},
            "points": [point("size_bytes", m, 2 * (world - 1) * alpha + 2 * (world - 1) / world * m * beta)
                       for m in SIZES]}


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def probes_table(tmp_path, step=True, allreduce=True):
    steps = [({"dataset": "sine", "model": "cfc", "device": "cpu"},
              write(tmp_path / "probes/step/sine/cfc/cpu.json", step_json()))] if step else []
    ars = [({"hardware": "ddp-cpu-2"}, write(tmp_path / "probes/allreduce/ddp-cpu-2.json", allreduce_json()))] \
        if allreduce else []
    return st.collect(steps, ars)


def runs_table(allreduce_s=None):
    rows = []
    for seed in (0, 1):
        rows.append({"dataset": "sine", "model": "cfc", "hardware": "cpu", "seed": seed, "status": "ok",
                     "train_params.batch_size": 32, "samples_per_epoch": 640, "world_size": 1})
        ddp = {"dataset": "sine", "model": "cfc", "hardware": "ddp-cpu-2", "seed": seed, "status": "ok",
               "train_params.batch_size": 32, "samples_per_epoch": 640, "world_size": 2}
        if allreduce_s is not None:  # as aggregate flattens it (seed 0), and as a JSON string (seed 1)
            if seed == 0:
                ddp["comm_probe.allreduce_s"] = allreduce_s
            else:
                ddp["comm_probe"] = json.dumps({"steps": 10, "allreduce_s": allreduce_s})
        rows.append(ddp)
    # a failed run: never read
    rows.append({"dataset": "sine", "model": "cfc", "hardware": "cpu", "seed": 2, "status": "failed",
                 "train_params.batch_size": 999, "samples_per_epoch": 1})
    return pd.DataFrame(rows)


def scaling_rows():
    base = {"dataset": "sine", "model": "cfc", "device": "cpu", "scaling": "strong", "baseline": "cpu"}
    return pd.DataFrame([
        {**base, "hardware": "cpu", "n": 1, "speedup": 1.0, "speedup_ci_low": 1.0, "speedup_ci_high": 1.0},
        # the training time's speedup (first epoch included): not what the model is set against
        {**base, "hardware": "ddp-cpu-2", "n": 2, "speedup": 1.5, "speedup_ci_low": 1.4, "speedup_ci_high": 1.6},
    ])


# the measured steady epoch times (summary over 3 seeds, geometric sd 1.05 each): the baseline's 72 ms
# over the DDP entry's 60 ms is a measured speedup of 1.2, with the log-scale t interval by hand
SEEDS, GSD = 3, 1.05
HALF = stats.t.ppf(0.975, SEEDS - 1) * math.sqrt(2) * math.log(GSD) / math.sqrt(SEEDS)
MEASURED = (1.2, 1.2 * math.exp(-HALF), 1.2 * math.exp(HALF))


def summary_rows(speedups=(("ddp-cpu-2", 1.2),), base_s=0.072):
    rows = [{"dataset": "sine", "model": "cfc", "hardware": name, "steady_epoch_time_s_n": SEEDS,
             "steady_epoch_time_s_gmean": t, "steady_epoch_time_s_gsd": GSD,
             "train_time_s_gmean": 10 * t, "train_time_s_n": SEEDS, "train_time_s_gsd": GSD}
            for name, t in [("cpu", base_s)] + [(h, base_s / s) for h, s in speedups]]
    return pd.DataFrame(rows)


def build(tmp_path, model=MODEL, runs=None, **kw):
    return st.build(probes_table(tmp_path, **kw), runs if runs is not None else runs_table(), scaling_rows(),
                    summary_rows(), hardware=HARDWARE, threshold=0.7, scaling_model=model)


# ---------------------------------------------------------------------------------------------- collect

def test_collect_gives_one_row_per_probe_point(tmp_path):
    table = probes_table(tmp_path)
    assert list(table.columns) == st.PROBE_COLUMNS
    step, ar = table[table["kind"] == "step"], table[table["kind"] == "allreduce"]
    assert len(step) == len(BATCHES) and len(ar) == len(SIZES)
    assert step["x"].tolist() == BATCHES and ar["x"].tolist() == SIZES
    assert set(step["dataset"]) == {"sine"} and set(step["model"]) == {"cfc"} and set(step["device"]) == {"cpu"}
    assert step["hardware"].isna().all() and set(step["world"]) == {1}
    assert set(step["gradient_bytes"]) == {GRAD} and set(step["n_params"]) == {GRAD // 4}
    assert set(ar["hardware"]) == {"ddp-cpu-2"} and set(ar["backend"]) == {"gloo"}
    assert set(ar["world"]) == {2} and set(ar["nodes"]) == {1} and ar["dataset"].isna().all()
    assert set(table["env_device_name"]) == {"Test CPU"} and set(table["env_device"]) == {"cpu"}
    first = step.iloc[2]  # batch 4
    assert first["median_s"] == pytest.approx(C0 + 4 * C1)
    assert json.loads(first["samples_s"]) == pytest.approx([C0 + 4 * C1] * 7)
    assert first["file"].endswith("probes/step/sine/cfc/cpu.json")


def test_collect_refuses_a_probe_of_the_wrong_kind_naming_it(tmp_path):
    wrong = write(tmp_path / "probes/step/sine/cfc/cpu.json", allreduce_json())
    with pytest.raises(ValueError, match=r"probes/step/sine/cfc/cpu\.json.*expected a step probe.*'allreduce'"):
        st.collect([({"dataset": "sine", "model": "cfc", "device": "cpu"}, wrong)], [])
    step = write(tmp_path / "s.json", step_json())
    with pytest.raises(ValueError, match=r"s\.json.*expected a allreduce probe"):
        st.collect([], [({"hardware": "ddp-cpu-2"}, step)])
    with pytest.raises(ValueError, match=r"s\.json.*lacks device"):
        st.collect([({"dataset": "sine", "model": "cfc"}, step)], [])
    twice = [({"dataset": "sine", "model": "cfc", "device": "cpu"}, step)] * 2
    with pytest.raises(ValueError, match="also given by"):
        st.collect(twice, [])
    empty = st.collect([], [])
    assert empty.empty and list(empty.columns) == st.PROBE_COLUMNS


# ------------------------------------------------------------------------------------------------ build

def test_build_predicts_the_hand_computed_speedup_and_compares_it(tmp_path):
    raw, display, notes = build(tmp_path)
    assert list(raw.columns) == st.RAW_COLUMNS and set(TABLE_COLUMNS) <= set(raw.columns)
    assert raw["width"].tolist() == list(range(1, 65))  # every width 1..64 has a row
    assert raw["fit_ok"].all() and (raw["reason"] == "").all()
    predicted = raw[raw["speedup"].notna()]
    assert predicted["width"].tolist() == [1, 2, 4, 8, 16, 32]  # strong scaling: divisors of the batch 32
    assert raw.loc[raw["width"] == 3, "width_note"].iloc[0].startswith("not predicted")
    two = raw[raw["width"] == 2].iloc[0]
    assert S2 == pytest.approx(1.2244898, rel=1e-7)
    assert two["speedup"] == pytest.approx(S2, rel=1e-6)
    assert two["speedup_low"] == pytest.approx(S2, rel=1e-6) and two["speedup_high"] == pytest.approx(S2, rel=1e-6)
    assert two["compute_s"] == pytest.approx(T2_COMPUTE, rel=1e-6)
    assert two["allreduce_s"] == pytest.approx(T2_ALLREDUCE, rel=1e-6)
    assert two["steps"] == STEPS and two["per_process_batch"] == 16 and two["dominant"] == "compute"
    assert two["hardware"] == "ddp-cpu-2"
    # the measured speedup beside it, of the steady epoch times (not the scaling table's 1.5 of the training
    # time): (1.2244898 - 1.2) / 1.2 = +2.04 %, outside the (exact) predicted band
    assert (two["measured_speedup"], two["measured_speedup_low"], two["measured_speedup_high"]) == \
        pytest.approx(MEASURED, rel=1e-9)
    assert MEASURED[1:] == pytest.approx((1.0110, 1.4244), abs=1e-4)  # t(0.975, 2 df) = 4.303
    assert two["rel_error"] == pytest.approx((S2 - 1.2) / 1.2, rel=1e-6)
    assert two["in_band"] is False or two["in_band"] == False  # noqa: E712
    one = raw[raw["width"] == 1].iloc[0]
    assert one["speedup"] == 1.0 and one["rel_error"] == 0.0 and one["in_band"] == True  # noqa: E712
    assert raw[raw["width"] > 2]["measured_speedup"].isna().all()
    # the group's fit on every row
    assert raw["c0"].tolist() == pytest.approx([C0] * 64, rel=1e-6)
    assert raw["c1"].tolist() == pytest.approx([C1] * 64, rel=1e-6)
    assert two["alpha"] == pytest.approx(ALPHA, rel=1e-6) and two["beta"] == pytest.approx(BETA, rel=1e-6)
    assert two["c0_low"] == pytest.approx(C0, rel=1e-6) and two["c0_high"] == pytest.approx(C0, rel=1e-6)
    assert (two["form"], two["allreduce_source"], two["allreduce_hardware"]) == ("ring", "fitted", "ddp-cpu-2")
    assert (two["batch_size"], two["n_train"], two["gradient_bytes"]) == (32, 640, GRAD)
    assert (two["exposed"], two["exposed_source"]) == (1.0, "config")
    # the knee: E(2) = 1.224 / 2 = 0.61 < 0.7, so n = 1; at n = 2 the lost time is mostly c0 not shrinking:
    # 20 * 2.8 ms - 72 ms / 2 = 20 ms against latency 20 * 100 us = 2 ms and bandwidth 20 * 40 us = 0.8 ms
    assert (two["knee_width"], two["knee_at"], two["knee_dominant"], two["knee_cause"]) == (1, 2, "compute", "overhead")
    assert two["knee_reason"].startswith("compute no longer shrinks")
    assert raw["knee_threshold"].eq(0.7).all()
    # display: the widths 1, 2, 4, 8, 16, 32 (64 does not divide the batch), the knee on the group's first row
    assert display["n"].tolist() == [1, 2, 4, 8, 16, 32]
    assert list(display.columns) == st.DISPLAY_COLUMNS
    d2 = display[display["n"] == 2].iloc[0]
    assert d2["predicted speedup [low, high]"].startswith("1.22")
    assert d2["measured speedup [low, high]"] == "1.2 [1.01, 1.42]"
    assert d2["error"] == "+2.0 % (outside the band)" and d2["dominant term"] == "compute"
    assert display["knee"].iloc[0].startswith("knee n = 1: compute no longer shrinks")
    assert (display["knee"].iloc[1:] == "").all()
    assert "liquidbench.results.scaling_model" in notes and "cpu/strong intra-node: ring" in notes
    assert "Exposed factor of the all-reduce: 1 (config" in notes
    assert "ring chosen" in notes  # the fit's note: one width measured


def test_measured_exposed_factor_is_comm_probe_over_the_fitted_allreduce(tmp_path):
    # comm_probe: 70 us exposed per step against the fitted 140 us at n = 2
    raw, _, notes = build(tmp_path, model={**MODEL, "exposed": "measured"}, runs=runs_table(T2_ALLREDUCE / 2))
    two = raw[raw["width"] == 2].iloc[0]
    assert two["exposed"] == pytest.approx(0.5, rel=1e-6)
    assert two["exposed_source"].startswith("measured: median of comm_probe allreduce_s") and "2 DDP run" in \
        two["exposed_source"]
    assert two["allreduce_s"] == pytest.approx(T2_ALLREDUCE / 2, rel=1e-6)
    assert two["speedup"] == pytest.approx(T1 / (T2_COMPUTE + T2_ALLREDUCE / 2), rel=1e-6)  # 3.6 / 2.87
    assert "measured per group" in notes
    # no comm_probe in the runs: the upper bound 1, said so
    raw, _, notes = build(tmp_path / "b", model={**MODEL, "exposed": "measured"}, runs=runs_table())
    assert raw["exposed"].eq(1.0).all() and raw["exposed_source"].str.contains("no ok DDP run").all()
    assert "without a comm_probe, 1 (the isolated all-reduce) for sine/cfc/cpu/strong" in notes
    # a step that pays three isolated all-reduces (ranks waiting for each other): a factor of 3, not cut
    raw, _, _ = build(tmp_path / "c", model={**MODEL, "exposed": "measured"}, runs=runs_table(3 * T2_ALLREDUCE))
    two = raw[raw["width"] == 2].iloc[0]
    assert raw["exposed"].tolist() == pytest.approx([3.0] * 64, rel=1e-6)
    assert two["allreduce_s"] == pytest.approx(3 * T2_ALLREDUCE, rel=1e-6)
    assert two["speedup"] == pytest.approx(T1 / (T2_COMPUTE + 3 * T2_ALLREDUCE), rel=1e-6)


def test_a_given_interconnect_replaces_the_fit(tmp_path):
    model = {**MODEL, "interconnect": {"alpha": ALPHA, "beta": BETA, "form": "ring"}}
    raw, _, notes = build(tmp_path, model=model, allreduce=False)  # no all-reduce probe needed
    two = raw[raw["width"] == 2].iloc[0]
    assert two["speedup"] == pytest.approx(S2, rel=1e-6) and two["allreduce_source"] == "given"
    assert two["alpha"] == ALPHA and two["alpha_low"] == ALPHA and two["alpha_high"] == ALPHA
    assert "scaling_model.interconnect" in notes


def test_a_missing_step_probe_gives_one_row_naming_it_and_no_prediction(tmp_path):
    raw, display, notes = build(tmp_path, step=False)
    assert len(raw) == 1
    row = raw.iloc[0]
    assert not row["fit_ok"] and math.isnan(row["width"]) and math.isnan(row["speedup"])
    assert row[TABLE_COLUMNS[1:-1]].isna().all() and math.isnan(row["c0"])
    assert "no step probe of data set sine, model cfc on device cpu" in row["reason"]
    assert (row["dataset"], row["model"], row["device"], row["scaling"]) == ("sine", "cfc", "cpu", "strong")
    assert len(display) == 1 and display["knee"].iloc[0].startswith("no prediction: no step probe of data set sine")
    assert display["predicted speedup [low, high]"].iloc[0] == "n/a"
    assert "1 group(s) without a prediction" in notes


def test_a_missing_allreduce_probe_names_the_hardware_entry(tmp_path):
    raw, _, _ = build(tmp_path, allreduce=False)
    assert len(raw) == 1 and not raw["fit_ok"].iloc[0]
    reason = raw["reason"].iloc[0]
    assert "sine" in reason and "cfc" in reason and "no all-reduce probe" in reason and "ddp-cpu-2" in reason
    assert raw["c0"].iloc[0] == pytest.approx(C0, rel=1e-6) and math.isnan(raw["speedup"].iloc[0])


def test_an_unfit_compute_probe_is_refused_with_its_reason(tmp_path):
    # step time falling with the batch: c1 < 0 with its whole interval below 0
    path = write(tmp_path / "step.json", {**step_json(), "points": [
        point("batch", b, 10e-3 - 1e-4 * b + (1e-6 if b % 2 else 0)) for b in BATCHES]})
    probes = st.collect([({"dataset": "sine", "model": "cfc", "device": "cpu"}, path)],
                        [({"hardware": "ddp-cpu-2"}, write(tmp_path / "ar.json", allreduce_json()))])
    raw, _, _ = st.build(probes, runs_table(), scaling_rows(), summary_rows(), hardware=HARDWARE, threshold=0.7,
                         scaling_model=MODEL)
    assert len(raw) == 1 and not raw["fit_ok"].iloc[0] and math.isnan(raw["speedup"].iloc[0])
    assert "compute fit of data set sine, model cfc on device cpu is unfit" in raw["reason"].iloc[0]
    assert "c1" in raw["reason"].iloc[0] and raw["c1"].iloc[0] < 0


def test_build_refuses_bad_settings_and_builds_an_empty_table(tmp_path):
    probes = probes_table(tmp_path)
    for bad, match in (({"widths": 0}, "widths"), ({"exposed": -1}, "exposed"), ({"exposed": "all"}, "exposed"),
                       ({"interconnect": {"alpha": -1, "beta": 0}}, "alpha")):
        with pytest.raises(ValueError, match=match):
            st.build(probes, runs_table(), scaling_rows(), summary_rows(), hardware=HARDWARE, threshold=0.7,
                     scaling_model=bad)
    raw, display, notes = st.build(probes, runs_table(), scaling_rows().iloc[:0], summary_rows(), hardware=HARDWARE,
                                   threshold=0.7, scaling_model={})
    assert raw.empty and list(raw.columns) == st.RAW_COLUMNS and display.empty
    assert "No scaling group with DDP runs" in notes


# ----------------------------------------------------------------------------------------------- figure

def test_the_figure_is_written_for_the_synthetic_case_and_for_an_empty_table(tmp_path):
    raw, _, _ = build(tmp_path)
    paths = st.figure(raw, tmp_path / "scaling_model")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    empty = st.figure(raw.iloc[:0], tmp_path / "empty")
    assert all(p.exists() and p.stat().st_size > 1000 for p in empty)
    failed, _, _ = build(tmp_path / "f", step=False)
    drawn = st.figure(pd.concat([raw, failed.assign(model="gru")], ignore_index=True), tmp_path / "mixed")
    assert drawn[0].stat().st_size > 1000
    # many groups: a panel per data set x scaling group, a line per model
    many = pd.concat([raw.assign(model=f"m{i}") for i in range(st.MAX_PANELS + 1)], ignore_index=True)
    assert np.isfinite(many["speedup"]).any()
    assert st.figure(many, tmp_path / "many")[0].stat().st_size > 1000


def test_weak_scaling_by_hand_and_tables_read_back_from_csv(tmp_path):
    # weak scaling: batch 32 per process; 640 samples: s(1) = 20 steps, s(2) = ceil(640 / 64) = 10 steps
    hardware = {**HARDWARE, "ddp-cpu-2": {**HARDWARE["ddp-cpu-2"], "scaling": "weak"}}
    weak = scaling_rows().assign(scaling="weak")

    def back(frame):  # what the workflow hands over: CSV files
        return pd.read_csv(io.StringIO(frame.to_csv(index=False)))

    raw, display, _ = st.build(back(probes_table(tmp_path)), back(runs_table()), back(weak), back(summary_rows()),
                               hardware=hardware, threshold=0.7, scaling_model=MODEL)
    two = raw[raw["width"] == 2].iloc[0]
    s2 = (20 * T1) / (10 * (T1 + T2_ALLREDUCE))  # 72 ms / 37.4 ms = 1.925134
    assert s2 == pytest.approx(1.925134, rel=1e-6)
    assert two["speedup"] == pytest.approx(s2, rel=1e-6) and two["steps"] == 10 and two["per_process_batch"] == 32
    assert raw["width"].tolist() == list(range(1, 65)) and raw["speedup"].notna().all()  # weak: every width
    assert two["efficiency"] == pytest.approx(s2 / 2, rel=1e-6)  # E(2) = 0.96

    def efficiency(n):  # E(n) = s(1) t(1) / (n s(n) step(n)), the ring all-reduce at width n
        step = T1 + 2 * (n - 1) * ALPHA + 2 * (n - 1) / n * GRAD * BETA
        return 20 * T1 / (n * math.ceil(640 / (n * 32)) * step)

    assert raw["efficiency"].tolist() == pytest.approx([efficiency(n) for n in range(1, 65)], rel=1e-6)
    knee = max(n for n in range(1, 65) if efficiency(n) >= 0.7)  # 11: 2 steps of 4.67 ms, E = 0.7004; 12: 0.628
    assert knee == 11 and two["knee_width"] == knee
    assert display["n"].tolist() == [1, 2, 4, 8, 16, 32, 64]
    # the raw table read back draws and displays the same
    assert st._display(back(raw)).equals(display)
    assert st.figure(back(raw), tmp_path / "weak")[0].stat().st_size > 1000


def test_the_best_gain_claim_names_what_bounds_each_knee():
    """Beside "The best gain is at 2 GPUs", the claims table says per scaling group where the model
    puts the knee and which term costs most there; a group without a prediction adds nothing."""
    from liquidbench.results.claims import knee_text

    table = pd.DataFrame([
        {"dataset": "sine", "model": "cfc", "device": "cuda", "scaling": "weak", "width": w, "knee_width": 2,
         "knee_dominant": "all-reduce", "fit_ok": True} for w in (1, 2, 4)] + [
        {"dataset": "sine", "model": "lstm", "device": "cuda", "scaling": "weak", "width": float("nan"),
         "knee_width": float("nan"), "knee_dominant": None, "fit_ok": False}])
    assert knee_text(table) == ("scaling model (predicted knee, and the term that costs most there): "
                                "sine/cfc cuda weak: knee n = 2, bound by all-reduce")
    assert knee_text(table[table["model"] == "lstm"]) == "" and knee_text(None) == ""


def test_entries_on_one_node_and_across_nodes_are_predicted_apart(tmp_path):
    """Two entries of one scaling group at the same width, one on one node and one across two nodes,
    talk over different links: each gets its own all-reduce fit and its own measured speedup
    (the Slurm test cluster's ddp-cpu-2 and ddp-2node)."""
    hardware = {**HARDWARE, "ddp-2node": {"device": "cpu", "nodes": 2, "backend": "gloo", "scaling": "strong"}}
    steps = [({"dataset": "sine", "model": "cfc", "device": "cpu"},
              write(tmp_path / "probes/step/sine/cfc/cpu.json", step_json()))]
    ars = [({"hardware": "ddp-cpu-2"}, write(tmp_path / "probes/allreduce/ddp-cpu-2.json", allreduce_json())),
           ({"hardware": "ddp-2node"}, write(tmp_path / "probes/allreduce/ddp-2node.json",
                                              allreduce_json(alpha=10 * ALPHA, beta=10 * BETA)))]
    runs = pd.concat([runs_table(), runs_table().query("hardware == 'ddp-cpu-2'").assign(hardware="ddp-2node")])
    slow = {"dataset": "sine", "model": "cfc", "device": "cpu", "scaling": "strong", "baseline": "cpu",
            "hardware": "ddp-2node", "n": 2, "speedup": 0.8, "speedup_ci_low": 0.7, "speedup_ci_high": 0.9}
    scaling = pd.concat([scaling_rows(), pd.DataFrame([slow])], ignore_index=True)
    summary = summary_rows((("ddp-cpu-2", 1.2), ("ddp-2node", 0.8)))
    raw, display, _ = st.build(st.collect(steps, ars), runs, scaling, summary, hardware=hardware, threshold=0.7,
                               scaling_model=MODEL)
    two = raw[raw["width"] == 2].set_index("link")
    assert sorted(two.index) == ["inter-node", "intra-node"]
    assert two.loc["intra-node", "hardware"] == "ddp-cpu-2" and two.loc["inter-node", "hardware"] == "ddp-2node"
    assert two.loc["intra-node", "speedup"] == pytest.approx(S2, rel=1e-6)
    across = STEPS * T1 / (STEPS * (T2_COMPUTE + 10 * T2_ALLREDUCE))  # the same compute, ten times the all-reduce
    assert two.loc["inter-node", "speedup"] == pytest.approx(across, rel=1e-6)
    assert two.loc["inter-node", "alpha"] == pytest.approx(10 * ALPHA, rel=1e-6)
    assert (two.loc["intra-node", "measured_speedup"], two.loc["inter-node", "measured_speedup"]) == \
        pytest.approx((1.2, 0.8), rel=1e-12)
    assert set(display["mode"]) == {"cpu/strong, intra-node", "cpu/strong, inter-node"}


def test_measured_speedups_are_of_steady_epochs_and_missing_ones_are_not_compared():
    """The model predicts a steady epoch: the measurement set beside it is the steady epoch time's ratio
    (the scaling table's baseline kept), exactly 1 for the baseline, NaN where a side has no steady time."""
    out = st.steady_speedups(scaling_rows(), summary_rows((("ddp-cpu-2", 1.25),)))
    assert out["speedup"].tolist() == pytest.approx([1.0, 1.25], rel=1e-12)
    assert list(out.columns) == list(scaling_rows().columns)
    assert out["speedup_ci_low"].iloc[0] == 1.0 and out["speedup_ci_low"].iloc[1] < 1.25 < out["speedup_ci_high"].iloc[1]
    lacking = summary_rows().query("hardware == 'cpu'")  # no row of ddp-cpu-2
    gone = st.steady_speedups(scaling_rows(), lacking)
    assert gone["speedup"].iloc[0] == 1.0 and math.isnan(gone["speedup"].iloc[1])

"""Statistics, scaling, ratios, time to target and claims on hand-computed fixtures."""

import json
import math
import re

import pandas as pd
import pytest
import yaml

from conftest import REPO

from liquidbench.cli import main
from liquidbench.results import claims, compare, scaling, stats, summary
from liquidbench.results.aggregate import load_histories, load_runs
from liquidbench.study import study_runs
from liquidbench.results.tables import to_latex

HARDWARE = {
    "cpu": {"device": "cpu"},
    "ddp-1gpu": {"device": "cuda", "nproc_per_node": 1, "scaling": "weak"},
    "ddp-2gpu": {"device": "cuda", "nproc_per_node": 2, "scaling": "weak"},
    "ddp-4gpu": {"device": "cuda", "nodes": 2, "nproc_per_node": 2, "scaling": "weak"},
    "ddp-cpu-2": {"device": "cpu", "nproc_per_node": 2, "scaling": "strong"},
}
# as the scaling table reads them (the command line's --hardware-config, read once)
ENTRIES = scaling.hardware_entries(HARDWARE)
CPU_ONLY = scaling.hardware_entries({"cpu": {"device": "cpu"}})
TYPES = {"ltc": "ltc", "cfc": "cfc", "lstm": "lstm"}


def runs_frame(times: dict, metrics: dict | None = None) -> pd.DataFrame:
    """runs.csv-like rows: times[(model, hardware)] = train times per seed."""
    rows = []
    for (model, hw), values in times.items():
        for seed, t in enumerate(values):
            m = (metrics or {}).get((model, hw), [0.1] * len(values))[seed]
            rows.append(dict(dataset="sine", model=model, hardware=hw, seed=seed, status="ok", train_time_s=t,
                             test_metric=m, metric_name="mse", n_params=10, model_type=TYPES.get(model, model.split("_")[0])))
    return pd.DataFrame(rows)


def test_t_quantiles_match_tables():
    for df, q in [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (10, 2.2281), (30, 2.0423)]:
        assert stats.t_quantile(0.975, df) == pytest.approx(q, abs=1e-4)
    with pytest.raises(ValueError, match="p must lie"):
        stats.t_quantile(0.2, 3)


def test_describe_mean_std_ci_by_hand():
    d = stats.describe([1, 2, 3, 4, float("nan")])
    # mean 2.5, std sqrt(5/3), se std/2, half width t(0.975, 3) * se
    assert d["n"] == 4 and d["mean"] == 2.5 and d["median"] == 2.5
    assert d["std"] == pytest.approx(math.sqrt(5 / 3))
    half = 3.182446 * math.sqrt(5 / 3) / 2
    assert d["ci_low"] == pytest.approx(2.5 - half, abs=1e-5)
    assert d["ci_high"] == pytest.approx(2.5 + half, abs=1e-5)
    one = stats.describe([7.0])
    assert one["n"] == 1 and one["mean"] == one["median"] == 7.0 and math.isnan(one["std"]) and math.isnan(one["ci_low"])
    assert stats.describe([])["n"] == 0


def test_median_by_hand():
    assert stats.describe([10, 1, 3])["median"] == 3  # odd n: the middle value
    assert stats.describe([3, 1, 2, 10, float("nan")])["median"] == 2.5  # even n: mean of the middle two
    d = stats.describe([1, 1, 1, 13])  # one slow run moves the mean, not the median
    assert (d["mean"], d["median"]) == (4, 1)


def test_log_scale_interval_and_geometric_mean_by_hand():
    # 1, 2, 4: logs 0, ln 2, 2 ln 2; their mean ln 2 (geometric mean 2), their sd ln 2
    d = stats.describe([4, 1, 2], positive=True)
    assert d["gmean"] == pytest.approx(2) and d["gsd"] == pytest.approx(2) and d["mean"] == pytest.approx(7 / 3)
    half = 4.302653 * math.log(2) / math.sqrt(3)  # t(0.975, 2) * se of the log mean
    assert d["ci_low"] == pytest.approx(2 * math.exp(-half), rel=1e-6)
    assert d["ci_high"] == pytest.approx(2 * math.exp(half), rel=1e-6)
    # the case: two seeds far apart; the arithmetic t interval of 0.2 and 1.6 reaches below 0 ...
    arith = stats.describe([0.2, 1.6])
    assert arith["ci_low"] == pytest.approx(0.9 - 12.7062 * 0.7, rel=1e-4) and arith["ci_low"] < 0
    # ... the log-scale one: geometric mean sqrt(0.32), se of the log mean ln(8) / 2
    g = stats.describe([0.2, 1.6], positive=True)
    assert g["gmean"] == pytest.approx(math.sqrt(0.32))
    assert g["ci_low"] == pytest.approx(math.sqrt(0.32) * 8 ** (-12.7062 / 2), rel=1e-4) and g["ci_low"] > 0
    assert g["ci_high"] == pytest.approx(math.sqrt(0.32) * 8 ** (12.7062 / 2), rel=1e-4)
    # a value <= 0 cannot be a positive quantity's: no geometric statistics, no interval
    bad = stats.describe([0.0, 1.0], positive=True)
    assert math.isnan(bad["gmean"]) and math.isnan(bad["ci_low"]) and bad["mean"] == 0.5


def test_bounded_interval_is_cut_to_the_range():
    # mean 0.01, se 0.01: the t interval 0.01 ± 0.127 is cut at 0 below
    d = stats.describe([0.0, 0.02], bounds=(0.0, 1.0))
    assert d["ci_low"] == 0.0 and d["ci_high"] == pytest.approx(0.01 + 12.7062 * 0.01, rel=1e-4)


def test_ratio_of_geometric_means_by_hand():
    row = lambda values: {f"t_{k}": v for k, v in stats.describe(values, positive=True).items()}  # noqa: E731
    r = stats.ratio(stats.estimate_of(row([10, 12]), "t"), stats.estimate_of(row([5, 7]), "t"))
    assert r["value"] == pytest.approx(math.sqrt(120 / 35))
    # se of each log mean: |ln a - ln b| / 2 for two values
    se = math.sqrt((math.log(1.2) / 2) ** 2 + (math.log(1.4) / 2) ** 2)
    assert r["se_log"] == pytest.approx(se) and r["df"] == 1
    assert r["ci_low"] == pytest.approx(math.sqrt(120 / 35) * math.exp(-12.7062 * se), rel=1e-4)
    assert r["ci_high"] == pytest.approx(math.sqrt(120 / 35) * math.exp(12.7062 * se), rel=1e-4)
    one = stats.ratio(stats.estimate_of(row([10]), "t"), stats.estimate_of(row([5, 7]), "t"))
    assert one["value"] == pytest.approx(10 / math.sqrt(35)) and math.isnan(one["ci_low"])
    assert math.isnan(stats.ratio(stats.estimate_of(None, "t"), stats.estimate_of(row([5, 7]), "t"))["value"])


def scaling_fixture():
    times = {("cfc", "ddp-1gpu"): [10, 12], ("cfc", "ddp-2gpu"): [5, 7], ("cfc", "ddp-4gpu"): [3.5, 4.5],
             ("cfc", "cpu"): [20, 22], ("cfc", "ddp-cpu-2"): [12, 10]}
    return summary.summarize(runs_frame(times))


def test_speedup_efficiency_and_knee():
    table = scaling.scaling_table(scaling_fixture(), ENTRIES, threshold=0.7).set_index("hardware")
    assert table.loc["ddp-2gpu", "baseline"] == "ddp-1gpu"
    # speedups of geometric means: sqrt(10 * 12) / sqrt(5 * 7), ...
    assert table.loc["ddp-2gpu", "tn_gmean"] == pytest.approx(math.sqrt(35))
    assert table.loc["ddp-2gpu", "speedup"] == pytest.approx(math.sqrt(120 / 35))
    assert table.loc["ddp-2gpu", "efficiency"] == pytest.approx(math.sqrt(120 / 35) / 2)
    se = math.sqrt((math.log(1.2) / 2) ** 2 + (math.log(1.4) / 2) ** 2)
    assert table.loc["ddp-2gpu", "efficiency_ci_low"] == pytest.approx(
        math.sqrt(120 / 35) * math.exp(-12.7062 * se) / 2, rel=1e-4)
    assert table.loc["ddp-4gpu", "n"] == 4
    assert table.loc["ddp-4gpu", "speedup"] == pytest.approx(math.sqrt(120 / 15.75))
    assert table.loc["ddp-4gpu", "efficiency"] == pytest.approx(math.sqrt(120 / 15.75) / 4)
    # the baseline against itself is exactly 1, without the spread of a two-sample ratio
    assert tuple(table.loc["ddp-1gpu", ["speedup", "speedup_ci_low", "speedup_ci_high"]]) == (1.0, 1.0, 1.0)
    assert tuple(table.loc["cpu", ["speedup", "efficiency_ci_low", "efficiency_ci_high"]]) == (1.0, 1.0, 1.0)
    assert (table.loc[["ddp-1gpu", "ddp-2gpu", "ddp-4gpu"], "knee_n"] == 2).all()
    # the strong-scaling CPU entry has no one-process strong entry: the plain cpu run is T(1)
    assert table.loc["ddp-cpu-2", "baseline"] == "cpu"
    assert table.loc["ddp-cpu-2", "speedup"] == pytest.approx(math.sqrt(440 / 120))
    lo, hi = table.loc["ddp-2gpu", ["efficiency_ci_low", "efficiency_ci_high"]]
    assert 0 < lo < math.sqrt(120 / 35) / 2 < hi
    lower = scaling.scaling_table(scaling_fixture(), ENTRIES, threshold=0.6).set_index("hardware")
    assert lower.loc["ddp-4gpu", "knee_n"] == 4
    assert scaling.knee([1, 2, 4], [1.0, float("nan"), 0.5], 0.7) == 1


def test_scaling_leaves_out_entries_without_runs_in_the_study():
    """A data set x model whose DDP runs the study excludes has no scaling rows at all."""
    table = scaling.scaling_table(scaling_fixture(), ENTRIES, threshold=0.7)
    assert set(table.model) == {"cfc"}
    partial = scaling_fixture()
    partial = partial[partial.hardware.isin(["cpu", "ddp-1gpu", "ddp-2gpu"])]
    rows = scaling.scaling_table(partial, ENTRIES, threshold=0.7)
    assert set(rows.hardware) == {"ddp-1gpu", "ddp-2gpu"}  # no ddp-4gpu row, no CPU group


def test_scaling_without_ddp_entries_is_empty_with_columns():
    table = scaling.scaling_table(scaling_fixture(), CPU_ONLY, threshold=0.7)
    assert len(table) == 0 and "speedup" in table


def test_ratios_cfc_vs_ltc_and_vs_lstm():
    times = {("cfc", "cpu"): [2, 4], ("ltc", "cpu"): [6, 10], ("lstm", "cpu"): [1, 1]}
    metrics = {("cfc", "cpu"): [0.1, 0.3], ("ltc", "cpu"): [0.2, 0.2], ("lstm", "cpu"): [0.4, 0.4]}
    table = compare.ratio_table(summary.summarize(runs_frame(times, metrics)), TYPES)
    cvl = table[table.comparison == "cfc vs ltc"].iloc[0]
    assert (cvl.model, cvl.reference) == ("cfc", "ltc")
    # ratios of geometric means: sqrt(2 * 4) / sqrt(6 * 10); metrics sqrt(0.1 * 0.3) / 0.2
    assert cvl.train_time_s_ratio == pytest.approx(math.sqrt(8 / 60))
    assert cvl.test_metric_ratio == pytest.approx(math.sqrt(0.03) / 0.2)
    vs = table[table.comparison == "vs lstm"].set_index("model")
    assert set(vs.index) == {"cfc", "ltc"}
    assert vs.loc["ltc", "train_time_s_ratio"] == pytest.approx(math.sqrt(60))
    assert vs.loc["ltc", "test_metric_ratio"] == pytest.approx(0.5)


def test_time_to_target_reached_and_not_reached():
    hist = pd.DataFrame({"epoch": [1, 2, 3], "val_metric": [0.5, 0.2, 0.1], "epoch_time_s": [1.0, 2.0, 3.0]})
    assert compare.run_time_to_target(hist, "mse", 0.25) == (3.0, 2.0)
    assert compare.run_time_to_target(hist, "mse", 0.1) == (6.0, 3.0)
    t, e = compare.run_time_to_target(hist, "mse", 0.05)
    assert math.isnan(t) and math.isnan(e)
    acc = hist.assign(val_metric=[0.5, 0.8, 0.9])
    assert compare.run_time_to_target(acc, "accuracy", 0.75) == (3.0, 2.0)

    runs = runs_frame({("cfc", "cpu"): [1, 1], ("ltc", "cpu"): [1, 1]})
    histories = []
    for model, curves in {"cfc": ([0.5, 0.2], [0.5, 0.1]), "ltc": ([0.9, 0.8], [0.9, 0.7])}.items():
        for seed, curve in enumerate(curves):
            histories.append(pd.DataFrame({"dataset": "sine", "model": model, "hardware": "cpu", "seed": seed,
                                           "epoch": [1, 2], "val_metric": curve, "epoch_time_s": [1.0, 1.5 + seed]}))
    table = compare.time_to_target(runs, pd.concat(histories), {"sine": 0.25}).set_index("model")
    assert table.loc["cfc", "status"] == "reached" and table.loc["cfc", "n_reached"] == 2
    assert table.loc["cfc", "time_mean"] == pytest.approx((2.5 + 3.5) / 2)
    assert table.loc["cfc", "time_gmean"] == pytest.approx(math.sqrt(2.5 * 3.5))
    assert table.loc["cfc", "time_median"] == pytest.approx(3.0)
    assert table.loc["ltc", "status"] == "not reached" and table.loc["ltc", "n_reached"] == 0
    shown = compare.target_display(table.reset_index()).set_index("model")
    assert shown.loc["ltc", "time to target [s]"] == "not reached"
    none = compare.time_to_target(runs, pd.concat(histories), {})
    assert set(none["status"]) == {"no target"}


def write_run(root, dataset, model, hw, seed, **fields):
    d = root / dataset / model / hw / f"seed{seed}"
    d.mkdir(parents=True)
    metrics = {**dict(dataset=dataset, model=model, hardware=hw, seed=seed, status="ok", metric_name="mse",
                      n_params=10, model_type=model, train_time_s=1.0 + seed, test_metric=0.1,
                      telemetry={"gpu": {"util_mean_pct": 50.0 + seed}}), **fields}
    (d / "metrics.json").write_text(json.dumps(metrics))
    pd.DataFrame({"epoch": [1], "train_loss": [1.0], "val_loss": [1.0], "val_metric": [0.1],
                  "epoch_time_s": [1.0]}).to_csv(d / "history.csv", index=False)
    return d / "metrics.json"


def test_failed_run_and_missing_seed_appear_in_tables(tmp_path):
    files = [write_run(tmp_path, "sine", "cfc", "cpu", 0), write_run(tmp_path, "sine", "cfc", "cpu", 1),
             write_run(tmp_path, "sine", "cfc", "cpu", 2, **{"status": "failed"})]
    expected = {"datasets": ["sine"], "models": ["cfc"], "hardware": ["cpu"], "seeds": [0, 1, 2, 3]}
    out = tmp_path / "tables"
    assert main(["aggregate", *map(str, files), "--expected", json.dumps(expected),
                 "--out-runs", str(out / "runs.csv"), "--out-history", str(out / "history.csv")]) == 0
    runs = pd.read_csv(out / "runs.csv").set_index("seed")
    assert list(runs["status"]) == ["ok", "ok", "failed", "missing"]
    assert runs.loc[0, "telemetry.gpu.util_mean_pct"] == 50.0
    assert len(pd.read_csv(out / "history.csv")) == 3
    assert main(["summarize", "--runs", str(out / "runs.csv"), "--out-csv", str(out / "summary.csv"),
                 "--out-md", str(out / "summary.md"), "--out-tex", str(out / "summary.tex")]) == 0
    s = pd.read_csv(out / "summary.csv").iloc[0]
    assert (s.n_runs, s.n_ok, s.n_failed, s.n_missing) == (4, 2, 1, 1)
    assert s.train_time_s_mean == pytest.approx(1.5) and s.train_time_s_n == 2
    assert s["telemetry.gpu.util_mean_pct_mean"] == pytest.approx(50.5)
    assert "2 ok, 1 failed, 1 missing" in (out / "summary.md").read_text()
    assert "2 ok, 1 failed, 1 missing" in (out / "summary.tex").read_text()
    assert main(["time-to-target", "--runs", str(out / "runs.csv"), "--history", str(out / "history.csv"),
                 "--targets", '{"sine": 0.5}', "--out-csv", str(out / "ttt.csv")]) == 0
    t = pd.read_csv(out / "ttt.csv").iloc[0]
    assert (t.n_runs, t.n_ok, t.n_reached) == (4, 2, 2)


def test_missing_everything_and_bad_expected_are_clear(tmp_path, caplog):
    runs = load_runs([], study_runs({"datasets": ["sine"], "models": ["cfc"], "hardware": ["cpu"], "seeds": [0]}))
    assert list(runs["status"]) == ["missing"] and len(load_histories(runs)) == 0
    assert main(["aggregate", "--expected", '{"datasets": ["sine"]}', "--out-runs", str(tmp_path / "r.csv"),
                 "--out-history", str(tmp_path / "h.csv")]) == 1
    assert "missing key 'models'" in caplog.text and not (tmp_path / "r.csv").exists()


# results.claims as the workflow passes it: the config schema's defaults
CLAIM_DEFAULTS = {key: prop["default"] for key, prop in yaml.safe_load(
    (REPO / "workflow/schemas/config.schema.yaml").read_text())["properties"]["results"]["properties"]["claims"][
    "properties"].items()}
CLAIM_SETTINGS = claims.ClaimsSettings.from_dict(CLAIM_DEFAULTS)


@pytest.mark.parametrize("settings, message", [
    ({"min_seeds": 2, "metric_tolerance_std": 1.0}, "missing ['speedup_min']"),
    ({**CLAIM_DEFAULTS, "min_seed": 2}, "unknown ['min_seed']"),
])
def test_claims_settings_name_a_missing_or_unknown_key(settings, message):
    with pytest.raises(ValueError, match=re.escape(f"claims settings: {message}, expected ['min_seeds', "
                                                   "'metric_tolerance_std', 'speedup_min']")):
        claims.ClaimsSettings.from_dict(settings)


def claims_summary(times, metrics=None):
    return summary.summarize(runs_frame(times, metrics))


def verdicts(times, metrics=None, hardware=HARDWARE):
    s = claims_summary(times, metrics)
    table = claims.check_claims(s, scaling.scaling_table(s, scaling.hardware_entries(hardware), threshold=0.7), TYPES,
                                CLAIM_SETTINGS)
    return dict(zip(table.claim_id, table.verdict)), table


def spread3(x, step=0.02):
    """Three seeds close around x (relative spread ``step``): enough for a decided comparison."""
    return [x * (1 - step), x, x * (1 + step)]


def test_claims_true():
    times = {("cfc", "ddp-1gpu"): spread3(10), ("cfc", "ddp-2gpu"): spread3(5), ("cfc", "ddp-4gpu"): spread3(4),
             ("ltc", "ddp-1gpu"): spread3(20), ("ltc", "ddp-2gpu"): spread3(11), ("ltc", "ddp-4gpu"): spread3(8)}
    # CfC clearly better on MSE (lower): non-inferior whatever the margin
    metrics = {k: spread3(0.05 if k[0] == "cfc" else 0.1) for k in times}
    gpus = {k: v for k, v in HARDWARE.items() if v["device"] == "cuda"}
    v, table = verdicts(times, metrics, gpus)
    assert {k: v[k] for k in ("cfc_faster", "cfc_metric", "ddp_faster", "best_at_2")} == {
        "cfc_faster": "true", "cfc_metric": "true", "ddp_faster": "true", "best_at_2": "true"}
    assert v["order_both_impls"] == "undecidable"  # no fast implementation in the study
    evidence = table.set_index("claim_id")["evidence"]
    assert "time ratio cfc/ltc 0.5" in evidence["cfc_faster"] and ": supports" in evidence["cfc_faster"]
    # the wording follows the metric's direction: lower MSE is better, so CfC is better, not "worse by -0.05"
    assert "lower is better: cfc better by 0.05" in evidence["cfc_metric"]


def test_claims_false():
    times = {("cfc", "ddp-1gpu"): spread3(10), ("cfc", "ddp-2gpu"): spread3(12), ("cfc", "ddp-4gpu"): spread3(2.5),
             ("ltc", "ddp-1gpu"): spread3(5), ("ltc", "ddp-2gpu"): spread3(11), ("ltc", "ddp-4gpu"): spread3(2.5)}
    metrics = {k: spread3(0.5 if k[0] == "cfc" else 0.1) for k in times}
    v, _ = verdicts(times, metrics)  # ddp-cpu-2 has no runs: the GPU widths decide "false" alone
    assert v == {"cfc_faster": "false", "cfc_metric": "false", "order_both_impls": "undecidable",
                 "cfc_faster_than_lstm": "undecidable", "ltc_faster_than_lstm": "undecidable",
                 "cfc_metric_vs_lstm": "undecidable", "ltc_metric_vs_lstm": "undecidable",
                 "ddp_faster": "false", "best_at_2": "false"}


def test_a_time_ratio_whose_interval_includes_1_is_neither_true_nor_false():
    """CfC's geometric mean is below LTC's (ratio 0.6), but two seeds far apart put 1 inside the
    95 % interval: the claim is not significant, as the interval says, not "true"."""
    v, table = verdicts({("cfc", "cpu"): [3, 9], ("ltc", "cpu"): [8, 10]}, hardware={"cpu": {"device": "cpu"}})
    row = table.set_index("claim_id").loc["cfc_faster"]
    assert v["cfc_faster"] == claims.NOT_SIGNIFICANT == "not significant at 95 %"
    assert (row.supports, row.contradicts, row.not_significant, row.decided) == (0, 0, 1, 1)
    r = stats.ratio(stats.estimate_of(claims_summary({("a", "cpu"): [3, 9]}).iloc[0], "train_time_s"),
                    stats.estimate_of(claims_summary({("a", "cpu"): [8, 10]}).iloc[0], "train_time_s"))
    assert r["ci_low"] < 1 < r["ci_high"] and r["value"] == pytest.approx(math.sqrt(27 / 80))
    assert f"[{claims.num(r['ci_low'], 3)}, {claims.num(r['ci_high'], 3)}]" in row.evidence
    # the same in the scaling direction: a DDP speedup whose interval contains 1
    v, _ = verdicts({("cfc", "cpu"): [3, 9], ("cfc", "ddp-cpu-2"): [4, 6]},
                    hardware={"cpu": {"device": "cpu"}, "ddp-cpu-2": HARDWARE["ddp-cpu-2"]})
    assert v["ddp_faster"] == claims.NOT_SIGNIFICANT


def test_claims_on_the_baselines_use_the_ratios_tables_numbers():
    times = {("cfc", "cpu"): spread3(30), ("ltc", "cpu"): spread3(90), ("lstm", "cpu"): spread3(3)}
    metrics = {("cfc", "cpu"): spread3(0.1), ("ltc", "cpu"): spread3(0.1), ("lstm", "cpu"): spread3(0.1)}
    s = claims_summary(times, metrics)
    table = claims.check_claims(s, scaling.scaling_table(s, CPU_ONLY, threshold=0.7), TYPES,
                                CLAIM_SETTINGS).set_index("claim_id")
    assert table.loc["cfc_faster_than_lstm", "verdict"] == "false"
    assert table.loc["ltc_faster_than_lstm", "verdict"] == "false"
    ratios = compare.ratio_table(s, TYPES).set_index(["model", "reference"])
    assert ratios.loc[("cfc", "lstm"), "train_time_s_ratio"] == pytest.approx(10, rel=1e-3)
    assert f"time ratio cfc/lstm {claims.num(ratios.loc[('cfc', 'lstm'), 'train_time_s_ratio'], 3)}" in \
        table.loc["cfc_faster_than_lstm", "evidence"]
    # equal metrics with a margin of one pooled std: three seeds cannot show equivalence
    assert table.loc["cfc_metric_vs_lstm", "verdict"] == claims.NOT_SIGNIFICANT


def test_each_claim_is_one_registry_entry():
    extra = claims.Claim(text="GRU trains faster than LSTM", compare=claims._faster("gru", "lstm"), rule="ratio < 1")
    times = {("gru", "cpu"): spread3(2), ("lstm", "cpu"): spread3(4)}
    s = claims_summary(times)
    types = {"gru": "gru", "lstm": "lstm"}
    try:
        claims.CLAIMS["gru_faster"] = extra
        table = claims.check_claims(s, scaling.scaling_table(s, CPU_ONLY, threshold=0.7), types,
                                    CLAIM_SETTINGS).set_index("claim_id")
    finally:
        del claims.CLAIMS["gru_faster"]
    assert table.loc["gru_faster", "verdict"] == "true" and table.loc["gru_faster", "claim"] == extra.text


def test_claims_undecidable_with_one_seed_or_no_ddp():
    v, table = verdicts({("cfc", "ddp-1gpu"): [10], ("cfc", "ddp-2gpu"): [5], ("ltc", "ddp-1gpu"): [20],
                         ("ltc", "ddp-2gpu"): [11]})
    assert set(v.values()) == {"undecidable"}
    assert "too few ok seeds" in table.set_index("claim_id").loc["cfc_faster", "evidence"]
    v, table = verdicts({("cfc", "cpu"): spread3(1), ("ltc", "cpu"): spread3(3)}, hardware={"cpu": {"device": "cpu"}})
    assert v["ddp_faster"] == v["best_at_2"] == "undecidable" and v["cfc_faster"] == "true"
    assert table.set_index("claim_id").loc["ddp_faster", "evidence"] == "no comparison possible in this study"


IMPL_TYPES = {"cfc": "cfc", "ltc": "ltc", "cfc_fast": {"type": "cfc", "impl": "fast"},
              "ltc_fast": {"type": "ltc", "impl": "fast"}}


def test_ratios_pair_implementations_and_keep_cfc_vs_ltc_within_one():
    times = {("cfc", "cpu"): [2, 4], ("ltc", "cpu"): [6, 10], ("cfc_fast", "cpu"): [1, 1], ("ltc_fast", "cpu"): [2, 2]}
    table = compare.ratio_table(summary.summarize(runs_frame(times)), IMPL_TYPES)
    pairs = {(r.comparison, r.model, r.reference): r.train_time_s_ratio for r in table.itertuples()}
    assert set(pairs) == {("cfc vs ltc", "cfc", "ltc"), ("cfc vs ltc", "cfc_fast", "ltc_fast"),
                          ("fast vs ncps", "cfc_fast", "cfc"), ("fast vs ncps", "ltc_fast", "ltc")}
    # ratios of geometric means: 2 / sqrt(6 * 10)
    assert pairs[("fast vs ncps", "ltc_fast", "ltc")] == pytest.approx(2 / math.sqrt(60))
    assert pairs[("cfc vs ltc", "cfc_fast", "ltc_fast")] == pytest.approx(0.5)


@pytest.mark.parametrize("fast_ltc, verdict", [(spread3(2), "true"), (spread3(0.5), "false")])
def test_claim_ordering_under_both_implementations(fast_ltc, verdict):
    times = {("cfc", "cpu"): spread3(3), ("ltc", "cpu"): spread3(8), ("cfc_fast", "cpu"): spread3(1),
             ("ltc_fast", "cpu"): fast_ltc}
    s = claims_summary(times)
    table = claims.check_claims(s, scaling.scaling_table(s, CPU_ONLY, threshold=0.7), IMPL_TYPES,
                                 CLAIM_SETTINGS).set_index("claim_id")
    assert table.loc["order_both_impls", "verdict"] == verdict
    assert table.loc["order_both_impls", "decided"] == 1
    assert "(ncps)" in table.loc["order_both_impls", "evidence"]
    # cfc_faster covers each implementation's own pair, never cfc against ltc_fast
    assert table.loc["cfc_faster", "comparisons"] == 2


def test_impl_speedup_figure_with_and_without_pairs(tmp_path):
    from liquidbench.results import figures

    times = {("cfc", "cpu"): [2, 4], ("cfc_fast", "cpu"): [1, 1]}
    s = summary.summarize(runs_frame(times))
    assert [p.suffix for p in figures.impl_speedup(s, tmp_path / "a", model_types=IMPL_TYPES)] == [".png", ".pdf"]
    assert [p.suffix for p in figures.impl_speedup(s, tmp_path / "b", model_types=TYPES)] == [".png", ".pdf"]
    assert (tmp_path / "a.png").stat().st_size != (tmp_path / "b.png").stat().st_size


def test_latex_is_escaped():
    tex = to_latex(pd.DataFrame({"a_b": ["50 % ± 1 & x"]}), "cap")
    assert r"a\_b" in tex and r"50 \% $\pm$ 1 \& x" in tex and r"\toprule" in tex


def test_no_interval_of_a_positive_quantity_goes_below_zero(tmp_path):
    """Seeds far apart (0.2 s and 1.6 s: the arithmetic t interval reaches -8.0) in every table."""
    spread = [0.2, 1.6]
    times = {(m, hw): [t * f for t in spread] for m, f in (("cfc", 1), ("ltc", 3), ("lstm", 2))
             for hw in ("cpu", "ddp-cpu-2", "ddp-1gpu", "ddp-2gpu", "ddp-4gpu")}
    runs = runs_frame(times)
    runs = runs.assign(steady_epoch_time_s=runs.train_time_s / 2, throughput_samples_per_s=100 / runs.train_time_s,
                       step_time_median_s=runs.train_time_s / 50, peak_host_rss_mb=[300, 900] * (len(runs) // 2),
                       comm_fraction=[0.0, 0.05] * (len(runs) // 2),
                       **{"telemetry.gpu.energy_j": runs.train_time_s * 200, "telemetry.gpu.util_mean_pct": 1.0})
    s = summary.summarize(runs)
    assert (s["train_time_s_ci_low"] > 0).all()
    for m in summary.POSITIVE:
        if s[f"{m}_n"].max() >= 2:
            assert (s[f"{m}_ci_low"] > 0).all(), m
            assert (s[f"{m}_ci_low"] < s[f"{m}_gmean"]).all() and (s[f"{m}_gmean"] < s[f"{m}_ci_high"]).all(), m
    for m, (lo, hi) in summary.BOUNDS.items():
        assert ((s[f"{m}_ci_low"] >= lo) & (s[f"{m}_ci_high"] <= hi)).all(), m
    sc = scaling.scaling_table(s, ENTRIES, threshold=0.7)
    assert len(sc) and (sc[["speedup_ci_low", "efficiency_ci_low"]] > 0).all().all()
    ratios = compare.ratio_table(s, TYPES)
    assert len(ratios) and (ratios[[c for c in ratios if c.endswith("_ratio_ci_low")]] > 0).all().all()
    histories = pd.DataFrame([{"dataset": "sine", "model": m, "hardware": hw, "seed": seed, "epoch": 1,
                               "val_metric": 0.0, "epoch_time_s": t} for (m, hw), ts in times.items()
                              for seed, t in enumerate(ts)])
    ttt = compare.time_to_target(runs, histories, {"sine": 0.5})
    assert (ttt["time_ci_low"] > 0).all()
    # compact cells: the geometric mean with its interval and n (the rest stays in the CSV); the
    # data set's fastest configuration (cfc: times x 1) is marked
    shown = summary.display(s).set_index(["model", "hardware"])
    cell = shown.loc[("cfc", "cpu"), "train time [s]"]
    gm, lo, hi = math.sqrt(0.32), math.sqrt(0.32) * 8 ** (-12.7062 / 2), math.sqrt(0.32) * 8 ** (12.7062 / 2)
    assert cell.startswith(f"{gm:.4g} [") and cell.endswith("] n=2 ★")
    assert sum(v.endswith("★") for v in shown["train time [s]"]) == 1
    # no GPU memory was measured: the column is left out
    shown_lo, shown_hi = (float(v) for v in cell.split("[")[1].split("]")[0].split(", "))
    assert shown_lo == pytest.approx(lo, rel=5e-3) and shown_hi == pytest.approx(hi, rel=5e-3)  # 3 digits
    assert "peak GPU mem [MB]" not in shown and "GPU energy [J]" in shown
    metric_cell = shown.loc[("cfc", "cpu"), "test metric"]
    assert metric_cell.startswith("0.1 [0.1, 0.1] n=2")


def test_metric_intervals_stay_in_the_metrics_range():
    """Two seeds far apart: the t interval of an accuracy's mean would run from below 0 to above 1,
    an MSE's below 0; both are cut to the metric's range."""
    runs = runs_frame({("cfc", "cpu"): [1, 1], ("ltc", "cpu"): [1, 1]}, {("cfc", "cpu"): [0.1, 0.9],
                                                                        ("ltc", "cpu"): [0.01, 0.5]})
    runs.loc[runs.model == "cfc", "metric_name"] = "accuracy"
    s = summary.summarize(runs).set_index("model")
    assert (s.loc["cfc", "test_metric_ci_low"], s.loc["cfc", "test_metric_ci_high"]) == (0.0, 1.0)
    assert s.loc["ltc", "test_metric_ci_low"] == 0.0 and s.loc["ltc", "test_metric_ci_high"] > 1


def test_headline_answers_per_data_set_with_the_ratios_tables_numbers():
    from liquidbench.results import headline
    from liquidbench.results.tables import to_html

    times = {("cfc", "cpu"): spread3(30), ("ltc", "cpu"): spread3(90), ("lstm", "cpu"): spread3(3)}
    # accuracy: higher is better; LTC the most accurate, LSTM the fastest, CfC beaten on both by LSTM
    metrics = {("cfc", "cpu"): spread3(0.80), ("ltc", "cpu"): spread3(0.90), ("lstm", "cpu"): spread3(0.85)}
    runs = runs_frame(times, metrics).assign(metric_name="accuracy")
    s = summary.summarize(runs)
    table = headline.headline(s, TYPES).iloc[0]
    assert (table.fastest, table.next_fastest, table.most_accurate, table.next_accurate) == ("lstm", "cfc", "ltc", "lstm")
    ratios = compare.ratio_table(s, TYPES).set_index(["model", "reference"])
    assert table.next_time_ratio == pytest.approx(ratios.loc[("cfc", "lstm"), "train_time_s_ratio"])
    assert table.next_time_ratio_ci_low == pytest.approx(ratios.loc[("cfc", "lstm"), "train_time_s_ratio_ci_low"])
    assert table.next_worse_by == pytest.approx(0.05) and table.next_worse_by_ci_low < 0.05 < table.next_worse_by_ci_high
    assert table.pareto == "lstm; ltc"  # cfc: slower and less accurate than lstm
    assert table.time_vs_lstm.startswith("cfc 10x [") and "ltc 30x [" in table.time_vs_lstm
    claims_table = claims.check_claims(s, scaling.scaling_table(s, CPU_ONLY, threshold=0.7), TYPES,
                                       CLAIM_SETTINGS)
    raw, shown, notes = headline.build(s, claims_table, TYPES)
    assert shown.iloc[0]["test metric"] == "accuracy (higher is better)"
    assert shown.iloc[0]["fastest (train time [s])"].startswith("lstm: 3 [")
    assert "- CfC trains faster than LSTM: **false**" in notes
    html = to_html(shown, "Headline results", notes)
    assert "<li>CfC trains faster than LSTM: <b>false</b>" in html and html.count("<tr>") == 2


def test_time_figures_use_a_log_axis_and_leave_out_what_was_not_run():
    import matplotlib.pyplot as plt

    from liquidbench.results import figures

    # lstm runs on cpu only, cfc on both: 3 points, none for lstm on ddp-cpu-2 (not drawn at 0)
    times = {("cfc", "cpu"): [30, 40], ("lstm", "cpu"): [0.3, 0.4], ("cfc", "ddp-cpu-2"): [20, 25]}
    s = summary.summarize(runs_frame(times))
    fig, ax = plt.subplots()
    figures._points(ax, s, "train_time_s", "t", ["cpu", "ddp-cpu-2"], log=True)
    points = [(x, y) for c in ax.containers for x, y in zip(*c[0].get_data())]
    assert ax.get_yscale() == "log" and len(points) == 3 and all(y > 0 for _, y in points)
    assert ax.get_legend() is not None and ax.get_legend().get_bbox_to_anchor().x0 > ax.bbox.x1 - 1  # beside the axes
    plt.close(fig)

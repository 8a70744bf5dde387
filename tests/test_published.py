"""The published-vs-reproduced table and its claims on hand-computed fixtures: agree, disagree, no
published number, not run, too few seeds; and the shipped published-results file."""

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from liquidbench.cli import main
from liquidbench.results import published as pb
from liquidbench.results import summary

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "config/published/ltc_paper.yaml"
DATASETS = {"traffic": "metro_traffic", "traffic_prefix2020": "metro_traffic", "har561": "uci_har_561"}
MODELS = {"ltc": "LTC", "lstm": "LSTM"}
CONFIG = {
    "traffic": {"kind": "traffic", "params": {"protocol": "current"}},
    "traffic_prefix2020": {"kind": "traffic", "params": {"protocol": "prefix_2020"}},
    "har561": {"kind": "har", "params": {"protocol": "features561"}},
}
STUDY_MODELS = ["ltc", "lstm", "cfc"]


def summary_of(metrics: dict) -> pd.DataFrame:
    """summary.csv of runs whose test metrics are metrics[(dataset, model)] per seed."""
    rows = []
    for (dataset, model), values in metrics.items():
        for seed, m in enumerate(values):
            rows.append(dict(dataset=dataset, model=model, hardware="cpu", seed=seed, status="ok", test_metric=m,
                             metric_name="accuracy" if dataset.startswith("har") else "mse", n_params=10,
                             model_type=model, train_time_s=1.0))
    return summary.summarize(pd.DataFrame(rows))


@pytest.fixture
def table():
    s = summary_of({
        ("traffic", "ltc"): [0.10, 0.11],           # agrees with 0.099 ± 0.0095
        ("traffic", "lstm"): [0.30, 0.32],          # far from 0.169 ± 0.004
        ("traffic", "cfc"): [0.20, 0.21],           # nothing published
        ("traffic_prefix2020", "ltc"): [0.12],      # one seed: no std
        ("traffic_prefix2020", "lstm"): [0.165, 0.171],
    })                                              # har561: not run at all
    return pb.published_table(s, pb.load(PUBLISHED), DATASETS, MODELS, CONFIG, STUDY_MODELS)


def row(table, dataset, model):
    r = table[(table["dataset"] == dataset) & (table["model"] == model)]
    assert len(r) == 1
    return r.iloc[0]


def test_agree_by_the_two_sigma_rule(table):
    r = row(table, "traffic", "ltc")
    std = math.sqrt(((0.10 - 0.105) ** 2 + (0.11 - 0.105) ** 2) / 1)
    assert r["reproduced_mean"] == pytest.approx(0.105) and r["reproduced_std"] == pytest.approx(std)
    assert r["difference"] == pytest.approx(0.006)
    assert r["tolerance"] == pytest.approx(2 * math.sqrt(0.0095 ** 2 + std ** 2))  # 0.02368
    assert r["verdict"] == "consistent" and r["protocol"] == "current" and r["published_n"] == 5


def test_disagree(table):
    r = row(table, "traffic", "lstm")
    assert r["difference"] == pytest.approx(0.141)
    assert r["tolerance"] == pytest.approx(2 * math.sqrt(0.004 ** 2 + 0.02 ** 2 / 2))  # 0.0294
    assert r["verdict"] == "inconsistent"
    assert row(table, "traffic_prefix2020", "lstm")["verdict"] == "consistent"  # 0.168 vs 0.169


def test_no_published_number_has_no_verdict(table):
    r = row(table, "traffic", "cfc")
    assert r["verdict"] == "" and math.isnan(r["published_mean"]) and r["reproduced_mean"] == pytest.approx(0.205)
    shown = pb.display(table)
    cell = shown[(shown["data set"] == "traffic") & (shown["model"] == "cfc")].iloc[0]
    assert cell["published"] == "—" and cell["verdict"] == "—" and cell["reproduced"].startswith("0.205 ± ")


def test_not_run_combinations_are_kept(table):
    har = table[table["dataset"] == "har561"]
    assert list(har["model"]) == ["ltc", "lstm", "cfc"]
    assert (har["verdict"] == "not run").all() and (har["runs"] == "not in the study").all()
    assert list(har["published_mean"][:2]) == [95.67, 95.85] and har["protocol"].iloc[0] == "features561"
    shown = pb.display(table)
    assert (shown[shown["data set"] == "har561"]["reproduced"] == "not run").all()
    # a model of the study without any run on a data set that did run: also "not run"
    assert row(table, "traffic_prefix2020", "cfc")["verdict"] == "not run"


def test_a_configured_reason_says_why_a_data_set_has_no_run():
    s = summary_of({("traffic", "ltc"): [0.10, 0.11]})
    why = "not run: its 561-feature files are not available"
    t = pb.published_table(s, pb.load(PUBLISHED), DATASETS, MODELS, CONFIG, STUDY_MODELS, not_run={"har561": why})
    assert (t[t["dataset"] == "har561"]["runs"] == why).all()
    # a data set with runs keeps its runs cell; one without a reason says it is not in the study
    assert row(t, "traffic", "ltc")["runs"] != why
    assert (t[t["dataset"] == "traffic_prefix2020"]["runs"] == "not in the study").all()
    with pytest.raises(ValueError, match="not_run names 'har'"):
        pb.published_table(s, pb.load(PUBLISHED), DATASETS, MODELS, CONFIG, STUDY_MODELS, not_run={"har": why})


def test_one_seed_is_undecidable(table):
    r = row(table, "traffic_prefix2020", "ltc")
    assert r["verdict"] == "undecidable" and r["difference"] == pytest.approx(0.021) and math.isnan(r["tolerance"])


def test_accuracy_is_compared_in_percent():
    s = summary_of({("har561", "ltc"): [0.955, 0.958]})
    t = pb.published_table(s, pb.load(PUBLISHED), {"har561": "uci_har_561"}, MODELS, CONFIG, ["ltc"])
    r = row(t, "har561", "ltc")
    assert r["reproduced_mean"] == pytest.approx(95.65) and r["difference"] == pytest.approx(-0.02)
    assert r["verdict"] == "consistent"


def test_claims_per_data_set(table):
    claims = {c["claim_id"]: c for c in pb.claim_rows(table)}
    assert claims["published:traffic"]["verdict"] == "false"  # LSTM disagrees
    assert claims["published:traffic"]["decided"] == 2 and claims["published:traffic"]["comparisons"] == 2
    assert claims["published:traffic_prefix2020"]["verdict"] == "undecidable"  # LTC has one seed
    assert claims["published:har561"]["verdict"] == "undecidable"
    assert "not run" in claims["published:har561"]["evidence"]
    assert claims["published:traffic"]["claim"] == (
        "The reproduction agrees with the LTC paper on traffic (metro_traffic, protocol current)")
    agreeing = pb.published_table(summary_of({("traffic", "ltc"): [0.10, 0.11], ("traffic", "lstm"): [0.168, 0.17]}),
                                  pb.load(PUBLISHED), {"traffic": "metro_traffic"}, MODELS, CONFIG, ["ltc", "lstm"])
    assert pb.claim_rows(agreeing)[0]["verdict"] == "true"


def test_shipped_file_holds_the_papers_table_3():
    data = pb.load(PUBLISHED)
    traffic, har = data["datasets"]["metro_traffic"], data["datasets"]["uci_har_561"]
    assert traffic["results"]["LTC"] == {"mean": 0.099, "std": 0.0095} and traffic["metric"] == "mse"
    assert har["results"]["LSTM"] == {"mean": 95.85, "std": 0.29} and har["scale"] == 100
    assert "2006.04439" in data["citation"]


def test_bad_files_and_names_are_clear(tmp_path):
    bad = tmp_path / "bad.yaml"
    data = yaml.safe_load(PUBLISHED.read_text())
    data["datasets"]["metro_traffic"]["results"]["LTC"] = {"mean": "low"}
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"datasets.metro_traffic.results.LTC: expected numbers 'mean' and 'std'"):
        pb.load(bad)
    with pytest.raises(ValueError, match=r"results.published.datasets.traffic: 'metro' is not a data set"):
        pb.published_table(pd.DataFrame(), pb.load(PUBLISHED), {"traffic": "metro"}, MODELS, CONFIG, [])
    with pytest.raises(ValueError, match=r"names 'trafic', which is not defined under 'datasets'"):
        pb.published_table(pd.DataFrame(), pb.load(PUBLISHED), {"trafic": "metro_traffic"}, MODELS, CONFIG, [])


@pytest.mark.parametrize("setting, message", [
    ({"file": "f.yaml", "models": MODELS}, "missing or not mappings: ['datasets']"),
    ({"file": "f.yaml", "datasets": DATASETS, "models": MODELS, "sigma": 3}, "unknown key(s) ['sigma'], expected"),
])
def test_published_setting_names_a_missing_or_unknown_key(setting, message):
    with pytest.raises(ValueError, match=rf"^--published: .*{re.escape(message)}"):
        pb.PublishedSettings.from_dict(setting)


def test_published_setting_keeps_the_defaults():
    setting = pb.PublishedSettings.from_dict({"file": "f.yaml", "datasets": DATASETS, "models": MODELS})
    assert (setting.sigmas, setting.min_seeds, setting.not_run, setting.dataset_config, setting.study_models) == \
        (2.0, 2, None, {}, [])


def test_cli_writes_the_table_and_adds_claims(tmp_path):
    s = summary_of({("traffic", "ltc"): [0.10, 0.11], ("traffic", "lstm"): [0.30, 0.32]})
    s.to_csv(tmp_path / "summary.csv", index=False)
    pd.DataFrame(columns=["dataset", "model", "hardware", "n", "speedup", "t1_seeds", "tn_seeds", "device",
                          "scaling", "baseline"]).to_csv(tmp_path / "scaling.csv", index=False)
    out = {ext: tmp_path / f"published.{ext}" for ext in ("csv", "md", "tex")}
    settings = json.dumps({"file": str(PUBLISHED), "datasets": {"traffic": "metro_traffic", "har561": "uci_har_561"},
                           "models": MODELS, "dataset_config": CONFIG, "study_models": ["ltc", "lstm"]})
    assert main(["published", "--summary", str(tmp_path / "summary.csv"), "--published-settings", settings,
                 "--out-csv", str(out["csv"]), "--out-md", str(out["md"]), "--out-tex", str(out["tex"])]) == 0
    written = pd.read_csv(out["csv"], keep_default_na=False)
    assert list(written["verdict"]) == ["consistent", "inconsistent", "not run", "not run"]
    md = out["md"].read_text()
    assert "| traffic | current | ltc | cpu | 0.099 ± 0.0095 n=5 | 0.105 ± 0.0071" in md
    assert "Hasani" in md and "2 x sqrt(s_pub^2 + s_rep^2)" in md
    assert r"\pm" in out["tex"].read_text()
    claims_csv = tmp_path / "claims.csv"
    assert main(["claims", "--summary", str(tmp_path / "summary.csv"), "--scaling", str(tmp_path / "scaling.csv"),
                 "--model-types", json.dumps({"ltc": "ltc", "lstm": "lstm"}), "--settings", json.dumps({"min_seeds": 2, "metric_tolerance_std": 1.0, "speedup_min": 1.0}),
                 "--published", str(out["csv"]),
                 "--out-csv", str(claims_csv)]) == 0
    claims = pd.read_csv(claims_csv).set_index("claim_id")
    assert claims.loc["published:traffic", "verdict"] == "false"
    assert claims.loc["published:har561", "verdict"] == "undecidable"
    assert claims.loc["published:har561", "evidence"].startswith("ltc (no run): not run (not in the study)")
    assert "cfc_faster" in claims.index  # the study's own claims are still there

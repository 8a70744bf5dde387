"""Study files as the workflow and `liquidbench --config` read them: what is quoted stays a string,
1e-3 is a number, aliases cannot blow up, integers are ints."""

import time

import pytest
import yaml

from conftest import REPO, snakemake
from liquidbench.study import (
    MAX_VALUES,
    check_expanded_size,
    config_errors,
    load_study,
    strict_validator,
    study_config,
    typed_scalars,
)

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
STUDY_FILES = sorted([*REPO.glob("config/*.yaml"), *REPO.glob(".test/config/*.yaml")])


def alias_bomb(depth: int, mapping: bool) -> str:
    """A "billion laughs" document: each level 9 aliases of the one before (9**depth values)."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, depth):
        items = [f"k{j}: *l{i - 1}" if mapping else f"*l{i - 1}" for j in range(9)]
        lines.append(f"l{i}: &l{i} " + ("{" + ", ".join(items) + "}" if mapping else "[" + ", ".join(items) + "]"))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("mapping", [False, True], ids=["lists", "mappings"])
def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path, mapping):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(9, mapping))
    start = time.perf_counter()
    with pytest.raises(ValueError) as err:
        load_study(path)
    assert time.perf_counter() - start < 10  # counted once per shared value: milliseconds
    assert str(err.value) == (f"config file {path}: its YAML aliases (*name) expand to more than {MAX_VALUES:,} values "
                              "(aliases nested inside aliases multiply); write the values out or use fewer aliases")


def test_an_alias_that_contains_itself_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("study: &s {datasets: [sine], again: *s}\n")
    with pytest.raises(ValueError, match=r"a YAML alias \(\*name\) refers to a value that contains it"):
        load_study(path)


def test_aliases_are_counted_by_what_they_expand_to():
    shared = list(range(10))
    assert check_expanded_size({"a": shared, "b": shared}, "x") == 1 + 2 * 11
    with pytest.raises(ValueError, match="more than 20 values"):
        check_expanded_size({"a": shared, "b": shared}, "x", limit=20)


@pytest.mark.parametrize("path", STUDY_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_study_files_and_their_anchors_read_as_written(path):
    """config/config.yaml and config/paper.yaml share `source` entries through anchors: well within
    the bound, and read as PyYAML reads them (none writes 1e-3)."""
    assert load_study(path) == yaml.safe_load(path.read_text())


def test_quoted_values_stay_strings_and_unquoted_exponents_are_numbers(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text('year: "2020"\nswitch: "on"\nquoted_lr: "1e-3"\nlr: 1e-3\nbig: 2E5\n'
                    "plain_year: 2020\nplain_switch: on\nfloat: 1.0e-3\n")
    assert load_study(path) == {"year": "2020", "switch": "on", "quoted_lr": "1e-3", "lr": 0.001, "big": 200000.0,
                                "plain_year": 2020, "plain_switch": True, "float": 0.001}


def test_a_file_that_is_not_a_study_is_named(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match=r"^--config x: expected a study file \(a mapping of keys to values\), got list$"):
        load_study(path, "--config x")
    with pytest.raises(ValueError, match=r"^config file .*none.yaml: cannot read it \(No such file or directory\)$"):
        load_study(tmp_path / "none.yaml")


def test_command_line_values_are_typed_and_override_the_files_in_order(tmp_path):
    """--config values below the top level arrive as strings (Snakemake's BaseLoader): typed here,
    as before; later files override earlier ones, --config overrides both (Snakemake's order)."""
    assert typed_scalars({"training": {"lr": "1e-3", "epochs": "3", "drop_last": "on"}, "root": "2020",
                          "data_mirror": ["/srv/a", "null"]}) == {
        "training": {"lr": 0.001, "epochs": 3, "drop_last": True}, "root": 2020, "data_mirror": ["/srv/a", None]}
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text('root: "2020"\ntraining: {lr: 0.5, epochs: 2}\nstudy: {seeds: [0, 1]}\n')
    second.write_text("training: {epochs: 4}\n")
    merged = study_config([first, second], {"training": {"lr": "1e-3"}, "study": {"seeds": ["7"]}})
    assert merged == {"root": "2020", "training": {"lr": 0.001, "epochs": 4}, "study": {"seeds": [7]}}


def test_command_line_aliases_are_bounded_too():
    shared = ["1"] * 9
    for _ in range(8):
        shared = [shared] * 9
    with pytest.raises(ValueError, match="^--config: its YAML aliases"):
        study_config([], {"x": shared})


def schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def test_an_integer_key_refuses_a_float_naming_the_key():
    config = load_study(REPO / ".test/config/config.yaml")
    config["training"]["epochs"] = 2.0
    config["study"]["seeds"] = [0, 1.0]
    assert config_errors(config, schema()) == ["config key 'study.seeds.1': 1.0 is not of type 'integer'",
                                               "config key 'training.epochs': 2.0 is not of type 'integer'"]


def integer_schemas(node, path=""):
    """(where, subschema) of every subschema of the config schema that takes integers."""
    if isinstance(node, dict):
        kinds = node.get("type")
        if kinds == "integer" or (isinstance(kinds, list) and "integer" in kinds):
            yield path, node
        for key, value in node.items():
            yield from integer_schemas(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from integer_schemas(value, f"{path}/{i}")


def test_every_integer_key_takes_ints_and_only_ints():
    found = list(integer_schemas(schema()))
    assert len(found) > 10
    for where, sub in found:
        sub = {k: v for k, v in sub.items() if k not in ("description", "default")}
        value = sub.get("minimum", sub.get("exclusiveMinimum", -1) + 1)
        for v in (value, value + 1):
            assert strict_validator(sub).is_valid(v), (where, v)
        assert not strict_validator(sub).is_valid(float(value)), where
        assert not strict_validator(sub).is_valid(True), where
    defaults = [(w, s["default"]) for w, s in found if "default" in s]
    assert all(type(d) is int for _, d in defaults), defaults  # Snakemake fills them in after the check
    assert strict_validator({"type": "number"}).is_valid(2) and strict_validator({"type": "number"}).is_valid(2.0)


@pytest.mark.parametrize("path", STUDY_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_study_files_pass_the_strict_check(path):
    assert config_errors(load_study(path), schema()) == []


def test_workflow_refuses_an_alias_bomb_at_once(workflow_copy):
    (workflow_copy / "bomb.yaml").write_text(alias_bomb(9, mapping=False))
    start = time.perf_counter()
    proc = snakemake(workflow_copy, "-n", "--configfile", "bomb.yaml", check=False, timeout=300)
    assert time.perf_counter() - start < 60  # Snakemake's start; before, the typing of 9**9 values took hours
    assert proc.returncode != 0
    assert "bomb.yaml: its YAML aliases (*name) expand to more than" in proc.stdout + proc.stderr


def test_workflow_keeps_quoted_values_of_a_study_file(workflow_copy):
    """root: "2020" stays a folder name (it used to become the number 2020 and fail the schema),
    data_mirror: "on" a directory name (it used to become true); lr: 1e-3 is a number."""
    text = (workflow_copy / ".test/config/config.yaml").read_text()
    lines = [line for line in text.splitlines() if not line.startswith(("root:", "data_mirror:"))]
    study = "\n".join(lines).replace("lr: 0.01", "lr: 1e-3") + '\nroot: "2020"\ndata_mirror: "on"\n'
    (workflow_copy / "study.yaml").write_text(study)
    proc = snakemake(workflow_copy, "-n", "-p", "--configfile", "study.yaml", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2020/results/runs/sine/" in proc.stdout and '"lr": 0.001' in proc.stdout

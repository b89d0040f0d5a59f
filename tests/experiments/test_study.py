"""The papermill study: committed notebooks without outputs, their parameters, and a whole study executed."""
from __future__ import annotations

import ast
import json
import re

import nbformat
import pytest
from conftest import REPO

from ecglib.cli import build_parser, main
from ecglib.cli.commands import train_settings
from ecglib.config import PROFILES, RECIPE_TRAIN_KEYS, RECIPES, ODEConfig, TrainConfig, logit_offsets, study_settings
from ecglib.errors import EcgError
from ecglib.experiments.study import NOTEBOOKS as STUDY_NOTEBOOKS
from ecglib.experiments.study import PROTOCOLS, execute_notebook, run_study
from ecglib.experiments.tolerance import DEFAULT_SWEEP
from ecglib.models import build_model

ROOT = REPO


NOTEBOOK_DIR = ROOT / "notebooks"


NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


TINY = {"limit": 300, "epochs": 1, "batch_size": 64}


def _parameters(nb) -> dict:
    """The values assigned in a notebook's parameters cell: literals and arithmetic on them."""
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            names = [n for n in ast.walk(node.value) if isinstance(n, (ast.Name, ast.Call, ast.Attribute))]
            assert not names, ast.unparse(node)
            values[node.targets[0].id] = eval(compile(ast.Expression(node.value), "parameters", "eval"),
                                              {"__builtins__": {}})
    return values


# -------------------------------------------------------------------------------------------------- executions
@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private beat cache for the kernels too (they inherit the environment)."""
    mp = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("ecglib-cache")
    mp.setenv("ECGLIB_CACHE", str(folder))
    yield folder
    mp.undo()


@pytest.fixture(scope="module")
def study(cache, tmp_path_factory):
    """One tiny `ecglib study`: every notebook runs once through papermill."""
    out = tmp_path_factory.mktemp("study")
    rc = run_study("quick", "synthetic", out=out, epochs=TINY["epochs"], limit=TINY["limit"], progress=False,
                          train_overrides={"batch_size": TINY["batch_size"]})
    assert rc == 0
    return out


# ------------------------------------------------------------------------------------------------ static checks
def test_the_three_study_notebooks_are_committed():
    assert [p.name for p in NOTEBOOKS] == list(STUDY_NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_have_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs or execution counts; run " \
                      f"`jupyter nbconvert --clear-output --inplace notebooks/*.ipynb`"
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_have_a_papermill_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"
    assert _parameters(nb)
    # papermill cannot parse a parameter line whose comment holds "=": keep the comments free of it
    for line in tagged[0].source.splitlines():
        assert "=" not in line.partition("#")[2], line


def test_train_notebook_takes_its_recipe_from_the_profiles():
    params = _parameters(nbformat.read(NOTEBOOK_DIR / "02_train.ipynb", as_version=4))
    # "run all" in JupyterLab trains like `make study`: the quick profile on the synthetic records, and the
    # recipe is not copied into the notebook: only changes to the profile are parameters
    assert params["profile"] == "quick" and params["source"] == "synthetic" and params["model"] in ("resnet", "odenet")
    assert params["epochs"] is None and params["limit"] is None
    assert params["train_settings"] == {} and params["ode_settings"] == {}
    for key in ("lr", "batch_size", "optimizer", "solver", "step_size", "adjoint"):
        assert key not in params, key


def test_profiles_use_the_default_recipe_and_the_default_solver():
    full, quick = PROFILES["full"], PROFILES["quick"]
    assert full.train == TrainConfig()
    assert all(p.ode == ODEConfig() for p in PROFILES.values())
    assert all(e == 5 for e in full.epochs.values()) and full.limit["mitdb"] is None
    # quick changes the optimizer for both models alike, nothing else of the recipe
    differ = {k for k, v in vars(quick.train).items() if getattr(TrainConfig(), k) != v}
    assert differ == {"optimizer", "lr", "batch_size"}


def test_the_default_odenet_is_the_same_everywhere():
    """build_model, `ecglib train --model odenet` and the study integrate with one solver and one step count."""

    default = build_model("odenet").config
    args = build_parser().parse_args(["train", "--model", "odenet", "--source", "synthetic", "--out", "x"])
    assert build_model("odenet", **train_settings(args)[0]).config == default
    for profile in PROFILES:
        _, ode, _ = study_settings(profile, "synthetic")
        assert build_model("odenet", ode=ode).config == default
    assert ODEConfig().steps == 2 and default["solver"] == "midpoint"


@pytest.mark.slow
def test_study_executes_every_notebook_and_writes_the_run_folders(study):
    for name in ("01_explore", "02_train_resnet", "02_train_odenet", "03_compare"):
        nb = nbformat.read(study / f"{name}.ipynb", as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, name
        assert nb.metadata.papermill.parameters, name
    for model in ("resnet", "odenet"):
        run = study / model
        for name in ("metrics.json", "history.csv", "best.pt", "checkpoint.pt"):
            assert (run / name).exists(), f"{model}/{name}"
        m = json.loads((run / "metrics.json").read_text())
        assert m["model"] == model
        assert len(m["history"]) == TINY["epochs"]
        assert sum(m["split_sizes"].values()) == TINY["limit"]
        assert m["config"]["data"]["source"] == "synthetic" and m["config"]["data"]["limit"] == TINY["limit"]
        assert m["config"]["train"]["batch_size"] == TINY["batch_size"]
        cm = m["confusion_matrix"]
        assert m["accuracy"] == pytest.approx(sum(cm[i][i] for i in range(5)) / sum(map(sum, cm)))
    odenet = json.loads((study / "odenet" / "metrics.json").read_text())
    # the study trains the project's default ODE-Net: two midpoint steps, 4 evaluations per batch
    assert odenet["config"]["model"] == build_model("odenet").config and odenet["nfe_forward"] == 4
    sweep = (study / "tolerance_sweep.csv").read_text().splitlines()
    assert len(sweep) == 1 + 1 + len(DEFAULT_SWEEP) - 1  # header, trained, the rest (one entry is the trained setting)
    assert (study / "conclusions.txt").read_text().count("\n- ") >= 5


@pytest.mark.slow
def test_study_sets_both_splits_with_and_without_rhythm_side_by_side(study):
    """Both models on intra and inter, each with and without the rhythm features (the rhythm runs on their
    recipe), in one table of 03_compare next to the anchors."""

    for model in ("resnet", "odenet"):
        for split, features in PROTOCOLS[1:]:
            name = f"{model}-{split}-{'rhythm' if features == 'beat+rhythm' else 'beat'}"
            m = json.loads((study / name / "metrics.json").read_text())
            assert (m["model"], m["split"]["protocol"], m["features"]) == (model, split, features), name
            recipe = RECIPES[features]
            train = m["config"]["train"]
            assert (m["context"], m["template"]) == (recipe["context"], recipe["template"]), name
            assert {k: train[k] for k in RECIPE_TRAIN_KEYS} == {k: recipe[k] for k in RECIPE_TRAIN_KEYS}, name
            assert m["config"]["model"].get("logit_offsets") == logit_offsets(recipe["s_offset"]), name
            if split == "inter":
                assert set(m["split"]["train_records"]).isdisjoint(m["split"]["test_records"]), name
    compare = nbformat.read(study / "03_compare.ipynb", as_version=4)
    cell = next(c for c in compare.cells if "protocol_dirs.items()" in c.source)
    html = next(o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {}))
    for label in ("ResNet, intra, beat", "ODE-Net, inter, beat+rhythm", "S Se", "V +P"):
        assert label in html, label
    assert "de Chazal" in (study / "report.html").read_text()


@pytest.mark.slow
def test_report_html_shows_table_matrices_and_conclusions(study):
    html = (study / "report.html").read_text()
    assert "recall S" in html and "macro-F1" in html and "ResNet" in html and "ODE-Net" in html
    assert "Majority baseline" in html and "Tolerance sweep" in html
    assert html.count("data:image/png") >= 4  # two confusion figures, the curves and the sweep
    # input cells are hidden: the reader sees the story, not the code
    assert "compare.comparison_table(runs)" not in html
    compare = nbformat.read(study / "03_compare.ipynb", as_version=4)
    confusion_cell = next(c for c in compare.cells if "plot_confusions" in c.source)
    images = [o for o in confusion_cell.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2


@pytest.mark.slow
def test_failing_notebook_names_notebook_and_cell_and_keeps_it(cache, tmp_path):
    out = tmp_path / "02_train_bad.ipynb"
    with pytest.raises(EcgError) as err:
        execute_notebook(NOTEBOOK_DIR / "02_train.ipynb", out,
                                {"model": "transformer", "limit": TINY["limit"], "epochs": 1,
                                 "run_dir": str(tmp_path / "run")},
                                cwd=tmp_path, progress=False)
    message = str(err.value)
    assert "\n" not in message
    assert "02_train.ipynb" in message and "02_train_bad.ipynb" in message
    # the code cell as the reader counts them in the committed notebook (papermill's injected cell not counted)
    nb = nbformat.read(NOTEBOOK_DIR / "02_train.ipynb", as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    number = int(re.search(r"code cell (\d+)", message).group(1))
    assert "run_training(" in code_cells[number - 1].source and "unknown model 'transformer'" in message
    assert out.exists()
    kept = nbformat.read(out, as_version=4)
    assert any(o.get("output_type") == "error" for c in kept.cells if c.cell_type == "code"
               for o in c.get("outputs", []))


def test_study_reports_missing_data_in_one_line_before_starting_kernels(tmp_path, capsys):
    rc = main(["study", "--data", "mitdb", "--mitdb-dir", str(tmp_path / "nowhere"), "--no-download",
                   "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("ecglib: error:") and "nowhere" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "01_explore.ipynb").exists()

    rc = main(["study", "--data", "kaggle", "--kaggle-dir", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "mitbih_train.csv" in err and len(err.splitlines()) == 1


def test_unknown_profile_is_an_input_error(tmp_path):
    with pytest.raises(EcgError, match="profile"):
        run_study("huge", "synthetic", out=tmp_path)

"""The papermill study: committed notebooks without outputs, their parameters, and a whole study executed."""
from __future__ import annotations

import ast
import json
import re

import nbformat
import pytest
import torch
from conftest import REPO

from ecglib.cli import build_parser, main
from ecglib.cli.commands import train_settings
from ecglib.config import PROFILES, RECIPE_TRAIN_KEYS, RECIPES, ODEConfig, TrainConfig, logit_offsets, study_settings
from ecglib.errors import EcgError
from ecglib.experiments.study import NOTEBOOKS as STUDY_NOTEBOOKS
from ecglib.experiments.study import (
    PROTOCOLS,
    ProtocolRun,
    execute_notebook,
    protocol_of,
    protocol_runs,
    run_study,
    train_missing,
)
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
    # the study trains the project's default ODE-Net, with the evaluations per batch that its solver makes
    default = build_model("odenet")
    default.reset_nfe()
    default(torch.rand(2, 1, 187))
    assert odenet["config"]["model"] == default.config and odenet["nfe_forward"] == default.nfe()[0]
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
    # the cell shows the recipes, then the protocol table
    html = "".join(o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {}))
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
    # the setup cell refuses the model before any beat is read
    assert "config.MODELS" in code_cells[number - 1].source and "unknown model 'transformer'" in message
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


# ---------------------------------------------------------------------------------- notebooks that stay true
# What a cell shows when it has nothing to show: the messages the notebooks printed before issue 27 instead of a
# result, and the generic ones. A notebook run with its defaults, as the study runs it, shows results instead.
PLACEHOLDERS = ("no sweep folder given", "set protocol_dirs", "only this pair of runs", "Empty DataFrame", "TODO",
                "placeholder", "not computed", "not available yet", "no result")
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine",
                10: "ten", 11: "eleven", 12: "twelve", 16: "sixteen"}


def _outputs(cell) -> list[tuple[str, str]]:
    """(kind, text) of every output of a code cell: stream text, plain text, markdown, html, or an image."""
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            out.append(("stream", o.get("text", "")))
        elif o.get("output_type") == "error":
            out.append(("error", f"{o.get('ename')}: {o.get('evalue')}"))
        for kind in ("text/markdown", "text/html", "text/plain", "image/png"):
            if kind in o.get("data", {}):
                out.append((kind, o["data"][kind]))
    return out


def placeholders(nb) -> list[str]:
    """Where an executed notebook shows a placeholder instead of a result: an error, a placeholder message, a table
    without rows, an empty markdown text or image, or a number that is not one ("nan") in a rendered sentence."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "injected-parameters" in cell.metadata.get("tags", []):
            continue
        for kind, text in _outputs(cell):
            where = f"cell {i} ({cell.source.strip().splitlines()[0][:50] if cell.source.strip() else ''})"
            if kind == "error":
                found.append(f"{where}: {text}")
            elif kind == "image/png":
                if len(text) < 1000:
                    found.append(f"{where}: an empty figure")
                continue
            hits = [p for p in PLACEHOLDERS if p.lower() in text.lower()]
            if hits:
                found.append(f"{where}: {hits}")
            if kind == "text/html":
                for table in re.findall(r"<table.*?</table>", text, re.S):
                    body = re.search(r"<tbody>(.*?)</tbody>", table, re.S)
                    if body is None or "<tr" not in body.group(1):
                        found.append(f"{where}: a table without rows")
            if kind == "text/markdown" and (not text.strip() or re.search(r"\bnan\b", text)):
                found.append(f"{where}: an empty or nan sentence")
    return found


def _cell_with(nb, needle: str):
    return next(c for c in nb.cells if c.cell_type == "code" and needle in c.source)


def _text(cell) -> str:
    return "\n".join(t for kind, t in _outputs(cell) if kind != "image/png")


def _markdown_text(path) -> str:
    nb = nbformat.read(path, as_version=4)
    return " ".join(" ".join(c.source for c in nb.cells if c.cell_type == "markdown").split())


def test_placeholders_are_found_where_a_result_should_be():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x")])
    cell = nb.cells[0]
    cell.outputs = [nbformat.v4.new_output("stream", text="no sweep folder given (sweep_dir = None)\n")]
    assert placeholders(nb)
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "text/html": "<table><thead><tr><th>a</th></tr></thead><tbody>\n</tbody></table>"})]
    assert placeholders(nb) == ["cell 0 (x): a table without rows"]
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": "accuracy nan%"})]
    assert placeholders(nb)
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "text/html": "<table><tbody><tr><td>0.97</td></tr></tbody></table>"}),
        nbformat.v4.new_output("stream", text="no S beat of the test set is called N by any model\n")]
    assert placeholders(nb) == []  # a result stated in words is a result


@pytest.mark.slow
def test_every_notebook_of_the_study_shows_results_and_no_placeholder(study):
    executed = {p.name: p for p in study.glob("*.ipynb")}
    expected = {"01_explore.ipynb", "03_compare.ipynb", "04_annotate.ipynb",
                *(f"02_train_{r.name()}.ipynb" for r in protocol_runs("synthetic"))}
    assert expected <= set(executed)
    for name in sorted(expected):
        assert not placeholders(nbformat.read(executed[name], as_version=4)), name


@pytest.mark.slow
def test_02_builds_the_ode_block_solves_it_many_ways_and_draws_h_of_t(study):
    nb = nbformat.read(study / "02_train_odenet.ipynb", as_version=4)
    check = _text(_cell_with(nb, "load_state_dict(reference.features.func.state_dict())"))
    assert "All keys matched successfully" in check
    gap = float(re.search(r"float64\s+largest difference of the logits: (\S+)", check).group(1))
    assert gap < 1e-6  # the block built in the notebook computes ecglib's on ecglib's weights
    call = _text(_cell_with(nb, "odeint(mine, h0, t, **kwargs)"))
    assert f"method={ODEConfig().solver!r}" in call
    solvers = _text(_cell_with(nb, "experiment_settings = ["))
    for setting in ("euler 6 steps", "midpoint 3 steps", "rk4 1 step", "dopri5 tol 0.001", "dopri5 tol 1e-05"):
        assert setting in solvers, setting
    assert "trained" in solvers and "fresh" in solvers  # an ODE-Net run solves its trained block too
    backward = _text(_cell_with(nb, "activation_bytes(probe"))
    assert "adjoint" in backward and "direct" in backward and "activation MB" in backward
    for run in ("odenet", "resnet"):  # the ODE-Net's h(t), the ResNet's path through its blocks
        figure = _cell_with(nbformat.read(study / f"02_train_{run}.ipynb", as_version=4), "pca_lowrank")
        assert any(kind == "image/png" for kind, _ in _outputs(figure)), run


@pytest.mark.slow
def test_03_concludes_from_every_table_it_shows(study):
    nb = nbformat.read(study / "03_compare.ipynb", as_version=4)
    text = _text(_cell_with(nb, "conclusions.conclusions("))
    for start in ("Accuracy:", "S beats called N", "V beats called N", "Patient leak (ResNet", "Rhythm on new patients",
                  "Test-set noise", "Tolerance sweep"):
        assert f"- {start}" in text, start
    assert (study / "conclusions.txt").read_text().count("Patient leak") == 2
    missed = _cell_with(nb, "anchors.missed_beats_table(")
    assert "called N" in _text(missed)
    assert any(kind == "image/png" for kind, _ in _outputs(_cell_with(nb, "record_templates(")))


@pytest.mark.slow
def test_04_labels_a_record_with_a_model_that_never_saw_its_patient(study):
    nb = nbformat.read(study / "04_annotate.ipynb", as_version=4)
    assert nb.metadata.papermill.parameters.get("model") is None  # the default pretrained model, trained on DS1
    said = _text(_cell_with(nb, "trained.load_model("))
    assert "inter-patient split" in said and "never on it" in said


def test_the_ode_block_built_in_02_train_computes_ecglibs():
    """The cell of 02_train that builds the dynamics and the ODE block, run here: on ecglib's weights it gives
    ecglib's logits and, directly and with the adjoint, ecglib's gradients."""
    from torchdiffeq import odeint, odeint_adjoint

    nb = nbformat.read(NOTEBOOK_DIR / "02_train.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if "ode-block" in c.metadata.get("tags", [])]
    ns = {"torch": torch, "nn": torch.nn, "odeint": odeint, "odeint_adjoint": odeint_adjoint}
    exec(cell.source, ns)
    torch.manual_seed(0)
    x = torch.rand(4, 1, 187, dtype=torch.float64)
    for ode in (ODEConfig(), ODEConfig(solver="euler", step_size=1 / 6), ODEConfig(solver="rk4", step_size=0.5),
                ODEConfig.original()):
        net = build_model("odenet", ode=ode).double()
        mine = ns["Dynamics"](net.config["width"]).double()
        mine.load_state_dict(net.features.func.state_dict())  # strict: the same names and shapes
        block = ns["ODEBlock"](mine, adjoint=ode.adjoint, **ns["solver_options"](ode))
        ours, theirs = net.head(block(net.stem(x))), net(x)
        assert (ours - theirs).abs().max().item() < 1e-6, ode.label()
        ours.square().sum().backward()
        ours_grad = [p.grad.clone() for p in mine.parameters()]
        net.zero_grad()
        theirs.square().sum().backward()
        for a, b in zip(ours_grad, net.features.func.parameters()):
            assert torch.allclose(a, b.grad, rtol=1e-6, atol=1e-9), ode.label()


def test_text_cells_do_not_type_what_the_code_decides():
    """The ODE-Net's default solver, its steps and evaluations, and the number of runs the study trains are read
    from the code (markdown rendered by code cells), never typed in a text cell; the ResNet's six blocks, named in
    words, are checked against ecglib.config."""
    from ecglib.config import ModelConfig

    default = ODEConfig()
    net = build_model("odenet")
    net.reset_nfe()
    net(torch.rand(2, 1, 187))
    nfe = net.nfe()[0]
    runs = len(protocol_runs("synthetic"))

    def said(n: int) -> str:
        return rf"(?:{n}|{NUMBER_WORDS.get(n, n)})"

    for path in NOTEBOOKS:
        text = _markdown_text(path)
        assert default.label() not in text, path.name
        if default.steps:
            steps = said(default.steps)
            for pattern in (rf"\b{steps}\s+{default.solver}\s+steps?\b", rf"\b{default.solver}\s+with\s+{steps}\b",
                            rf"\b{default.solver},\s+{steps}\s+steps?\b"):
                assert not re.search(pattern, text, re.I), (path.name, pattern)
        assert not re.search(rf"\b{said(nfe)}\s+evaluations\b", text, re.I), path.name
        assert not re.search(rf"\b{said(runs)}\s+(?:runs|trainings|times)\b", text, re.I), path.name
        assert not re.search(r"\b(?:runs?|trains?|models?)\b[^.]{0,30}\btwice\b", text, re.I), path.name
        if re.search(r"\bsix (?:residual )?blocks\b|\bsix such steps\b", text):
            assert ModelConfig().blocks == 6, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_end_with_a_summary_and_exercises_that_state_their_runtime(path):
    nb = nbformat.read(path, as_version=4)
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    summary = [i for i, s in enumerate(markdown) if re.search(r"^## (Summary|Conclusions)", s, re.M)]
    exercises = [i for i, s in enumerate(markdown) if re.search(r"^## Exercises", s, re.M)]
    assert summary and exercises and summary[-1] <= exercises[-1] >= len(markdown) - 2, path.name
    items = re.split(r"\n(?=\d+\. )", markdown[exercises[-1]])[1:]
    assert len(items) >= 2, path.name
    for item in items:
        assert re.search(r"\*(About|Under|Seconds|A few)[^*]*\.\*", item), (path.name, item[:60])


def test_protocol_runs_are_named_as_02_train_and_the_study_name_them():
    runs = protocol_runs("synthetic")
    assert len(runs) == len(PROTOCOLS) * 2 and len(protocol_runs("kaggle")) == 2
    assert [r.name() for r in runs[:2]] == ["resnet", "odenet"]
    inter = ProtocolRun("resnet", "inter", "beat+rhythm")
    assert inter.name() == "resnet-inter-rhythm" and inter.name("synthetic") == "resnet-synthetic-inter-rhythm"
    assert protocol_of("runs/resnet-synthetic-inter-rhythm", "synthetic") == inter
    assert protocol_of("study/odenet") == ProtocolRun("odenet")
    assert protocol_of("runs/my-own-run", "synthetic") is None


def test_missing_runs_are_trained_by_02_train_and_finished_ones_are_not(tmp_path, monkeypatch):
    import ecglib.experiments.study as study_module

    calls = []
    monkeypatch.setattr(study_module, "execute_notebook",
                        lambda notebook, out, params, **kw: calls.append((notebook.name, out, dict(params))))
    runs = {tmp_path / r.name("synthetic"): r for r in protocol_runs("synthetic")}
    finished = tmp_path / "resnet-synthetic"
    finished.mkdir()
    (finished / "metrics.json").write_text("{}")
    # threads as the study chooses them: a training on a busy machine is several times faster on fewer threads
    monkeypatch.setattr(study_module, "study_threads", lambda: 1)
    threads = 1
    trained = train_missing(runs, {"source": "synthetic", "profile": "quick"}, progress=False)
    assert finished.resolve() not in trained and len(trained) == len(runs) - 1
    for notebook, out, params in calls:
        run = runs[tmp_path / out.name.removeprefix("02_train_").removesuffix(".ipynb")]
        assert notebook == "02_train.ipynb" and out.parent == tmp_path.resolve()
        assert params == {"source": "synthetic", "profile": "quick", **run.parameters(), "threads": threads,
                          "run_dir": str((tmp_path / run.name("synthetic")).resolve())}

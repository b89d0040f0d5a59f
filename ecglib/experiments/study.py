"""The papermill study: run the notebooks in order and write ``report.html`` (``ecglib study``).

01_explore (the data), 02_train for the ResNet and the ODE-Net (and again for each on the other PROTOCOLS: both
splits, with and without rhythm features), 03_compare and 04_annotate (a whole record labelled
and scored as ANSI/AAMI EC57 does) run as separate kernels with the
parameters of a :data:`ecglib.config.PROFILES` profile; a failing cell stops the study with one line naming the
notebook and the code cell.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import MODEL_LABELS, SOURCES, study_settings
from ..data.kaggle import KAGGLE_FILES
from ..data.records import ensure_mitdb
from ..errors import EcgError, InputError
from ..files import atomic_write_text
from ..report.conclusions import conclusions
from ..report.tables import comparison_table, format_comparison, read_metrics

NOTEBOOKS = ("01_explore.ipynb", "02_train.ipynb", "03_compare.ipynb", "04_annotate.ipynb")
# What 03_compare sets side by side: both models on both splits, each with and without the rhythm features (sources
# with records only: the Kaggle CSVs have neither patients nor R peaks). The first is the main pair's (02_train's
# defaults), trained once.
PROTOCOLS: tuple[tuple[str, str], ...] = (("intra", "beat"), ("intra", "beat+rhythm"), ("inter", "beat"),
                                          ("inter", "beat+rhythm"))


def notebooks_dir() -> Path:
    """The folder of the study's notebooks: ``ecglib/notebooks`` in an installed wheel (package data), else the
    source checkout's ``notebooks/`` (an editable install)."""
    package = Path(__file__).resolve().parents[1]
    candidates = (package / "notebooks", package.parent / "notebooks")
    for folder in candidates:
        if all((folder / n).is_file() for n in NOTEBOOKS):
            return folder
    raise InputError(f"{candidates[0]}: the study notebooks ({', '.join(NOTEBOOKS)}) are not there; reinstall "
                     "ecglib (pip install 'ecglib[study]') or run from a source checkout")


def _cell_summary(nb_path: Path, cell_index: int) -> str:
    """'code cell 7 (`first line of its source`)' for the cell at ``cell_index`` of an executed notebook, numbered
    as a reader counts the code cells of the committed notebook (papermill's injected parameters not counted)."""
    try:
        import nbformat

        # papermill counts cells before it adds its error banners to the notebook it writes: leave them out.
        cells = [c for c in nbformat.read(nb_path, as_version=4).cells
                 if "papermill-error-cell-tag" not in c.metadata.get("tags", [])]
        code = [i for i, c in enumerate(cells)
                if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]
        number = code.index(cell_index) + 1
        source = cells[cell_index].source.strip().splitlines()
        first = next((line for line in source if line.strip() and not line.lstrip().startswith(("#", "%"))),
                     source[0] if source else "")
        return f"code cell {number} (`{first.strip()[:70]}`)"
    except Exception:  # noqa: BLE001 - the message is still useful without the source line
        return f"cell {cell_index}"


def execute_notebook(notebook: str | os.PathLike, output: str | os.PathLike, parameters: Mapping[str, Any],
                     cwd: str | os.PathLike | None = None, progress: bool = True, kernel_name: str = "python3",
                     timeout: int | None = None) -> Path:
    """Run one notebook with papermill, writing the executed copy to ``output``.

    A failing cell raises EcgError naming the notebook, the cell and the error; the partly executed notebook is
    kept at ``output`` (papermill writes it there, with the failing cell marked).
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    notebook, output = Path(notebook), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(str(notebook), str(output), parameters=dict(parameters), kernel_name=kernel_name,
                            progress_bar=progress, cwd=str(cwd) if cwd is not None else None,
                            execution_timeout=timeout,
                            # the kernel's own start-up warnings are noise in a study's terminal
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except PapermillExecutionError as exc:
        where = _cell_summary(output, exc.cell_index)
        evalue = (exc.evalue or "").strip().splitlines()
        name = notebook.name if notebook.name == output.name else f"{notebook.name} (as {output.name})"
        raise EcgError(f"notebook {name} failed at {where}: {exc.ename}: {evalue[0] if evalue else ''} "
                       f"- the partly executed notebook is kept in {output}") from None
    except EcgError:
        raise
    except Exception as exc:  # noqa: BLE001 - kernel start failures, missing kernels, unreadable notebooks
        text = str(exc).strip().splitlines()
        raise EcgError(f"notebook {notebook.name} could not run: {type(exc).__name__}: "
                       f"{text[0][:160] if text else ''}") from None
    return output


def export_html(notebook: str | os.PathLike, html: str | os.PathLike, exclude_input: bool = True) -> Path:
    """Write an executed notebook as a standalone HTML report (figures embedded; code cells hidden by default)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    # papermill's bookkeeping cells (its error banner stays: a reader must see a failure) are no story
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])
                and "parameters" not in c.get("metadata", {}).get("tags", [])]
    exporter = HTMLExporter(exclude_input=exclude_input, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": Path(notebook).stem}})
    html = Path(html)
    atomic_write_text(html, body)
    return html


def _check_inputs(data: str, mitdb_dir: Any, kaggle_dir: Any, download: bool) -> None:
    if data not in SOURCES:
        raise InputError(f"unknown data source {data!r}; choose one of {', '.join(SOURCES)}")
    if data == "mitdb":
        if mitdb_dir is None:
            raise InputError("the mitdb study needs a folder: --mitdb-dir DIR")
        ensure_mitdb(mitdb_dir, download=download)
    elif data == "kaggle":
        if kaggle_dir is None:
            raise InputError("the kaggle study needs a folder: --kaggle-dir DIR")
        for name in KAGGLE_FILES:
            if not (Path(kaggle_dir) / name).is_file():
                raise InputError(f"{Path(kaggle_dir) / name}: file not found (the Kaggle 'ECG Heartbeat "
                                 "Categorization' CSVs go in --kaggle-dir)")


def study_threads() -> int | None:
    """Torch threads for the study's kernels: None (torch's choice, all cores) on an idle machine, else the cores
    left free by the current load, at least 1. On a busy machine, more threads than free cores make every
    operation wait for its slowest, descheduled thread: one thread can then train several times faster."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None
    free = int(cores - load + 0.5)
    return None if free >= cores else max(1, free)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_study(profile: str = "quick", data: str = "synthetic", mitdb_dir: str | os.PathLike | None = None,
              kaggle_dir: str | os.PathLike | None = None, out: str | os.PathLike = "runs/study",
              epochs: int | None = None, limit: int | None = None, download: bool = True, progress: bool = True,
              train_overrides: Mapping[str, Any] | None = None, kernel_name: str = "python3",
              threads: int | None | str = "auto") -> int:
    """Run the study: 01_explore, 02_train for the ResNet and the ODE-Net, 03_compare, then ``out/report.html``.

    profile: a key of :data:`ecglib.config.PROFILES`. epochs / limit override the profile's (limit 0: all beats).
    threads: torch threads of the training and comparison kernels; "auto": :func:`study_threads` (all cores
    on an idle machine, fewer on a busy one), None: torch's choice.
    train_overrides: further parameters for every 02_train run (e.g. batch_size). The executed notebooks and
    the run folders land in ``out`` (01_explore.ipynb, 02_train_resnet.ipynb, 02_train_odenet.ipynb, then
    02_train_MODEL-SPLIT-{beat,rhythm}.ipynb for the other protocols, 03_compare.ipynb, 04_annotate.ipynb, the
    run folders resnet/, odenet/ and MODEL-SPLIT-{beat,rhythm}/, annotate/, report.html, annotate.html). Returns 0;
    failures raise EcgError with one line.
    """
    recipe, _, n_limit = study_settings(profile, data, epochs, limit, dict(train_overrides or {}))
    _check_inputs(data, mitdb_dir, kaggle_dir, download)
    folder = notebooks_dir()
    if threads == "auto":
        threads = study_threads()
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("report.html", "annotate.html", "comparison.csv", "tolerance_sweep.csv", "conclusions.txt"):
        (out / stale).unlink(missing_ok=True)  # a failed rerun must not leave the last study's report behind
    common = {"source": data, "mitdb_dir": str(Path(mitdb_dir).resolve()) if mitdb_dir else None,
              "kaggle_dir": str(Path(kaggle_dir).resolve()) if kaggle_dir else None,
              "limit": limit, "profile": profile, "download": download}
    # Fresh runs: a study folder is rerun from scratch, never resumed with other settings.
    train = {**common, "epochs": epochs, "train_settings": dict(train_overrides or {}), "threads": threads,
             "fresh": True}
    runs = {}  # label -> (run name, 02_train parameters); the main pair's runs are resnet/ and odenet/
    for split, features in PROTOCOLS if data != "kaggle" else PROTOCOLS[:1]:
        for model in ("resnet", "odenet"):
            name = model if (split, features) == PROTOCOLS[0] else \
                f"{model}-{split}-{'rhythm' if features == 'beat+rhythm' else 'beat'}"
            runs[f"{MODEL_LABELS[model]}, {split}, {features}"] = (name, {
                **train, "model": model, "split": split, "features": features, "run_dir": str(out / name)})
    steps = [
        ("01_explore.ipynb", "01_explore.ipynb", common),
        *[("02_train.ipynb", f"02_train_{name}.ipynb", params) for name, params in runs.values()],
        ("03_compare.ipynb", "03_compare.ipynb", {
            "resnet_dir": str(out / "resnet"), "odenet_dir": str(out / "odenet"), "out_dir": str(out),
            "profile": profile, "download": download, "threads": threads,
            "protocol_dirs": {label: str(out / name) for label, (name, _) in runs.items()} if len(runs) > 2 else None}),
        # A whole record labelled by the default pretrained model (trained on DS1 alone) and scored as EC57 does: a
        # synthetic record of its own seed, or MIT-BIH's 213 (a DS2 record, rich in V and F beats).
        ("04_annotate.ipynb", "04_annotate.ipynb", {
            "out_dir": str(out / "annotate"), "threads": threads,
            "record": str(Path(mitdb_dir).resolve() / "213") if data == "mitdb" else None}),
    ]
    what = f"{data}, {'all' if n_limit is None else f'{n_limit:,}'} beats, {recipe.epochs} epoch(s)"
    _say(f"ecglib study ({profile}: {what}, {threads or 'all'} torch thread(s)) -> {out}")
    started = time.perf_counter()
    for i, (source_nb, target, params) in enumerate(steps, 1):
        t0 = time.perf_counter()
        _say(f"[{i}/{len(steps)}] {target} ...")
        execute_notebook(folder / source_nb, out / target, params, cwd=out, progress=progress,
                         kernel_name=kernel_name)
        _say(f"[{i}/{len(steps)}] {target} done in {_duration(time.perf_counter() - t0)}")
    html = export_html(out / "03_compare.ipynb", out / "report.html")
    export_html(out / "04_annotate.ipynb", out / "annotate.html")
    _say(f"study done in {_duration(time.perf_counter() - started)}; report: {html}")
    _print_comparison(out)
    print(f"\nreport: {html}")
    return 0


def _print_comparison(out: Path) -> None:
    import pandas as pd

    runs = {MODEL_LABELS[m]: read_metrics(out / m) for m in ("resnet", "odenet")}
    table = comparison_table(runs)
    with pd.option_context("display.width", 120, "display.max_columns", None):
        print(format_comparison(table).to_string())
    sweep_path = out / "tolerance_sweep.csv"
    sweep = pd.read_csv(sweep_path) if sweep_path.exists() else None
    print()
    for line in conclusions(table, sweep):
        print(f"- {line}")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{int(seconds // 60)} min {seconds % 60:02.0f} s"

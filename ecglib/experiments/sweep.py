"""Sweeps: many seeds and settings at once, on one machine or a Ray cluster, with confidence intervals.

The SPEC (a TOML file, :mod:`ecglib.experiments.spec`) says what to train. Each trial is an ordinary ecglib run
folder, ``DIR/runs/<id>`` (metrics.json, history.csv, best.pt, checkpoint.pt), trained by
:func:`ecglib.training.run.run_training` on the beats that :func:`ecglib.data.sources.load_split` gives, which is
what ``ecglib train`` and the notebooks use; beside them the sweep keeps ``trial.json`` (attempts, the epoch a retry
resumed after, status, error). A trial is finished when its metrics.json exists and describes the trial's settings:
running a finished sweep again trains nothing, and an interrupted trial resumes from its checkpoint (a resumed CPU
run ends with the same numbers as an uninterrupted
one; see :mod:`ecglib.training.loop`).

Execution: Ray core tasks, not Ray Tune. Each trial already is a resumable run folder, so all a sweep needs from
Ray is "run this function on a free CPU somewhere, and run it again if its worker dies": ``@ray.remote`` with
``num_cpus`` (the trial's CPU share, also its torch thread count) and ``max_retries`` (worker or node death
only: ``retry_exceptions`` stays off, so a trial that fails on bad input fails once). Tune would add its own
experiment folders, trial checkpoints and result syncing on top of the run folders, and the ``ray[tune]`` extra's
dependencies, for a grid that :func:`itertools.product` expands in one line. Without ``address`` a Ray instance is
started in this process on this machine's CPUs (no dashboard, worker logs not forwarded); with ``address`` the
sweep joins a cluster started with ``ray start`` (every node must see DIR and the data folder at the same path).

Outputs, rewritten atomically after every run: ``DIR/results.csv`` (one row per trial: every setting, the seed,
the metrics, the time, status and error) and ``DIR/summary.md`` (per configuration: n, mean, standard deviation
and a 95 % t confidence interval over seeds; paired differences between configurations over the same seeds).
For notebooks: :func:`load_sweep`, then :func:`ecglib.experiments.stats.sweep_summary_table`,
:func:`ecglib.experiments.stats.paired_differences` and :func:`ecglib.report.figures.plot_sweep_results`; for a
sweep over folds of DS1 records (``val_records``), :func:`ecglib.experiments.selection.fold_selection_scores`.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from io import StringIO
from pathlib import Path
from typing import Any

from ..config import TrainConfig, logit_offsets
from ..data.facts import RHYTHM_INPUTS
from ..data.inputs import input_channels
from ..data.sources import data_config, load_split
from ..errors import EcgError, InputError
from ..files import atomic_write_text
from ..models import build_model
from ..training.resume import RESUME_FREE
from ..training.run import run_training
from .selection import COUNTS, VAL_COUNT_COLUMNS, fold_selection_markdown
from .spec import MODEL_KEYS, TRAIN_KEYS, SweepSpec, Trial, load_spec
from .stats import summary_markdown

# Metrics that results.csv carries for every run (AAMI Se and +P of S and V beats among them).
METRIC_COLUMNS = ("accuracy", "macro_f1", "baseline_accuracy", "S_se", "S_ppv", "V_se", "V_ppv", "params",
                  "seconds", "seconds_per_epoch", "nfe_forward", "best_epoch") + VAL_COUNT_COLUMNS
STATE_COLUMNS = ("status", "error", "attempts", "resumed_from", "wall_seconds", "run_dir")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _data_config(trial: Trial) -> dict[str, Any]:
    d = trial.data
    return data_config(d["source"], d["mitdb_dir"], d["kaggle_dir"], trial.split, d["limit"], d["val_fraction"],
                       d["synthetic_seconds"], val_records=trial.val_records, leads=d.get("leads", "rule"))


def _expected_config(trial: Trial) -> dict[str, Any]:
    """What metrics.json["config"] of the finished trial holds, but the device and thread count."""
    config = TrainConfig(**trial.train)
    train = {k: v for k, v in asdict(config).items() if k not in RESUME_FREE or k == "epochs"}
    model = build_model(trial.model, **trial.model_kwargs,
                        rhythm_inputs=RHYTHM_INPUTS if trial.features == "beat+rhythm" else None,
                        in_channels=input_channels(trial.context, trial.template),
                        logit_offsets=logit_offsets(config.s_offset))
    return {"model": model.config, "train": train, "data": _data_config(trial), "split": trial.split,
            "features": trial.features, "context": trial.context, **({"template": True} if trial.template else {})}


def is_finished(trial: Trial, out: str | os.PathLike) -> bool:
    """True when the trial's run folder holds a metrics.json written for exactly this trial's settings."""
    metrics = _read_json(trial.run_dir(out) / "metrics.json")
    if not metrics or not isinstance(metrics.get("config"), dict):
        return False
    got = dict(metrics["config"])
    # Recipe fields added since the run was written count at their defaults, as a resume takes them.
    train = {**asdict(TrainConfig()), **dict(got.get("train", {}))}
    got["train"] = {k: v for k, v in train.items() if k not in RESUME_FREE or k == "epochs"}
    return got == _expected_config(trial)


def _checkpoint_epoch(run_dir: Path) -> int:
    ckpt = run_dir / "checkpoint.pt"
    if not ckpt.exists():
        return 0
    try:
        import torch

        return int(torch.load(ckpt, map_location="cpu", weights_only=True).get("epoch", 0))
    except Exception:  # noqa: BLE001 - an unreadable checkpoint is reported by fit itself
        return 0


def _write_state(run_dir: Path, state: dict[str, Any]) -> None:
    atomic_write_text(run_dir / "trial.json", json.dumps(state, indent=2))


def run_trial(trial: Trial, out: str | os.PathLike, threads: int | None = None, session: str = "") -> dict[str, Any]:
    """Train one trial into ``out/runs/<id>`` (resuming its checkpoint) and return its trial.json record.

    session: identifies one ``ecglib sweep`` invocation; ``attempts`` counts the starts within it (a retry after a
    worker died is attempt 2), ``resumed_from`` the epoch of the checkpoint this start found.

    Bad input (EcgError) ends the trial with status "failed" and its one-line error; it is not raised, so Ray
    does not retry it. Anything else propagates (Ray reports it; a dead worker is retried by Ray).
    """
    run_dir = trial.run_dir(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = _read_json(run_dir / "trial.json") or {}
    state: dict[str, Any] = {
        "id": trial.id, "status": "running", "session": session,
        "attempts": int(previous.get("attempts", 0)) + 1 if session and previous.get("session") == session else 1,
        "resumed_from": _checkpoint_epoch(run_dir), "pid": os.getpid(), "host": os.uname().nodename,
        "node_id": _ray_node_id(), "threads": threads, "started": time.time(), "error": "",
    }
    _write_state(run_dir, state)
    started = time.perf_counter()
    try:
        if threads:
            import torch

            torch.set_num_threads(threads)
        d = trial.data
        beats, split = load_split(d["source"], d["mitdb_dir"], d["kaggle_dir"], split=trial.split, limit=d["limit"],
                                  seed=trial.seed, val_fraction=d["val_fraction"],
                                  synthetic_seconds=d["synthetic_seconds"], download=d["download"],
                                  val_records=trial.val_records, leads=d.get("leads", "rule"))
        config = TrainConfig(**trial.train, threads=threads)
        run_training(trial.model, beats, split, run_dir, config, trial.model_kwargs, progress=False,
                     data_config=_data_config(trial), features=trial.features, context=trial.context,
                     template=trial.template)
        state["status"] = "ok"
    except EcgError as exc:
        state.update(status="failed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    state["wall_seconds"] = round(time.perf_counter() - started, 3)
    _write_state(run_dir, state)
    return state


def _ray_node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - only informative
        return None


def _ray_trial(trial: Trial, out: str, threads: int | None, session: str) -> dict[str, Any]:
    """The body of the Ray task (a module-level function, so workers import it from ecglib)."""
    return run_trial(trial, out, threads, session)


def _row(trial: Trial, out: Path, spec: SweepSpec) -> dict[str, Any]:
    run_dir = trial.run_dir(out)
    state = _read_json(run_dir / "trial.json") or {}
    # sweep_point: what tells this configuration from the others (named configuration, axis values), as JSON.
    row: dict[str, Any] = {"id": trial.id, "configuration": trial.configuration,
                           "sweep_point": json.dumps(trial.settings, sort_keys=True)}
    row.update(model=trial.model, seed=trial.seed, split=trial.split, source=trial.data["source"],
               limit=trial.data["limit"] or "", val_records=",".join(trial.val_records or []),
               leads=trial.data.get("leads", "rule"))
    for key in MODEL_KEYS:
        row[key] = trial.model_kwargs.get(key, "")
    train = asdict(TrainConfig(**trial.train))
    for key in TRAIN_KEYS:
        row[key] = train[key]
    finished = is_finished(trial, out)
    metrics = _read_json(run_dir / "metrics.json") if finished else None
    if metrics:
        aami = metrics.get("aami", {})
        epochs = metrics.get("seconds_per_epoch") or []
        row.update(accuracy=metrics["accuracy"], macro_f1=metrics["macro_f1"],
                   baseline_accuracy=metrics["baseline_accuracy"],
                   S_se=aami.get("S", {}).get("sensitivity"), S_ppv=aami.get("S", {}).get("positive_predictivity"),
                   V_se=aami.get("V", {}).get("sensitivity"), V_ppv=aami.get("V", {}).get("positive_predictivity"),
                   params=metrics["params"], seconds=round(sum(epochs), 3),
                   seconds_per_epoch=round(sum(epochs) / max(1, len(epochs)), 3),
                   nfe_forward=metrics.get("nfe_forward"), best_epoch=metrics.get("best_epoch"))
        gross = (metrics.get("validation") or {}).get("gross") or {}
        row.update({f"val_{c}_{k}": (gross.get(c) or {}).get(k, "") for c in "SV" for k in COUNTS})
        status = "ok"
    else:
        row.update({k: "" for k in METRIC_COLUMNS})
        status = state.get("status") if state.get("status") == "failed" else "not run"
    row.update(status=status, error=state.get("error", "") if status == "failed" else "",
               attempts=state.get("attempts", ""), resumed_from=state.get("resumed_from", ""),
               wall_seconds=state.get("wall_seconds", ""), run_dir=f"runs/{trial.id}")
    return row


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def write_results(spec: SweepSpec, out: str | os.PathLike) -> Any:
    """Write DIR/results.csv and DIR/summary.md from the run folders (atomically); return the results table."""
    out = Path(out)
    rows = [_row(t, out, spec) for t in spec.trials]
    atomic_write_text(out / "results.csv", _csv_text(rows))
    table = load_sweep(out)
    atomic_write_text(out / "summary.md", summary_markdown(table, spec) + fold_selection_markdown(table))
    return table


def load_sweep(out: str | os.PathLike) -> Any:
    """DIR/results.csv as a pandas DataFrame (one row per trial)."""
    import pandas as pd

    path = Path(out) / "results.csv"
    if not path.exists():
        raise InputError(f"{path}: not found; run `ecglib sweep SPEC --out {out}` first")
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: unreadable results ({exc})") from None


def _describe(state: Mapping[str, Any], trial: Trial, out: Path) -> str:
    if state.get("status") == "ok":
        m = _read_json(trial.run_dir(out) / "metrics.json") or {}
        extra = (f", attempt {state['attempts']}, resumed after epoch {state['resumed_from']}"
                 if state.get("attempts", 1) > 1 or state.get("resumed_from") else "")
        return (f"done   {trial.id}: accuracy {m.get('accuracy', math.nan):.4f}, macro-F1 "
                f"{m.get('macro_f1', math.nan):.4f}, {state.get('wall_seconds', 0):.0f} s{extra}")
    return f"FAILED {trial.id}: {state.get('error', '')}"


def _init_ray(address: str | None, cpus: int | None) -> bool:
    """Connect to ``address`` or start Ray in this process; True when this call started it."""
    import logging

    import ray

    # No usage statistics (they would try the network) unless the user asked for them.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return False
    # Ray 2.59+ says at every local start that it made an authentication token: not news for a sweep.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    common = {"log_to_driver": False, "logging_level": logging.WARNING, "configure_logging": True}
    try:
        if address:
            ray.init(address=address, **common)
        else:
            # address="local": a new instance even when another one runs on this machine (`ray start`).
            ray.init(address="local", num_cpus=cpus or os.cpu_count() or 1, include_dashboard=False,
                     object_store_memory=256 * 2**20, **common)
    except Exception as exc:  # Ray raises a bare Exception when its node does not come up in time (busy machine)
        with contextlib.suppress(Exception):
            ray.shutdown()  # whatever half of the node did start
        raise EcgError(f"{address or 'local Ray'}: cannot start or join Ray ({str(exc).splitlines()[0][:200]})"
                       ) from None
    return True


def _stop_on_sigterm() -> None:
    """ray.init replaces the driver's SIGTERM handler with one that aborts the process (a C++ stack trace, no
    results written); a sweep stops as on Ctrl-C instead: results written, Ray stopped, runs resumable."""
    import signal
    import threading

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def _failure_text(exc: BaseException) -> str:
    """One line for a task that Ray gave up on: the last line of the remote traceback or Ray's own reason."""
    text = str(getattr(exc, "cause", None) or exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:300]


def run_sweep(spec: str | os.PathLike | SweepSpec, out: str | os.PathLike, address: str | None = None,
              cpus_per_run: int = 1, max_retries: int = 3, mitdb_dir: str | os.PathLike | None = None,
              progress: bool = True, say: Callable[[str], None] | None = None) -> Any:
    """Run every unfinished trial of ``spec`` on Ray and write DIR/results.csv and DIR/summary.md.

    address: a Ray cluster ("HOST:PORT", as printed by ``ray start --head``) or None for a Ray started here.
    cpus_per_run: Ray CPUs of each trial, and its torch thread count. max_retries: how often a trial whose
    worker or node died is started again (it resumes from its checkpoint). Returns the results table.
    """
    from tqdm.auto import tqdm

    sweep = spec if isinstance(spec, SweepSpec) else load_spec(spec, mitdb_dir=mitdb_dir)
    if cpus_per_run < 1:
        raise InputError(f"--cpus-per-run must be at least 1, not {cpus_per_run}")
    out = Path(out).resolve()
    say = say or (lambda line: tqdm.write(line, file=sys.stdout))
    todo = [t for t in sweep.trials if not is_finished(t, out)]
    atomic_write_text(out / "spec.toml", sweep.text)
    if not todo:
        say(f"all {len(sweep.trials)} runs of {sweep.path.name} are finished in {out}; nothing to train")
        return write_results(sweep, out)
    # Load the beats once here: a data problem stops the sweep before Ray starts, and the local cache is warm.
    for key in sorted({(t.split, t.seed) for t in todo})[:1]:
        d = sweep.data
        load_split(d["source"], d["mitdb_dir"], d["kaggle_dir"], split=key[0], limit=d["limit"], seed=key[1],
                   val_fraction=d["val_fraction"], synthetic_seconds=d["synthetic_seconds"], download=d["download"])

    import ray

    started_here = _init_ray(address, None)
    _stop_on_sigterm()
    try:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < cpus_per_run:
            raise EcgError(f"{address or 'local Ray'}: {cpus} CPUs in the cluster, fewer than --cpus-per-run "
                           f"{cpus_per_run}")
        task = ray.remote(_ray_trial).options(num_cpus=cpus_per_run, max_retries=max_retries,
                                              retry_exceptions=False)
        say(f"sweep {sweep.path.name}: {len(todo)} of {len(sweep.trials)} runs to train on "
            f"{'Ray at ' + address if address else 'a local Ray'} ({cpus} CPUs, {cpus_per_run} per run, "
            f"up to {max(1, cpus // cpus_per_run)} at once) -> {out}")
        session = f"{time.time():.3f}-{os.getpid()}"
        pending = {task.remote(t, str(out), cpus_per_run, session): t for t in todo}
        failed = 0
        bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=not progress, dynamic_ncols=True,
                   file=sys.stderr)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
                for ref in ready:
                    trial = pending.pop(ref)
                    try:
                        state = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        run_dir = trial.run_dir(out)
                        state = {**(_read_json(run_dir / "trial.json") or {}), "status": "failed",
                                 "error": _failure_text(exc)}
                        _write_state(run_dir, state)
                    failed += state.get("status") != "ok"
                    say(_describe(state, trial, out))
                    bar.update(1)
                    write_results(sweep, out)
                running = sum((_read_json(t.run_dir(out) / "trial.json") or {}).get("status") == "running"
                              for t in pending.values())
                bar.set_postfix(running=running, failed=failed, refresh=True)
        except KeyboardInterrupt:
            bar.close()
            write_results(sweep, out)
            say(f"interrupted: {len(pending)} runs unfinished; the same command resumes them")
            raise
        finally:
            bar.close()
    finally:
        if started_here:
            ray.shutdown()
    table = write_results(sweep, out)
    say(f"results: {out / 'results.csv'}, summary: {out / 'summary.md'}")
    return table

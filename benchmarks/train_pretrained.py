"""Train, score and ship ecglib's pretrained models: `make pretrained MITDB_DIR=DIR` runs this.

For each model (the ResNet and the ODE-Net of the rhythm recipe, trained on DS1):

1. train it with `ecglib train --model M --source mitdb --split inter --features beat+rhythm --epochs 5 --seed 0
   --threads 1` into RUNS/M (the settings are the config's defaults at the time: a changed recipe or ODE default
   is picked up);
2. write its weights as ecglib/pretrained/NAME.pt: the kept weights (best.pt's model state, float32) and the
   model's settings, nothing else; the ODE-Net with its deploy setting (one step of its solver: train precise,
   deploy loose), which `ecglib annotate --step-size` can change back;
3. label the 22 DS2 records with `ecglib annotate` (the default detector, then the reference R peaks) and score
   them with `ecglib score` (EC57: bxb's rules, 5-minute learning period, paced records left out), the ODE-Net
   also at its training setting (the accuracy the loose setting costs);
4. write the card: NAME.json (every number, the commands, the git commit, the machine, the data's license) and
   NAME.md (the same for reading).

    python benchmarks/train_pretrained.py --mitdb-dir DIR [--models resnet,odenet] [--runs runs/pretrained]
        [--out ecglib/pretrained] [--reuse]

--reuse keeps finished run folders (no retraining); by default every model is trained afresh.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NAMES = {"resnet": "resnet-ds1", "odenet": "odenet-ds1"}
TRAIN = ["--source", "mitdb", "--split", "inter", "--features", "beat+rhythm", "--epochs", "5", "--seed", "0",
         "--threads", "1"]
LICENSE = {
    "data": "MIT-BIH Arrhythmia Database (PhysioNet mitdb 1.0.0), doi:10.13026/C2F305",
    "license": "Open Data Commons Attribution License v1.0 (ODC-By 1.0)",
    "attribution": "These weights were trained on the MIT-BIH Arrhythmia Database, published by PhysioNet under "
                   "ODC-By 1.0.",
    "citations": ["Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database. IEEE Eng in Med and Biol "
                  "20(3):45-50 (May-June 2001).",
                  "Goldberger A, et al. PhysioBank, PhysioToolkit, and PhysioNet. Circulation 101(23):e215-e220 "
                  "(2000)."],
    "code": "ecglib's code: MIT (LICENSE)",
}


def ecglib(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ecglib", *map(str, args)]
    print("$ ecglib " + " ".join(shlex.quote(str(a)) for a in args), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"ecglib {args[0]} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "ecglib"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (with uncommitted changes to ecglib/)" if dirty else "")


def export_weights(run: Path, target: Path, deploy: dict[str, Any] | None) -> dict[str, Any]:
    """RUN/best.pt's model settings and float32 weights as an ecglib checkpoint at ``target`` (what loading needs:
    no optimizer, history or epoch); the ODE-Net's solver set to ``deploy``. Returns the settings written."""
    import torch

    from ecglib.checkpoints import load_checkpoint, save_checkpoint

    model, _ = load_checkpoint(run / "best.pt")
    if deploy:
        model.set_solver(**deploy)
    weights = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    fresh = target.with_name(target.name + ".new")
    save_checkpoint({"model_config": dict(model.config), "model": weights}, fresh)
    load_checkpoint(fresh)  # it loads back
    if target.exists() and target.read_bytes() == fresh.read_bytes():
        fresh.unlink()  # the same weights: the file (and the labels made with it) stay
    else:
        fresh.replace(target)
    del torch
    return dict(model.config)


def score_ds2(name: str, mitdb: Path, out: Path, detector: str, extra: list[str], weights: Path,
              reuse: bool = False) -> dict[str, Any]:
    """Label DS2 with `ecglib annotate --model NAME` and score it with `ecglib score`: the commands and the EC57
    table (gross and average rows, and each record's). reuse: labels newer than the weights are not made again."""
    from ecglib.data.facts import DS2

    labels = out / "labels"
    annotate = ["annotate", *[mitdb / r for r in DS2], "--model", name, "--detector", detector, "--out", labels,
                "--threads", "1", "--quiet", *extra]
    made = [labels / f"{r}.ecglib" for r in DS2]
    if not (reuse and all(p.exists() and p.stat().st_mtime > weights.stat().st_mtime for p in made)):
        ecglib(*annotate)
    table = out / "ec57.csv"
    score = ["score", "atr", "ecglib", mitdb, *DS2, "--test-dir", labels, "--csv", table]
    printed = ecglib(*score).stdout
    rows = list(csv.DictReader(table.open()))
    keep = ("Q Se", "Q +P", "V Se", "V +P", "V FPR", "S Se", "S +P")
    value = lambda v: float(v) if v not in ("", None) else None
    by = {row["record"]: {k: value(row.get(k)) for k in keep} for row in rows}
    return {"gross": by.pop("gross"), "average": by.pop("average"), "records": by, "table": printed.strip(),
            "commands": [_shown(annotate, mitdb), _shown(score, mitdb)]}


def card_markdown(card: dict[str, Any]) -> str:
    def row(label: str, stats: dict[str, Any]) -> str:
        f = lambda k: "-" if stats.get(k) is None else f"{stats[k]:.2f}"
        return f"| {label} | {f('Q Se')} | {f('Q +P')} | {f('V Se')} | {f('V +P')} | {f('V FPR')} | " \
               f"{f('S Se')} | {f('S +P')} |"

    head = ["| DS2 (22 records) | QRS Se | QRS +P | VEB Se | VEB +P | VEB FPR | SVEB Se | SVEB +P |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    rows = [row(f"gross, {card['detector']} R peaks", card["ec57"]["detector"]["gross"]),
            row(f"average, {card['detector']} R peaks", card["ec57"]["detector"]["average"]),
            row("gross, reference R peaks", card["ec57"]["reference"]["gross"]),
            row("average, reference R peaks", card["ec57"]["reference"]["average"])]
    if card.get("ec57_trained_solver"):
        t = card["ec57_trained_solver"]
        rows += [row(f"gross, {card['detector']} R peaks, trained solver ({t['solver']})", t["detector"]["gross"]),
                 row(f"gross, reference R peaks, trained solver ({t['solver']})", t["reference"]["gross"])]
    lic = card["license"]
    lines = [
        f"# {card['name']}: {card['network']} of the rhythm recipe, trained on DS1", "",
        f"A {card['network']} ({card['parameters']:,} parameters) that labels each heartbeat of an ECG lead (MLII, "
        "or another lead by the lead rule) with one of the five AAMI classes N, S, V, F, Q, from the beat's shape "
        "with its neighbours and its difference to the record's median beat, and its RR-interval rhythm. "
        f"`ecglib annotate RECORD --model {card['name']}` uses it.", "",
        "## Data", "",
        f"Trained on the {len(card['data']['train_records'])} DS1 records of the MIT-BIH Arrhythmia Database "
        "(de Chazal et al. 2004's inter-patient split, paced records excluded; a seeded draw of whole DS1 records "
        f"validates: beats {json.dumps(card['data']['split_sizes'])}), never shown DS2. {lic['attribution']} "
        f"License: {lic['license']}. Cite: {' '.join(lic['citations'])}", "",
        "## Recipe and settings", "",
        f"- command: `{card['command']}`",
        f"- git commit: `{card['commit']}`; trained {card['trained']} on {card['machine']}",
        f"- seed {card['seed']}; recipe: {json.dumps(card['recipe'])}",
        f"- model settings: {json.dumps(card['model_config'])}",
        f"- deployed solver: {card.get('deploy_label') or 'not an ODE-Net'}",
        f"- weights: {card['weights_bytes']:,} bytes (float32)",
        f"- DS2 beat accuracy at the reference R peaks (`ecglib train`'s test): {card['ds2_accuracy']:.4f}", "",
        "## DS2 EC57 (bxb's rules: 0.15 s match window, 5-minute learning period, paced records left out)", "",
        *head, *rows, "",
        "Commands:", "", "```", *card["ec57"]["detector"]["commands"], *card["ec57"]["reference"]["commands"], "```",
        "", "Rebuild with `make pretrained MITDB_DIR=DIR` (benchmarks/train_pretrained.py).", ""]
    return "\n".join(lines)


def build(model: str, args: argparse.Namespace) -> None:
    from ecglib.checkpoints import load_checkpoint
    from ecglib.config import MODEL_LABELS, ODEConfig
    from ecglib.data.facts import DS1, DS2
    from ecglib.files import atomic_write_text
    from ecglib.inference import machine_description
    from ecglib.metrics import count_parameters

    name, run = NAMES[model], args.runs / model
    train = ["train", "--model", model, *TRAIN[:2], "--mitdb-dir", args.mitdb_dir, "--no-download", *TRAIN[2:],
             "--quiet", "--out", run]
    if not (args.reuse and (run / "metrics.json").exists()):
        ecglib(*train, "--fresh")
        (run / "commit.txt").write_text(git_commit() + "\n")
    # The commit the run was trained at (a reused run folder keeps the one written when it was trained).
    commit = (run / "commit.txt").read_text().strip() if (run / "commit.txt").exists() else "unknown (reused run)"
    metrics = json.loads((run / "metrics.json").read_text())
    trained_model, _ = load_checkpoint(run / "best.pt")
    deploy, trained_ode = None, None
    if trained_model.ode is not None:
        trained_ode = trained_model.ode.config
        if trained_ode.fixed_grid and (trained_ode.steps or 1) > 1:  # one step of the solver it was trained with
            deploy = {"solver": trained_ode.solver, "step_size": 1.0}
    config = export_weights(run, args.out / f"{name}.pt", deploy)
    size = (args.out / f"{name}.pt").stat().st_size
    card: dict[str, Any] = {
        "name": name, "model": model, "network": MODEL_LABELS[model], "lead": "MLII",
        "parameters": count_parameters(trained_model), "model_config": config,
        "data": {"source": "mitdb", "split": "inter", "train_records": list(DS1), "test_records": list(DS2),
                 "split_sizes": metrics.get("split_sizes"), "val_fraction": metrics["config"]["data"].get(
                     "val_fraction")},
        "recipe": {"features": "beat+rhythm", **metrics["config"].get("train", {})}, "seed": 0,
        "command": _shown(train, args.mitdb_dir), "commit": commit,
        "machine": f"{metrics.get('machine') or machine_description()}; {platform.platform()}",
        "trained": datetime.date.fromtimestamp((run / "metrics.json").stat().st_mtime).isoformat(),
        "license": LICENSE, "weights_bytes": size, "ds2_accuracy": metrics["accuracy"], "detector": "xqrs",
        "deploy": deploy, "deploy_label": None if deploy is None else ODEConfig(**deploy).label(),
    }
    # The card must exist for `ecglib annotate --model NAME` to find the weights; its numbers follow.
    atomic_write_text(args.out / f"{name}.json", json.dumps({**card, "ec57": {}}, indent=2))
    scores = args.runs / f"{model}-ds2"
    weights = args.out / f"{name}.pt"
    card["ec57"] = {"detector": score_ds2(name, args.mitdb_dir, scores / "xqrs", "xqrs", [], weights, args.reuse),
                    "reference": score_ds2(name, args.mitdb_dir, scores / "reference", "reference", [], weights,
                                           args.reuse)}
    if deploy is not None and trained_ode is not None:
        back = ["--solver", trained_ode.solver, "--step-size", str(trained_ode.step_size)]
        card["ec57_trained_solver"] = {
            "solver": trained_ode.label(),
            "detector": score_ds2(name, args.mitdb_dir, scores / "xqrs-trained", "xqrs", back, weights, args.reuse),
            "reference": score_ds2(name, args.mitdb_dir, scores / "reference-trained", "reference", back, weights,
                                   args.reuse)}
    atomic_write_text(args.out / f"{name}.json", json.dumps(card, indent=2) + "\n")
    atomic_write_text(args.out / f"{name}.md", card_markdown(card))
    print(f"{name}: {size:,} bytes; DS2 gross (xqrs) VEB {card['ec57']['detector']['gross']['V Se']:.2f} / "
          f"{card['ec57']['detector']['gross']['V +P']:.2f}, SVEB {card['ec57']['detector']['gross']['S Se']:.2f} / "
          f"{card['ec57']['detector']['gross']['S +P']:.2f}", flush=True)


def _shown(args: list[Any], mitdb: Path) -> str:
    """A command as the card shows it: the MIT-BIH folder as $MITDB_DIR, paths inside the repository relative."""
    def show(a: Any) -> str:
        text = str(a)
        if text.startswith(str(mitdb)):
            return "$MITDB_DIR" + text[len(str(mitdb)):]
        return text[len(str(ROOT)) + 1:] if text.startswith(str(ROOT) + "/") else text

    return "ecglib " + " ".join(shlex.quote(show(a)) if not show(a).startswith("$") else show(a) for a in args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mitdb-dir", type=Path, required=True, help="the MIT-BIH records (48, with .atr)")
    parser.add_argument("--models", default="resnet,odenet", help="which to build (default resnet,odenet)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "pretrained", help="run folders and scores")
    parser.add_argument("--out", type=Path, default=ROOT / "ecglib" / "pretrained", help="where the weights and "
                        "cards go (default: the package's ecglib/pretrained)")
    parser.add_argument("--reuse", action="store_true", help="keep finished run folders instead of retraining")
    args = parser.parse_args(argv)
    args.mitdb_dir = args.mitdb_dir.resolve()
    for model in args.models.split(","):
        if model not in NAMES:
            raise SystemExit(f"unknown model {model!r}; choose from {', '.join(NAMES)}")
        build(model, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

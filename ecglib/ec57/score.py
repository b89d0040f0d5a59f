"""EC57 in use: records scored from their annotation files, and the comparison reported as ``bxb`` and ``sumstats``
print it (a table, a matrix, a CSV). The comparison itself, pure, is :mod:`ecglib.ec57.bxb`.
"""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..data.checks import read_record_list
from ..errors import InputError
from ..files import atomic_write_text
from .annotations import read_annotations, read_header
from .bxb import (
    BXB_LABELS,
    DEFAULT_LEARNING_PERIOD,
    DEFAULT_MATCH_WINDOW,
    LINE_COLUMNS,
    STATS,
    Comparison,
    Summary,
    compare,
    summarize,
)


# ---------------------------------------------------------------------------------------------------- reports
def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def format_matrix(comp: Comparison) -> str:
    """bxb's standard report with SVEB statistics (-S): the 7 x 7 matrix and the record's statistics."""
    m = comp.matrix
    out = [f"Beat-by-beat comparison results for record {comp.record}",
           "               Algorithm",
           "        n    s    v    f    q    o    x",
           "   ____________________________________"]
    for r, row in enumerate(BXB_LABELS):
        cols = 7 if r < 5 else 5
        out.append(f" {row} | " + " ".join(f"{int(v):4d}" for v in m[r, :cols]))
    s, t = comp.stats(), comp.tallies()
    fractions = {"Q Se": (t["QTP"], t["QTP"] + t["QFN"]), "Q +P": (t["QTP"], t["QTP"] + t["QFP"]),
                 "V Se": (t["VTP"], t["VTP"] + t["VFN"]), "V +P": (t["VTP"], t["VTP"] + t["VFP"]),
                 "V FPR": (t["VFP"], t["VTN"] + t["VFP"]), "S Se": (t["STP"], t["STP"] + t["SFN"]),
                 "S +P": (t["STP"], t["STP"] + t["SFP"])}
    names = {"Q Se": "QRS sensitivity", "Q +P": "QRS positive predictivity", "V Se": "VEB sensitivity",
             "V +P": "VEB positive predictivity", "V FPR": "VEB false positive rate", "S Se": "SVEB sensitivity",
             "S +P": "SVEB positive predictivity"}
    out.append("")
    for k, (a, b) in fractions.items():
        value = "     - " if s[k] is None else f"{s[k]:6.{3 if k == 'V FPR' else 2}f}%"
        out.append(f"{names[k]:>26}: {value} ({a}/{b})")
    out.append(f"{'RMS RR interval error':>26}: " + ("     -" if s["RR err"] is None else f"{s['RR err']:6.2f} ms"))
    return "\n".join(out)


def format_table(comparisons: Sequence[Comparison], summary: Summary | None = None) -> str:
    """One line per record in the spirit of bxb -L (its counts, then Q Se, Q +P, V Se, V +P, V FPR, S Se, S +P
    and RR error in %, %, ..., ms), paced records marked with '*', then sumstats' Sum, Gross and Average lines."""
    summary = summary if summary is not None else summarize(comparisons)
    width = max([8] + [len(Path(c.record).name) + 2 for c in comparisons])
    counts = {k: max([len(k)] + [len(str(c.line()[k])) for c in comparisons] + [len(str(summary.line[k]))])
              for k in LINE_COLUMNS}
    head = f"{'Record':<{width}}" + "".join(f" {k:>{counts[k]}}" for k in LINE_COLUMNS) + "".join(
        f" {k:>6}" for k in STATS)
    lines = [head]
    for c in comparisons:
        name = Path(c.record).name + ("*" if c.paced else "")
        line, s = c.line(), c.stats()
        lines.append(f"{name:<{width}}" + "".join(f" {line[k]:>{counts[k]}}" for k in LINE_COLUMNS)
                     + "".join(f" {_fmt(s[k], 3 if k == 'V FPR' else 2):>6}" for k in STATS))
    lines.append("_" * len(head))
    lines.append(f"{'Sum':<{width}}" + "".join(f" {summary.line[k]:>{counts[k]}}" for k in LINE_COLUMNS))
    pad = " " * (width + sum(counts.values()) + len(LINE_COLUMNS))
    for label, values in (("Gross", summary.gross), ("Average", summary.average)):
        lines.append(f"{label:<{width}}" + pad[width:]
                     + "".join(f" {_fmt(values[k], 3 if k == 'V FPR' else 2):>6}" for k in STATS))
    lines.append(f"Total QRS complexes: {summary.total_qrs}  Total VEBs: {summary.total_veb}  "
                 f"Total SVEBs: {summary.total_sveb}")
    note = f"Summary of results from {len(summary.records)} record{'s' if len(summary.records) != 1 else ''}"
    if summary.excluded:
        note += f"; paced records scored but not aggregated (*): {', '.join(Path(r).name for r in summary.excluded)}"
    lines.append(note)
    lines.extend(n for c in comparisons for n in c.notes)
    return "\n".join(lines)


def table_rows(comparisons: Sequence[Comparison], summary: Summary | None = None) -> list[dict[str, object]]:
    """Rows for a CSV or a DataFrame: one per record (its line counts, the full 7 x 7 matrix as cells 'Nn'..'Xq',
    its statistics, paced), then 'gross' and 'average' rows with the statistics."""
    summary = summary if summary is not None else summarize(comparisons)
    rows: list[dict[str, object]] = []
    for c in comparisons:
        row: dict[str, object] = {"record": Path(c.record).name, "paced": c.paced, "aggregated": not c.paced}
        row.update(c.line())
        for r, ref in enumerate(BXB_LABELS):
            for j, test in enumerate(BXB_LABELS):
                if not (r >= 5 and j >= 5):
                    row[f"{ref}{test.lower()}"] = int(c.matrix[r, j])
        row.update(c.stats())
        row["learning_period_s"] = c.learning_period
        rows.append(row)
    for label, values in (("gross", summary.gross), ("average", summary.average)):
        row = {"record": label, "paced": "", "aggregated": ""}
        if label == "gross":
            row.update(summary.line)
        row.update(values)
        rows.append(row)
    return rows


def write_csv(path: str | os.PathLike, comparisons: Sequence[Comparison], summary: Summary | None = None) -> None:
    """Write table_rows as CSV, atomically."""
    rows = table_rows(comparisons, summary)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else (f"{v:.4f}" if isinstance(v, float) else v))
                         for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


def score_record(record: str | os.PathLike, ref: str, test: str, learning_period: float = DEFAULT_LEARNING_PERIOD,
                 test_dir: str | os.PathLike | None = None, match_window: float = DEFAULT_MATCH_WINDOW
                 ) -> Comparison:
    """Compare RECORD.TEST (in ``test_dir`` or beside the record) with RECORD.REF, as ``bxb -r RECORD -a REF TEST``
    does: the comparison ends at the record's length from its header."""
    header = read_header(record)
    if not header.fs or header.fs <= 0:
        raise InputError(f"{record}.hea: no sampling frequency")
    sig_len = int(header.sig_len or 0)
    r = read_annotations(record, ref, sig_len, fs=float(header.fs))
    t = read_annotations(record, test, sig_len, folder=test_dir, fs=float(header.fs))
    comparison = compare(r.sample, r.symbol, t.sample, t.symbol, float(header.fs), learning_period=learning_period,
                         match_window=match_window, sig_len=sig_len, ref_subtypes=r.subtype,
                         test_subtypes=t.subtype, record=str(record))
    notes = tuple(f"{Path(record).name}: {a.past_end} {name} annotation(s) at or past the last sample left out"
                  for name, a in ((ref, r), (test, t)) if a.past_end)
    return replace(comparison, notes=notes)


def score_records(record_dir: str | os.PathLike, ref: str, test: str, records: Sequence[str] | None = None,
                  learning_period: float = DEFAULT_LEARNING_PERIOD, test_dir: str | os.PathLike | None = None,
                  refused: list[str] | None = None) -> tuple[list[Comparison], Summary]:
    """Score every record of ``record_dir`` (``records``; None: its RECORDS file, else every record with a ``ref``
    annotation file): the per-record comparisons and their gross and average summary (paced records left out).

    refused: when a list is given, a record whose files are refused is left out and its one-line message appended
    there, so that one broken record does not stop the others; else its InputError propagates. InputError when no
    record could be scored."""
    folder = Path(record_dir)
    if not folder.is_dir():
        raise InputError(f"{folder}: record folder not found")
    if not records:
        listing = folder / "RECORDS"
        records = read_record_list(listing) if listing.exists() else sorted(
            p.stem for p in folder.glob("*.hea") if (folder / f"{p.stem}.{ref}").exists())
        if not records:
            raise InputError(f"{folder}: no records with {ref} annotations (name them after RECORD_DIR)")
    comparisons = []
    for r in records:
        try:
            comparisons.append(score_record(folder / r, ref, test, learning_period=learning_period,
                                            test_dir=test_dir))
        except InputError as exc:
            if refused is None:
                raise
            refused.append(str(exc))
    if not comparisons:
        raise InputError(f"{folder}: none of the {len(records)} records could be scored ({refused[0]})")
    return comparisons, summarize(comparisons)

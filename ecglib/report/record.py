"""The record report: one self-contained HTML page per labelled record, for a person to look at (a cardiology
technician, a student), and an index page linking the records.

A page holds a Holter-style summary (duration, beats per class, heart rate, ectopic burden, noise), the heart rate
over the recording, S and V beats per hour, the RR tachogram and a Poincaré plot, the rhythm events with their
times, example strips of each class and of the longest events, and, when the record has reference annotations,
its EC57 statistics and bxb matrix. The numbers come from :mod:`ecglib.report.events` (their definitions are
printed in the page's footer); the figures are drawn here.

The figures are PNGs embedded in the page as data URIs: one file that opens offline, can be moved or mailed, and
never shows a missing image. Plain HTML and inline CSS, no script. Long recordings stay fast: the heart rate is
drawn per minute, the Poincaré plot becomes a 2-D histogram and the events table is capped (with counts).
"""
from __future__ import annotations

import html
import os
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import ecglib  # its __version__, named on every page (a dunder that a `from .. import` would make look private)

from ..data.facts import CLASS_NAMES, CLASSES
from ..ec57.annotate import AnnotatedRecord
from ..ec57.annotations import Annotations
from ..ec57.bxb import BXB_LABELS, STATS, Comparison
from ..ec57.score import format_matrix
from ..files import atomic_write_text
from .events import (
    BIGEMINY,
    COUPLET,
    DEFINITIONS,
    EVENT_KINDS,
    PAUSE,
    SVT,
    TRIGEMINY,
    UNCERTAIN,
    VT,
    Event,
    RecordSummary,
    class_letters,
    find_events,
    format_clock,
    merge_intervals,
    summarize_record,
)
from .record_figures import (
    DENSE_POINTS,
    clock_axis,
    densest_start,
    new_figure,
    plot_ectopy,
    plot_heart_rate,
    plot_rr,
    png_data_uri,
)
from .strips import aami_classes, plot_strip

MAX_EVENT_ROWS = 200  # rows of the events table; the counts above it are complete
STRIP_SECONDS = 8.0
STAT_NOTE = ("Q: every beat (QRS detection); V: ventricular ectopic beats (VEB); S: supraventricular ectopic beats "
             "(SVEB); Se: sensitivity, the share of the reference's beats found; +P: positive predictivity, the "
             "share of ecglib's beats that the reference confirms; FPR: false positive rate; RR err: RMS error of "
             "the RR intervals in ms. '-': no beats to count.")

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0 auto;max-width:1180px;padding:0 18px;
color:#222;line-height:1.4}
h1{margin:18px 0 2px}h2{border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:26px}
.sub{color:#555;margin:0 0 8px}nav a{margin-right:12px}
table{border-collapse:collapse;margin:6px 0 10px}td,th{border:1px solid #ddd;padding:3px 9px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.grid{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
img{max-width:100%;height:auto;display:block}figure{margin:8px 0 14px}figcaption{color:#555;font-size:90%}
.note{color:#555;font-size:90%}footer{margin:30px 0;border-top:1px solid #ccc;font-size:90%;color:#444}
dt{font-weight:bold;margin-top:4px}dd{margin-left:18px}pre{background:#f7f7f7;padding:8px;overflow-x:auto}
.warn{background:#fff6e0;border:1px solid #e8c66a;padding:6px 10px}
"""


def _strips(signal: np.ndarray, fs: float, starts: list[tuple[float, str]], result: AnnotatedRecord,
            pred: np.ndarray, reference: Annotations | None) -> str:
    """One image of strips, one row per (start, title), their time axes on the record's clock ('' when no strip
    starts inside the signal)."""
    if reference is not None:
        ref_class = aami_classes(reference.symbol)
        beat = ref_class != ""
        ref_sample, ref_class = reference.sample[beat], ref_class[beat]
    else:
        ref_sample = ref_class = None
    starts = [(start, title) for start, title in starts if int(start * fs) < len(signal) - 1]
    if not starts:
        return ""
    fig = new_figure(14, 2.6 * len(starts))
    axes = np.atleast_1d(fig.subplots(len(starts), 1))
    for ax, (start, title) in zip(axes, starts):
        plot_strip(signal, fs, ref_sample, ref_class, result.sample, pred, start, STRIP_SECONDS, ax=ax, title=title)
        clock_axis(ax, start, start + STRIP_SECONDS, step=1.0)
        if ax is not axes[-1]:
            ax.set_xlabel("")  # one time label under the stack
    return png_data_uri(fig)


# ------------------------------------------------------------------------------------------------------ pages
def _e(value: object) -> str:
    return html.escape(str(value))


def _table(head: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """An HTML table; the first ``left`` columns are left-aligned (names), the rest right-aligned (numbers)."""
    def cell(tag: str, j: int, v: object) -> str:
        return f"<{tag}{' class=l' if j < left else ''}>{_e(v)}</{tag}>"

    out = ["<table><tr>" + "".join(cell("th", j, h) for j, h in enumerate(head)) + "</tr>"]
    out += ["<tr>" + "".join(cell("td", j, v) for j, v in enumerate(row)) + "</tr>" for row in rows]
    return "".join(out) + "</table>"


def _img(src: str, alt: str, caption: str = "") -> str:
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{src}" alt="{_e(alt)}">{cap}</figure>'


def _rate(hr: tuple[float, float] | None) -> str:
    return "-" if hr is None else f"{hr[0]:.0f} bpm at {format_clock(hr[1])}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} %"


def _summary_html(s: RecordSummary, noise_count: int) -> str:
    noise_share = 100.0 * s.noise_seconds / s.seconds if s.seconds > 0 else 0.0
    key = [("duration", format_clock(s.seconds)), ("beats", f"{s.beats:,}"),
           ("mean heart rate", "-" if s.mean_hr is None else f"{s.mean_hr:.0f} bpm"),
           ("minimum heart rate (10 RR)", _rate(s.min_hr)), ("maximum heart rate (10 RR)", _rate(s.max_hr)),
           ("S burden (ectopic S beats)", _pct(s.s_burden)), ("V burden (ectopic V beats)", _pct(s.v_burden)),
           ("time marked as noise", f"{format_clock(s.noise_seconds)} ({noise_share:.1f} %, "
                                    f"{noise_count} interval{'s' if noise_count != 1 else ''})"
            if noise_count else "none marked"),
           ("VT runs (3+ V) / of which triplets", f"{s.events[VT]} / {s.triplets}"),
           ("couplets", s.events[COUPLET]), ("SVT runs (3+ S)", s.events[SVT]),
           ("bigeminy / trigeminy episodes", f"{s.events[BIGEMINY]} / {s.events[TRIGEMINY]}"),
           ("pauses (RR > 2 s)", s.events[PAUSE])]
    head = ["class", "name", "beats", "share"] + (["uncertain"] if s.uncertain is not None else [])
    rows = []
    for c in (*CLASSES, "?"):
        if c == "?" and not s.counts[c]:
            continue
        row: list[object] = [c, CLASS_NAMES.get(c, "not classified (too close to the end)"), f"{s.counts[c]:,}",
                             f"{100.0 * s.counts[c] / max(s.beats, 1):.2f} %"]
        if s.uncertain is not None:
            row.append(s.uncertain.get(c, "-"))
        rows.append(row)
    note = (f"<p class=note>uncertain: beats whose most probable class has a probability below {UNCERTAIN:g}.</p>"
            if s.uncertain is not None else "")
    return (f"<div class=grid><div>{_table(['', 'value'], key)}</div>"
            f"<div>{_table(head, rows, left=2)}{note}</div></div>")


def _events_html(events: list[Event]) -> str:
    if not events:
        return "<p>No events of the kinds defined below.</p>"
    rows = []
    for kind in EVENT_KINDS:
        mine = [e for e in events if e.kind == kind]
        if mine:
            longest = max(mine, key=lambda e: (e.duration if kind == PAUSE else e.beats, -e.start))
            rows.append([kind, len(mine), f"{longest.describe()} at {format_clock(longest.start)}"])
    out = _table(["event", "count", "longest"], rows)
    shown = events[:MAX_EVENT_ROWS]
    rows = [[format_clock(e.start), format_clock(e.end), e.describe(),
             "" if e.kind == PAUSE else f"{e.rate:.0f}"] for e in shown]
    out += _table(["start", "end", "event", "rate (bpm)"], rows, left=3)
    if len(events) > len(shown):
        out += (f"<p class=note>The first {len(shown)} of {len(events):,} events are listed; the counts above "
                "are complete.</p>")
    return out


def _ec57_html(comp: Comparison) -> str:
    stats, t = comp.stats(), comp.tallies()
    frac = {"Q Se": (t["QTP"], t["QTP"] + t["QFN"]), "Q +P": (t["QTP"], t["QTP"] + t["QFP"]),
            "V Se": (t["VTP"], t["VTP"] + t["VFN"]), "V +P": (t["VTP"], t["VTP"] + t["VFP"]),
            "V FPR": (t["VFP"], t["VTN"] + t["VFP"]), "S Se": (t["STP"], t["STP"] + t["SFN"]),
            "S +P": (t["STP"], t["STP"] + t["SFP"])}
    line = _table([""] + list(STATS), [["%"] + ["-" if stats[k] is None else f"{stats[k]:.2f}" for k in STATS],
                                       ["beats"] + [f"{frac[k][0]}/{frac[k][1]}" if k in frac else "" for k in STATS]])
    head = ["reference \\ ecglib"] + [c.lower() for c in BXB_LABELS]
    matrix = [[r] + [int(v) for v in comp.matrix[i, :7 if i < 5 else 5]] + ([""] * 2 if i >= 5 else [])
              for i, r in enumerate(BXB_LABELS)]
    return (f"<p>Beat by beat against the reference annotations, as ANSI/AAMI EC57 and WFDB bxb score: the first "
            f"{comp.learning_period:g} s are not scored (the learning period).</p>{line}<p class=note>"
            f"{_e(STAT_NOTE)}</p>{_table(head, matrix)}<p class=note>The bxb matrix. Rows: the reference class; "
            "columns: ecglib's; o: no beat there; x: a beat missed while the other annotator marked shutdown.</p>"
            f"<details><summary>bxb's text report</summary><pre>{_e(format_matrix(comp))}</pre></details>")


def _definitions_html() -> str:
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in DEFINITIONS.items())
    return f"<dl>{items}</dl>"


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f"<body>{body}</body></html>\n")


def record_name(result: AnnotatedRecord) -> str:
    """The record's name (the last part of its path): the report's file is NAME.html."""
    return Path(result.record).name


def _rows(starts: list[tuple[float, str]]) -> str:
    """The strips of an image named in its caption, so that a reader (and a search) finds them in the text."""
    return "; ".join(f"{title} from {format_clock(start)}" for start, title in starts)


def _event_strips(events: list[Event], seconds: float) -> list[tuple[float, str]]:
    """Strips of the longest VT run, SVT run, pause and bigeminy episode (the first of equals)."""
    out = []
    for kind in (VT, SVT, PAUSE, BIGEMINY):
        mine = [e for e in events if e.kind == kind]
        if mine:
            e = max(mine, key=lambda e: (e.duration, -e.start))
            start = min(max(e.start - 1.0, 0.0), max(seconds - STRIP_SECONDS, 0.0))
            out.append((start, f"{e.describe()} at {format_clock(e.start)} (the longest)"))
    return out


def _other_lead(result: AnnotatedRecord) -> str:
    """What the recording's other lead gave, as the summary line says it: " (12 of them found on V1 where MLII is
    unreadable, with no class; 30 missed on V1 and found on MLII)", or ""."""
    parts = []
    if result.rescued:
        parts.append(f"{result.rescued:,} of them found on {_e(result.backup_lead)} where {_e(result.lead)} is "
                     "unreadable, with no class")
    if result.completed:
        parts.append(f"{result.completed:,} missed on {_e(result.lead)} and found on {_e(result.completed_lead)}")
    return f" ({'; '.join(parts)})" if parts else ""


def write_record_report(result: AnnotatedRecord, signal: np.ndarray, out_dir: str | os.PathLike,
                        comparison: Comparison | None = None, noise: Sequence[tuple[float, float]] = (),
                        prob: np.ndarray | None = None, reference: Annotations | None = None) -> Path:
    """Write OUT_DIR/NAME.html, the report of one labelled record, and return its path.

    signal: the lead the beats were found on (T,), in mV at ``result.fs`` (for the strips); comparison: the
    record's bxb comparison with its reference annotations (the EC57 section); noise: intervals (start, end) in
    seconds marked as noise; prob: (k, 5) class probabilities of the beats (the count of uncertain beats);
    reference: the reference annotations (their labels above the strips).
    """
    signal = np.asarray(signal)
    if signal.ndim != 1:
        raise ValueError(f"{result.record}: the signal is one lead of shape (T,), not {signal.shape}")
    noise = merge_intervals(noise)  # a list of (start, end) from any sequence of pairs, an (n, 2) array included
    fs = float(result.fs)
    seconds = float(result.seconds)
    times = np.asarray(result.sample, dtype=float) / fs
    classes = class_letters(result.label)
    events = find_events(times, classes, noise)
    summary = summarize_record(times, classes, seconds, noise, events, prob)
    name = record_name(result)

    fig = new_figure(12, 3.0)
    plot_heart_rate(fig.subplots(), times, seconds, noise)
    hr_png = png_data_uri(fig)
    fig = new_figure(12, 2.8)
    plot_ectopy(fig.subplots(), times, classes, seconds)
    ectopy_png = png_data_uri(fig)
    fig = new_figure(12, 3.4)
    plot_rr(fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]}), times, classes, seconds, noise)
    rr_png = png_data_uri(fig)
    class_starts = []
    for c in CLASSES:
        tc = times[classes == c]
        if len(tc):
            class_starts.append((densest_start(tc, seconds, STRIP_SECONDS),
                                 f"{c}: {CLASS_NAMES[c]} ({summary.counts[c]:,} beats)"))
    strips_png = _strips(signal, fs, class_starts, result, classes, reference) if class_starts else ""
    event_starts = _event_strips(events, seconds)
    events_png = _strips(signal, fs, event_starts, result, classes, reference) if event_starts else ""

    labelled = ("its reference annotations' labels above the trace, ecglib's below (circled where they disagree)"
                if reference is not None else "ecglib's labels below the trace")
    body = [f"<h1>Record {_e(name)}</h1>",
            f"<p class=sub>{_e(format_clock(seconds))} of ECG, lead {_e(result.lead)} at {fs:g} Hz"
            f"{' (classified turned over: its QRS complexes point down)' if result.inverted else ''}; "
            f"{len(times):,} beats found by the {_e(result.detector)} detector{_other_lead(result)} and labelled by "
            f"ecglib {_e(ecglib.__version__)}. Times are hh:mm:ss from the record's start.</p>",
            "<p class=warn>Beat labels by a trained model, not by a cardiologist: for study and review, not for "
            "diagnosis.</p>",
            '<nav><a href="#summary">summary</a><a href="#hr">heart rate</a><a href="#ectopy">S and V per hour</a>'
            '<a href="#rr">RR intervals</a><a href="#events">events</a><a href="#strips">strips</a>'
            + ('<a href="#ec57">EC57</a>' if comparison is not None else "") + '<a href="#defs">definitions</a></nav>',
            f'<h2 id="summary">Summary</h2>{_summary_html(summary, len(noise))}',
            '<h2 id="hr">Heart rate</h2>'
            + _img(hr_png, "heart rate over the recording",
                   "Heart rate over 10 RR intervals at every beat" + (", per minute" if len(times) > DENSE_POINTS
                                                                      else "") + ("; grey: noise" if noise else "")
                   + "."),
            '<h2 id="ectopy">S and V beats per hour</h2>' + _img(ectopy_png, "S and V beats per hour"),
            '<h2 id="rr">RR intervals</h2>'
            + _img(rr_png, "RR tachogram and Poincare plot",
                   "Left: every RR interval at the time of the beat that ends it, coloured by that beat's class. "
                   "Right: each RR interval against the next (Poincaré plot"
                   + ("; a 2-D histogram, log colour scale" if len(times) > DENSE_POINTS else
                      ", coloured by the class of the beat between them") + ")."),
            f'<h2 id="events">Events</h2>{_events_html(events)}',
            '<h2 id="strips">Strips</h2>'
            + (_img(strips_png, "example strips of each class",
                    f"For each class, the {STRIP_SECONDS:g} seconds holding the most beats of that class, with "
                    f"{labelled}: {_rows(class_starts)}.") if strips_png else "<p>No beats.</p>")
            + (_img(events_png, "strips of the longest events",
                    f"The longest event of each kind: {_rows(event_starts)}.") if events_png else "")]
    if comparison is not None:
        body.append(f'<h2 id="ec57">EC57 against the reference annotations</h2>{_ec57_html(comparison)}')
    body.append(f'<footer><h2 id="defs">Definitions</h2>{_definitions_html()}<p>Written by ecglib '
                f"{_e(ecglib.__version__)} (record {_e(result.record)}).</p></footer>")
    path = Path(out_dir) / f"{name}.html"
    atomic_write_text(path, _page(f"Record {name} - ecglib report", "\n".join(body)))
    return path


def write_report_index(entries: Sequence[tuple[AnnotatedRecord, Path]], out_dir: str | os.PathLike) -> Path:
    """Write OUT_DIR/index.html: one summary row per (record, its report's path), each linking to the report by a
    relative address (the folder can be moved). Returns the index's path."""
    out = Path(out_dir)
    rows = []
    for result, page in entries:
        times = np.asarray(result.sample, dtype=float) / float(result.fs)
        s = summarize_record(times, class_letters(result.label), float(result.seconds))
        href = urllib.parse.quote(Path(os.path.relpath(Path(page).resolve(), out.resolve())).as_posix())
        cells = [format_clock(s.seconds), f"{s.beats:,}",
                 "-" if s.mean_hr is None else f"{s.mean_hr:.0f}",
                 "-" if s.min_hr is None else f"{s.min_hr[0]:.0f}", "-" if s.max_hr is None else f"{s.max_hr[0]:.0f}",
                 _pct(s.s_burden), _pct(s.v_burden), s.events[VT], s.events[COUPLET], s.events[SVT],
                 s.events[BIGEMINY] + s.events[TRIGEMINY], s.events[PAUSE]]
        rows.append(f'<tr><td class=l><a href="{_e(href)}">{_e(record_name(result))}</a></td>'
                    + "".join(f"<td>{_e(v)}</td>" for v in cells) + "</tr>")
    head = ["record", "duration", "beats", "mean HR", "min HR", "max HR", "S burden", "V burden", "VT runs",
            "couplets", "SVT runs", "bi/trigeminy", "pauses"]
    table = ("<table><tr>" + "".join(f"<th{' class=l' if i == 0 else ''}>{_e(h)}</th>" for i, h in enumerate(head))
             + "</tr>" + "".join(rows) + "</table>")
    body = (f"<h1>Records</h1><p class=sub>{len(entries)} record{'s' if len(entries) != 1 else ''} labelled by "
            f"ecglib {_e(ecglib.__version__)}; heart rates in bpm (min and max over 10 RR intervals). Each name "
            "opens the record's report.</p><p class=warn>Beat labels by a trained model, not by a cardiologist.</p>"
            f"{table}"
            f'<footer><h2>Definitions</h2>{_definitions_html()}</footer>')
    path = out / "index.html"
    atomic_write_text(path, _page("ecglib records", body))
    return path

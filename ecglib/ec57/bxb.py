"""Beat-by-beat comparison of two annotation sets as ANSI/AAMI EC57 prescribes, read like the WFDB software's ``bxb``.

:func:`compare` reimplements, rule for rule, the comparison of ``bxb`` (G. Moody, WFDB 10.7, ``app/bxb.c``), so that
it scores as bxb does: the same reading of the two annotation streams (beat annotations only; ventricular flutter
episodes ``[`` .. ``]`` skipped; shutdown marked by noise annotations ``~`` whose subtype has bits 4 and 5 set), the
same start of the comparison after the learning period, the same four-way pairing rule with the 2002 refinement for
beats closer than twice the match window, the same end of the comparison (the end of the record when its length is
known, else the end of the reference annotations), and the same pseudo-beats ``O`` (no match) and ``X`` (shutdown).
Classes follow ``bxb``'s AAMI mapping with SVEB statistics (its ``-L``/``-S``/``-C`` reports), see
:data:`BXB_CLASS`. The per-record statistics are ``bxb``'s, the gross and average ones those of the WFDB program
``sumstats`` on ``bxb -L`` line reports (plus the VEB false positive rate of its ``-l`` reports).

Everything here is pure: sample numbers and symbols in, counts and statistics out. Reading annotation files,
scoring records and the bxb-style reports are in :mod:`ecglib.ec57.score`, annotation files in
:mod:`ecglib.ec57.annotations`.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.facts import PACED_RECORDS
from ..errors import InputError

# Reference rows and test columns of the bxb matrix: the five AAMI classes, O (no match: a pseudo-beat paired with
# an unmatched beat of the other file) and X (a beat missed while the other file marks shutdown).
BXB_LABELS: tuple[str, ...] = ("N", "S", "V", "F", "Q", "O", "X")
_IDX = {c: i for i, c in enumerate(BXB_LABELS)}

# bxb's amap() with SVEB statistics on (fflag > 3), keyed by MIT annotation symbol. Every symbol here is a beat
# annotation (WFDB's isqrs()); '!' (ventricular flutter wave) counts as a beat but maps to O, as in bxb. NOTE:
# bxb (and EC57's SVEB class) puts the escape beats e, j, n in S, whereas ecglib's training labels (data.AAMI,
# after de Chazal et al. 2004) put e and j in N: a model that learned "j is N" is scored as missing an SVEB there.
BXB_CLASS: dict[str, str] = {
    **dict.fromkeys("NLRB", "N"),
    **dict.fromkeys("aJASjen", "S"),
    **dict.fromkeys("VrE", "V"),
    "F": "F",
    **dict.fromkeys("Q/f?", "Q"),
    "!": "O",
}
NOISE, VFON, VFOFF = "~", "[", "]"
SHUTDOWN_BITS = 0x30
DEFAULT_LEARNING_PERIOD = 300.0  # s: bxb's default start of the comparison, "5:0"
DEFAULT_MATCH_WINDOW = 0.15  # s
# The columns of a bxb -L line report, with sumstats' primes: Nn' = Nn+Nf+Nq, Fn' = F and Q rows, On' = O and X
# rows, No' = No+Nx, ...
LINE_COLUMNS: tuple[str, ...] = ("Nn'", "Sn'", "Vn'", "Fn'", "On'", "Ns", "Ss", "Vs", "Fs'", "Os'", "Nv", "Sv", "Vv",
                                 "Fv'", "Ov'", "No'", "So'", "Vo'", "Fo'")
STATS: tuple[str, ...] = ("Q Se", "Q +P", "V Se", "V +P", "V FPR", "S Se", "S +P", "RR err")

_HUGE = 2 ** 62  # bxb's huge_time: "no more annotations"


def wfdb_time(seconds: float, fs: float) -> int:
    """Seconds to samples the way WFDB's strtim() rounds them: (long)(seconds * fs + 0.5)."""
    return int(seconds * fs + 0.5)


# ---------------------------------------------------------------------------------------------------- the streams
class _Stream:
    """One annotation file read as bxb's getref()/gettest() read it: the current beat (time, class) and the next
    one, the latest two shutdown and VF periods, and the RR interval ending at the current beat."""

    def __init__(self, samples: np.ndarray, symbols: Sequence[str], subtypes: np.ndarray | None, match_dt: int,
                 is_ref: bool, end_time: int, classes: Mapping[str, str]):
        self.time = [int(s) for s in samples]
        self.sym = list(symbols)
        self.sub = [0] * len(self.time) if subtypes is None else [int(s) for s in subtypes]
        self.pos = 0
        self.match_dt, self.is_ref, self.end_time, self.classes = match_dt, is_ref, end_time, classes
        self.T = self.Tprime = 0  # times of the current and the next beat
        self.A: str = ""  # class of the current beat ("" before the first: bxb's 0, which pair() ignores)
        self.Aprime: str = ""
        self.RR = 0
        self.sdon = self.sdoff = self.vfon = self.vfoff = -1
        self.psdon = self.psdoff = self.pvfon = self.pvfoff = -1
        self.shut_down = 0  # samples of shutdown (test file only, as bxb tallies it)

    def _getann(self) -> tuple[int, str, int] | None:
        if self.pos >= len(self.time):
            return None
        i = self.pos
        self.pos += 1
        return self.time[i], self.sym[i], self.sub[i]

    def _eof(self) -> None:
        self.Tprime, self.Aprime = _HUGE, "*"

    def advance(self) -> None:
        """getref() / gettest(): make the next beat current and read the one after it."""
        TT = self.T
        self.T, self.A = self.Tprime, self.Aprime
        T = self.T
        # T - TT is no RR interval at the first or past the last beat, nor across VF or shutdown.
        if (TT == 0 or T == _HUGE or (TT <= self.vfon < T) or (TT <= self.sdon < T) or (TT <= self.pvfon < T)
                or (TT <= self.psdon < T)):
            self.RR = 0
        else:
            self.RR = T - TT
        while (ann := self._getann()) is not None:
            time, sym, sub = ann
            if sym in self.classes:  # a beat annotation
                self.Tprime, self.Aprime = time, self.classes[sym]
                return
            if sym == NOISE:
                if sub & SHUTDOWN_BITS == SHUTDOWN_BITS:
                    self.psdon, self.psdoff = self.sdon, self.sdoff
                    self.sdon = time
                    nxt = self._getann()
                    if nxt is None:  # end of file before the end of shutdown
                        self._eof()
                        if self.is_ref:
                            self.sdoff = _HUGE
                        elif self.end_time > 0:
                            self.shut_down += self.end_time - self.sdon
                        return
                    if nxt[1] == NOISE and nxt[2] & SHUTDOWN_BITS != SHUTDOWN_BITS:
                        self.sdoff = nxt[0]
                    else:
                        # AHA-style single shutdown mark: shutdown from match_dt after the last beat (or VF end)
                        # to match_dt before the next annotation.
                        self.sdon = (self.vfoff if self.vfoff > self.T else self.T) + self.match_dt
                        self.sdoff = nxt[0] - self.match_dt
                        if self.sdon > self.sdoff:
                            self.sdon = self.sdoff
                        self.pos -= 1  # ungetann
                    if not self.is_ref:
                        self.shut_down += self.sdoff - self.sdon
            elif sym == VFON:  # annotations up to the end of VF are read and ignored
                self.pvfon, self.pvfoff = self.vfon, self.vfoff
                self.vfon = time
                while True:
                    nxt = self._getann()
                    if nxt is None:
                        self._eof()
                        return
                    if nxt[1] == VFOFF:
                        break
                self.vfoff = nxt[0]
        self._eof()

    def pseudo_for_other(self, t: int) -> str:
        """The pseudo-beat that an unmatched beat of the OTHER file at time t is paired with: bxb's rpann() for the
        reference stream (a test beat in reference-marked VF is not counted: '*'), tpann() for the test stream."""
        if self.is_ref and ((self.vfon != -1 and self.vfon <= t and (t <= self.vfoff or self.vfoff == -1))
                            or (self.pvfon != -1 and self.pvfon <= t <= self.pvfoff)):
            return "*"
        if ((self.sdon != -1 and self.sdon <= t and (t <= self.sdoff or self.sdoff == -1))
                or (self.psdon != -1 and self.psdon <= t <= self.psdoff)):
            return "X"
        return "O"


# -------------------------------------------------------------------------------------------------- comparison
@dataclass
class Comparison:
    """The outcome of comparing one record's test annotations with its reference annotations.

    matrix: (7, 7) int64, rows the reference label and columns the test label, both in BXB_LABELS order (N, S, V, F,
      Q, O, X); the O and X rows have no o and x columns (always 0), as in bxb.
    fs: sampling rate (Hz); rr_sq_sum / rr_count: sum of squared reference-minus-test RR interval differences
      (samples^2) over the matched pairs where both are defined, and their number; shutdown_seconds: the test
      annotator's total shutdown, rounded as bxb rounds it.
    """

    record: str
    matrix: np.ndarray
    fs: float
    rr_sq_sum: float = 0.0
    rr_count: int = 0
    shutdown_seconds: int = 0
    learning_period: float = DEFAULT_LEARNING_PERIOD
    paced: bool = False
    notes: tuple[str, ...] = ()  # what reading the files left out, said under the report (never scored)

    def count(self, ref: str, test: str) -> int:
        """One cell, e.g. count("V", "N") is bxb's Vn."""
        return int(self.matrix[_IDX[ref], _IDX[test.upper()]])

    # bxb's tallies (print_results), from the whole matrix
    def tallies(self) -> dict[str, int]:
        m = self.matrix
        N, S, V, F, Q, O, X = range(7)  # noqa: E741 - bxb's own names for the matrix rows
        tallies = {
            "QTP": int(m[:5, :5].sum()), "QFN": int(m[:5, 5:].sum()), "QFP": int(m[5:, :5].sum()),
            "VTP": int(m[V, V]), "VFN": int(m[V].sum() - m[V, V]),
            "VTN": int(m[np.ix_([N, S, F, Q, O, X], [N, S, F, Q])].sum()),
            "VFP": int(m[N, V] + m[S, V] + m[O, V] + m[X, V]),
            "STP": int(m[S, S]), "SFN": int(m[S].sum() - m[S, S]),
            "SFP": int(m[N, S] + m[V, S] + m[F, S] + m[O, S] + m[X, S]),
        }
        return tallies

    def stats(self) -> dict[str, float | None]:
        """bxb's per-record statistics in percent (None where the denominator is 0): QRS sensitivity and positive
        predictivity, VEB sensitivity, +P and false positive rate, SVEB sensitivity and +P, and the RMS RR
        interval error in ms."""
        t = self.tallies()
        return {
            "Q Se": _pct(t["QTP"], t["QTP"] + t["QFN"]), "Q +P": _pct(t["QTP"], t["QTP"] + t["QFP"]),
            "V Se": _pct(t["VTP"], t["VTP"] + t["VFN"]), "V +P": _pct(t["VTP"], t["VTP"] + t["VFP"]),
            "V FPR": _pct(t["VFP"], t["VTN"] + t["VFP"]),
            "S Se": _pct(t["STP"], t["STP"] + t["SFN"]), "S +P": _pct(t["STP"], t["STP"] + t["SFP"]),
            "RR err": math.sqrt(self.rr_sq_sum / self.rr_count) * 1000.0 / wfdb_time(1, self.fs)
            if self.rr_count else None,
        }

    def line(self) -> dict[str, int]:
        """The counts of bxb's -L line report (LINE_COLUMNS): Nn' = Nn+Nf+Nq, Fn' = Fn+Ff+Fq+Qn+Qf+Qq,
        On' = On+Of+Oq+Xn+Xf+Xq, Fs' = Fs+Qs, Os' = Os+Xs, Fv' = Fv+Qv, Ov' = Ov+Xv, No' = No+Nx,
        Fo' = Fo+Fx+Qo+Qx, and so on."""
        m = self.matrix
        groups = {"N": [0], "S": [1], "V": [2], "F": [3, 4], "O": [5, 6]}
        nfq, o_x = [0, 3, 4], [5, 6]
        out = {}
        for row in "NSVFO":
            out[f"{row}n'"] = int(m[np.ix_(groups[row], nfq)].sum())
        for col, j in (("s", 1), ("v", 2)):
            for row in "NSVFO":
                key = f"{row}{col}" + ("'" if row in "FO" else "")
                out[key] = int(m[groups[row], j].sum())
        for row in "NSVF":
            out[f"{row}o'"] = int(m[np.ix_(groups[row], o_x)].sum())
        return {k: out[k] for k in LINE_COLUMNS}

    def reference_beats(self) -> int:
        """Reference beats scored (after the learning period)."""
        return int(self.matrix[:5].sum())


def _pct(a: float, b: float) -> float | None:
    return 100.0 * a / b if b > 0 else None


def _check_annotations(samples: np.ndarray, symbols: Sequence[str], what: str) -> tuple[np.ndarray, list[str]]:
    samples = np.asarray(samples)
    symbols = [str(s) for s in symbols]
    if samples.ndim != 1 or len(samples) != len(symbols):
        raise InputError(f"{what}: {np.size(samples)} sample numbers for {len(symbols)} symbols")
    if len(samples) and (not np.issubdtype(samples.dtype, np.integer) and not np.all(samples == np.round(samples))):
        raise InputError(f"{what}: sample numbers must be integers")
    if len(samples) and samples.min() < 0:
        raise InputError(f"{what}: negative sample number {int(samples.min())}")
    if len(samples) > 1 and np.any(np.diff(samples) < 0):
        i = int(np.flatnonzero(np.diff(samples) < 0)[0])
        raise InputError(f"{what}: annotations out of time order (sample {int(samples[i + 1])} after "
                         f"{int(samples[i])})")
    return samples.astype(np.int64), symbols


def compare(ref_samples: Sequence[int] | np.ndarray, ref_symbols: Sequence[str],
            test_samples: Sequence[int] | np.ndarray, test_symbols: Sequence[str], fs: float,
            learning_period: float = DEFAULT_LEARNING_PERIOD, match_window: float = DEFAULT_MATCH_WINDOW,
            sig_len: int | None = None, ref_subtypes: Sequence[int] | None = None,
            test_subtypes: Sequence[int] | None = None, record: str = "",
            classes: Mapping[str, str] = BXB_CLASS) -> Comparison:
    """Compare test with reference annotations of one record beat by beat, exactly as bxb does.

    ref_samples, test_samples: (k,) annotation times in samples at ``fs`` Hz, in time order; ref_symbols,
      test_symbols: their MIT symbols (non-beat annotations are allowed and skipped, except ``[``/``]`` VF and
      ``~`` shutdown marks, which act as in bxb; their subtypes matter only for ``~``).
    learning_period: seconds from the start of the record that are not scored (bxb -f; default 5 minutes).
    match_window: seconds (bxb -w; default 0.15). Both are rounded to samples as WFDB does (wfdb_time).
    sig_len: the record's length in samples: the comparison runs while either file's current beat is within it.
      None or 0: to the end of the reference annotations (bxb without a record length).
    """
    if not (fs > 0 and math.isfinite(fs)):
        raise InputError(f"{record or 'record'}: sampling rate {fs!r} is not a positive number")
    for value, what in ((learning_period, "learning period"), (match_window, "match window")):
        if not (math.isfinite(value) and value >= 0):
            raise InputError(f"{record or 'record'}: {what} {value!r} s is not a number of seconds >= 0")
    ref_samples, ref_symbols = _check_annotations(ref_samples, ref_symbols, f"{record} reference".strip())
    test_samples, test_symbols = _check_annotations(test_samples, test_symbols, f"{record} test".strip())
    for subtypes, samples, what in ((ref_subtypes, ref_samples, "reference"), (test_subtypes, test_samples, "test")):
        if subtypes is not None and len(subtypes) != len(samples):
            raise InputError(f"{record} {what}: {len(subtypes)} subtypes for {len(samples)} annotations".strip())
    start = wfdb_time(learning_period, fs)
    match_dt = wfdb_time(match_window, fs)
    end_time = int(sig_len) if sig_len else -1
    if end_time > 0 and end_time < start:
        raise InputError(f"{record or 'record'}: the record ({end_time / fs:g} s) is shorter than the learning "
                         f"period ({learning_period:g} s): nothing to score; shorten it (--learning-period)")
    ref = _Stream(ref_samples, ref_symbols, None if ref_subtypes is None else np.asarray(ref_subtypes), match_dt,
                  True, end_time, classes)
    test = _Stream(test_samples, test_symbols, None if test_subtypes is None else np.asarray(test_subtypes),
                   match_dt, False, end_time, classes)
    matrix = np.zeros((7, 7), dtype=np.int64)
    rr = [0.0, 0]

    def pair(a_ref: str, a_test: str) -> None:
        if a_ref in _IDX and a_test in _IDX and not (a_ref in "OX" and a_test in "OX"):
            matrix[_IDX[a_ref], _IDX[a_test]] += 1
        if ref.RR > 0 and test.RR > 0:
            rr[0] += float(ref.RR - test.RR) ** 2
            rr[1] += 1

    # The first reference beat at or after the start, and the last test beat before it.
    ref.advance()
    while ref.T < start:
        ref.advance()
    test.advance()
    while test.Tprime < start:
        test.advance()
    T, t = ref.T, test.T
    if T - t < abs(T - test.Tprime) and T - t <= match_dt:
        # A test beat just before the start matches the first reference beat: count it.
        if ref.A or test.A:  # false only when the learning period is 0
            pair(ref.A, test.A)
        ref.advance()
        test.advance()
    else:
        test.advance()
        # A test beat within a match window after the start, matching nothing, is skipped uncounted.
        if test.T - start <= match_dt and abs(ref.T - test.Tprime) < abs(ref.T - test.T):
            test.advance()

    while ((end_time > 0 and (ref.T <= end_time or test.T <= end_time)) or (end_time == -1 and ref.T != _HUGE)
           or (end_time == 0 and ref.T != _HUGE and test.T != _HUGE)):
        T, Tp, A = ref.T, ref.Tprime, ref.A
        t, tp, a = test.T, test.Tprime, test.A
        if t < T:  # the test beat comes first
            if T - t <= match_dt and (T - t < abs(T - tp) or abs(Tp - tp) < abs(T - tp)):
                pair(A, a)
                ref.advance()
                test.advance()
            else:
                pair(ref.pseudo_for_other(t), a)
                test.advance()
        else:
            if t - T <= match_dt and (t - T < abs(t - Tp) or abs(tp - Tp) < abs(t - Tp)):
                pair(A, a)
                test.advance()
                ref.advance()
            else:
                pair(A, test.pseudo_for_other(T))
                ref.advance()

    one_second = wfdb_time(1, fs)
    shutdown = (test.shut_down + wfdb_time(0.5, fs)) // one_second
    name = Path(record).name if record else ""
    return Comparison(record, matrix, float(fs), rr[0], int(rr[1]), int(shutdown), learning_period,
                      paced=name in PACED_RECORDS)


# --------------------------------------------------------------------------------------------------- aggregates
@dataclass
class Summary:
    """Gross and average statistics over records, as sumstats derives them from bxb -L line reports.

    gross: statistics of the summed counts; average: the mean over records of each record's statistic (records
    where it is undefined are left out); line: the summed LINE_COLUMNS; records: the names summed; excluded: the
    paced records scored but left out.
    """

    gross: dict[str, float | None]
    average: dict[str, float | None]
    line: dict[str, int]
    records: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    total_qrs: int = 0
    total_veb: int = 0
    total_sveb: int = 0


def _sumstats_record(c: dict[str, int]) -> dict[str, tuple[int, int]]:
    """(numerator, denominator) of each statistic from one bxb -L line, as sumstats reads it (its SVEB +P leaves
    Fs' out, where bxb's own per-record value counts Fs)."""
    qtp = sum(c[k] for k in ("Nn'", "Ns", "Nv", "Sn'", "Ss", "Sv", "Vn'", "Vs", "Vv", "Fn'", "Fs'", "Fv'"))
    qfn = c["No'"] + c["So'"] + c["Vo'"] + c["Fo'"]
    qfp = c["On'"] + c["Os'"] + c["Ov'"]
    # VEB FPR as sumstats reads a bxb -l line (S merged into N there): (Nv + Ov) / (Nn + Fn + On + Nv + Ov).
    vfp = c["Nv"] + c["Sv"] + c["Ov'"]
    vtn = (c["Nn'"] + c["Ns"] + c["Sn'"] + c["Ss"] + c["Fn'"] + c["Fs'"] + c["On'"] + c["Os'"])
    return {
        "Q Se": (qtp, qtp + qfn), "Q +P": (qtp, qtp + qfp),
        "V Se": (c["Vv"], c["Vn'"] + c["Vs"] + c["Vv"] + c["Vo'"]),
        "V +P": (c["Vv"], c["Nv"] + c["Sv"] + c["Vv"] + c["Ov'"]),
        "V FPR": (vfp, vtn + vfp),
        "S Se": (c["Ss"], c["Sn'"] + c["Ss"] + c["Sv"] + c["So'"]),
        "S +P": (c["Ss"], c["Ns"] + c["Ss"] + c["Vs"] + c["Os'"]),
    }


def summarize(comparisons: Iterable[Comparison], exclude: Iterable[str] = PACED_RECORDS) -> Summary:
    """Gross and average statistics of the records whose names are not in ``exclude`` (EC57: paced records are
    scored but not aggregated)."""
    excluded_names = set(exclude)
    used, skipped = [], []
    for comp in comparisons:
        (skipped if Path(comp.record).name in excluded_names else used).append(comp)
    line = {k: 0 for k in LINE_COLUMNS}
    sums: dict[str, list[float]] = {k: [] for k in STATS}
    for comp in used:
        c = comp.line()
        for k in LINE_COLUMNS:
            line[k] += c[k]
        for k, (num, den) in _sumstats_record(c).items():
            if den > 0:
                sums[k].append(100.0 * num / den)
        rr = comp.stats()["RR err"]
        if rr is not None:
            sums["RR err"].append(rr)
    gross = {k: _pct(num, den) for k, (num, den) in _sumstats_record(line).items()}
    gross["RR err"] = None  # sumstats gives only the average RR error
    average = {k: (float(np.mean(v)) if v else None) for k, v in sums.items()}
    t = _sumstats_record(line)
    return Summary(gross, average, line, [c.record for c in used], [c.record for c in skipped],
                   total_qrs=t["Q Se"][1], total_veb=t["V Se"][1], total_sveb=t["S Se"][1])

"""The bxb comparison, rule for rule: matching, learning period, VF and shutdown, statistics, sumstats."""
from __future__ import annotations

import numpy as np
import pytest

from ecglib.data.facts import PACED_RECORDS
from ecglib.ec57.bxb import BXB_LABELS, Comparison, compare, summarize, wfdb_time
from ecglib.ec57.score import format_table, write_csv
from ecglib.errors import InputError

FS = 100


CODES = {"N": "N", "S": "A", "V": "V", "F": "F", "Q": "Q"}


def beats(*pairs):
    """(sample, symbol) pairs -> (samples, symbols)."""
    return np.array([p[0] for p in pairs], dtype=np.int64), [p[1] for p in pairs]


def _comparison(record: str, **cells: int) -> Comparison:
    m = np.zeros((7, 7), dtype=np.int64)
    for key, v in cells.items():
        m[BXB_LABELS.index(key[0]), BXB_LABELS.index(key[1].upper())] = v
    return Comparison(record, m, 360.0, paced=record in PACED_RECORDS)


def test_every_class_confusion_lands_in_its_cell():
    # 25 beats, one per (reference class, test class), 1 s apart.
    ref, test = [], []
    for i, (r, t) in enumerate((r, t) for r in "NSVFQ" for t in "NSVFQ"):
        ref.append((100 + 100 * i, CODES[r]))
        test.append((100 + 100 * i + 3, CODES[t]))
    c = compare(*beats(*ref), *beats(*test), FS, learning_period=0)
    expected = np.zeros((7, 7), dtype=np.int64)
    expected[:5, :5] = 1
    np.testing.assert_array_equal(c.matrix, expected)
    assert c.count("V", "n") == 1 and c.count("S", "v") == 1
    t = c.tallies()
    assert (t["QTP"], t["QFN"], t["QFP"]) == (25, 0, 0)
    assert (t["VTP"], t["VFN"], t["VFP"]) == (1, 4, 2)  # V+P counts Nv, Sv (not Fv, Qv) as false positives
    assert (t["STP"], t["SFN"], t["SFP"]) == (1, 4, 3)  # S+P counts Ns, Vs, Fs (not Qs)
    assert t["VTN"] == 16  # rows N, S, F, Q x columns n, s, f, q


def test_bxb_symbol_mapping():
    # bxb's amap() with SVEB statistics: escapes (e, j, n) are S, R-on-T (r) and E are V, paced and f and ? are Q.
    symbols = ["L", "R", "B", "e", "j", "n", "a", "J", "S", "E", "r", "/", "f", "?"]
    classes = ["N", "N", "N", "S", "S", "S", "S", "S", "S", "V", "V", "Q", "Q", "Q"]
    samples = 100 + 100 * np.arange(len(symbols))
    c = compare(samples, symbols, samples, symbols, FS, learning_period=0)
    for cls in "NSVQ":
        assert c.count(cls, cls) == classes.count(cls)
    assert c.matrix.sum() == len(symbols)


def test_non_beat_annotations_are_skipped():
    ref = beats((100, "N"), (150, "+"), (200, "N"), (210, "~"), (300, "N"), (320, "|"))
    test = beats((101, "N"), (201, "N"), (301, "N"), (400, '"'))
    c = compare(*ref, *test, FS, learning_period=0)
    assert c.count("N", "n") == 3 and c.matrix.sum() == 3


def test_match_window_is_inclusive_at_0_15_s():
    # 15 samples after the reference beat is inside (bxb: T - t <= match_dt), 16 is outside.
    ref = beats((1000, "N"), (2000, "N"), (3000, "V"), (4000, "V"))
    test = beats((1015, "N"), (2016, "N"), (2985, "V"), (3984, "V"))
    c = compare(*ref, *test, FS, learning_period=0)
    assert c.count("N", "n") == 1 and c.count("V", "v") == 1
    assert c.count("N", "o") == 1 and c.count("O", "n") == 1  # the pair 16 samples apart: a miss and an extra
    assert c.count("V", "o") == 1 and c.count("O", "v") == 1
    s = c.stats()
    assert s["Q Se"] == pytest.approx(50.0) and s["Q +P"] == pytest.approx(50.0)
    # At 360 Hz the window is 54 samples.
    c = compare([1000, 2000], ["N", "N"], [1054, 2055], ["N", "N"], 360, learning_period=0, sig_len=5000)
    assert c.count("N", "n") == 1 and c.count("N", "o") == 1 and c.count("O", "n") == 1


def test_nearest_of_two_candidates_is_paired():
    # Two test beats within the window of one reference beat: the closer one is paired, the other is extra.
    c = compare([1000], ["V"], [990, 1002], ["N", "V"], FS, learning_period=0)
    assert c.count("V", "v") == 1 and c.count("O", "n") == 1 and c.matrix.sum() == 2


def test_learning_period_beats_are_not_scored():
    # Beats every second from 0 to 20 s; the comparison starts at 5 s (sample 500).
    times = np.arange(0, 2001, 100)
    ref_sym = ["N"] * len(times)
    test_sym = ["V" if t < 500 else "N" for t in times]  # wrong labels in the learning period do not count
    extra = [250, 330]  # extra test beats in the learning period do not count either
    test_times = np.sort(np.concatenate([times, extra]))
    test_sym = ["V" if t < 500 else "N" for t in test_times]
    c = compare(times, ref_sym, test_times, test_sym, FS, learning_period=5)
    assert c.count("N", "n") == 16  # 500, 600, ..., 2000
    assert c.matrix.sum() == 16
    assert c.learning_period == 5


def test_learning_period_edge_rules():
    # bxb: a test beat just before the start that matches the first reference beat after it is counted ...
    c = compare([500, 600], ["N", "N"], [495, 600], ["V", "N"], FS, learning_period=5)
    assert c.count("N", "v") == 1 and c.count("N", "n") == 1 and c.matrix.sum() == 2
    # ... a test beat within one window after the start that matches nothing is skipped uncounted ...
    c = compare([600, 700], ["N", "N"], [505, 600, 700], ["N", "N", "N"], FS, learning_period=5)
    assert c.count("N", "n") == 2 and c.count("O", "n") == 0
    # ... but one later than a window after the start is an extra beat.
    c = compare([600, 700], ["N", "N"], [530, 600, 700], ["N", "N", "N"], FS, learning_period=5)
    assert c.count("N", "n") == 2 and c.count("O", "n") == 1
    # A reference beat in the learning period is never missed.
    c = compare([300, 600], ["V", "N"], [600], ["N"], FS, learning_period=5)
    assert c.count("V", "o") == 0 and c.count("N", "n") == 1


def test_end_of_comparison_follows_the_record_length():
    ref = beats((100, "N"), (200, "N"), (300, "N"))
    test = beats((100, "N"), (200, "N"), (300, "N"), (500, "N"))
    # Record length known: test beats up to its end count, so the beat at 500 is an extra one.
    c = compare(*ref, *test, FS, learning_period=0, sig_len=1000)
    assert c.count("N", "n") == 3 and c.count("O", "n") == 1
    # Unknown length: bxb stops at the end of the reference annotations.
    c = compare(*ref, *test, FS, learning_period=0, sig_len=None)
    assert c.count("N", "n") == 3 and c.count("O", "n") == 0
    # Missed reference beats at the end are counted either way.
    c = compare([100, 200, 300, 900], ["N"] * 4, [100, 200], ["N", "N"], FS, learning_period=0, sig_len=1000)
    assert c.count("N", "o") == 2


def test_record_shorter_than_the_learning_period_is_refused():
    with pytest.raises(InputError, match="shorter than the learning period"):
        compare([100], ["N"], [100], ["N"], FS, sig_len=2500)  # 25 s against the default 300 s


@pytest.mark.parametrize("window", [{"learning_period": float("nan")}, {"learning_period": -1.0},
                                    {"match_window": float("inf")}, {"match_window": -0.1}])
def test_windows_that_are_not_seconds_are_refused(window):
    with pytest.raises(InputError, match="213: (learning period|match window) .* not a number of seconds"):
        compare([100], ["N"], [100], ["N"], FS, record="213", **window)


def test_ventricular_flutter_episode_is_skipped():
    # Reference beats between [ and ] are ignored, and test beats there are not counted ('*' in bxb).
    ref = beats((100, "N"), (200, "["), (250, "!"), (300, "!"), (400, "]"), (500, "N"))
    test = beats((100, "N"), (260, "V"), (310, "V"), (500, "N"))
    c = compare(*ref, *test, FS, learning_period=0)
    assert c.count("N", "n") == 2 and c.matrix.sum() == 2


def test_shutdown_marks_missed_beats_as_x():
    # The test annotator marks shutdown (~ with subtype bits 4 and 5 set) from 150 to 450: reference beats missed
    # there are Nx, not No.
    ref = beats((100, "N"), (200, "N"), (300, "N"), (400, "N"), (500, "N"))
    test_samples = np.array([100, 150, 450, 500])
    test_symbols = ["N", "~", "~", "N"]
    test_sub = np.array([0, 0x30, 0, 0])
    c = compare(*ref, test_samples, test_symbols, FS, learning_period=0, test_subtypes=test_sub)
    assert c.count("N", "n") == 2 and c.count("N", "x") == 3 and c.count("N", "o") == 0


def test_stats_by_hand():
    # Nn 10, Nv 2, Vv 5, Vn 1, Vo 1 (a missed V), On 1 (an extra N).
    ref, test, t = [], [], 100
    for r, s, n in (("N", "N", 10), ("N", "V", 2), ("V", "V", 5), ("V", "N", 1)):
        for _ in range(n):
            ref.append((t, r))
            test.append((t, s))
            t += 100
    ref.append((t, "V"))
    test.append((t + 500, "N"))
    c = compare(*beats(*ref), *beats(*test), FS, learning_period=0, sig_len=t + 1000)
    s = c.stats()
    assert s["Q Se"] == pytest.approx(100 * 18 / 19) and s["Q +P"] == pytest.approx(100 * 18 / 19)
    assert s["V Se"] == pytest.approx(100 * 5 / 7) and s["V +P"] == pytest.approx(100 * 5 / 7)
    assert s["V FPR"] == pytest.approx(100 * 2 / 13)  # VFP / (VTN + VFP) with VTN = Nn + On = 11
    assert s["S Se"] is None and s["S +P"] is None


def test_rms_rr_interval_error():
    # RR intervals of matched pairs where both files have one: (100 vs 100), (100 vs 103), (100 vs 97) samples.
    c = compare([100, 200, 300, 400], ["N"] * 4, [100, 200, 303, 400], ["N"] * 4, FS, learning_period=0)
    assert c.rr_count == 3 and c.rr_sq_sum == 18
    assert c.stats()["RR err"] == pytest.approx(np.sqrt(6) * 1000 / FS)


def test_gross_and_average_match_wfdb_sumstats():
    # The four bxb -l lines of the WFDB package's own sumstats check (checkpkg/input/sumstats) and the Gross and
    # Average lines it expects (checkpkg/expected/sumstats.out). In -l reports S is merged into N.
    lines = {"200": (1415, 27, 1, 14, 29, 667, 0, 27, 22, 6, 1), "201": (1271, 0, 1, 0, 0, 198, 1, 0, 50, 0, 0),
             "202": (1846, 1, 1, 0, 5, 14, 0, 0, 4, 0, 0), "203": (2035, 8, 1, 19, 59, 359, 4, 13, 9, 6, 0)}
    comps = [_comparison(r, Nn=nn, Vn=vn, Fn=fn, On=on, Nv=nv, Vv=vv, Fv=fv, Ov=ov, No=no, Vo=vo, Fo=fo)
             for r, (nn, vn, fn, on, nv, vv, fv, ov, no, vo, fo) in lines.items()]
    s = summarize(comps)
    got_gross = [round(s.gross[k], 2 if k != "V FPR" else 3) for k in ("Q Se", "Q +P", "V Se", "V +P", "V FPR")]
    got_avg = [round(s.average[k], 2 if k != "V FPR" else 3) for k in ("Q Se", "Q +P", "V Se", "V +P", "V FPR")]
    assert got_gross == [98.78, 99.09, 96.27, 90.30, 1.974]
    assert got_avg == [98.64, 99.21, 96.22, 87.31, 1.856]
    assert s.total_qrs == 8041 and s.total_veb == 1286


def test_paced_records_are_scored_but_not_aggregated():
    a = _comparison("100", Nn=90, No=10)
    paced = _comparison("102", Qq=50, Qo=50)
    b = _comparison("dir/105", Nn=40, Sn=5, Ss=5, On=10)
    s = summarize([a, paced, b])
    assert s.excluded == ["102"] and s.records == ["100", "dir/105"]
    assert s.gross["Q Se"] == pytest.approx(100 * 140 / 150)
    assert s.average["Q Se"] == pytest.approx((90.0 + 100.0) / 2)
    assert s.gross["Q +P"] == pytest.approx(100 * 140 / 150)
    assert s.average["Q +P"] == pytest.approx((100.0 + 100 * 50 / 60) / 2)
    assert s.gross["S Se"] == pytest.approx(50.0) and s.average["S Se"] == pytest.approx(50.0)  # 100 has no S
    assert paced.paced and paced.stats()["Q Se"] == pytest.approx(50.0)  # still scored on its own
    table = format_table([a, paced, b], s)
    assert "102*" in table and "paced records scored but not aggregated (*): 102" in table
    assert table.splitlines()[0].split()[:3] == ["Record", "Nn'", "Sn'"]


def test_csv_rows_and_atomic_write(tmp_path):
    a, b = _comparison("100", Nn=90, Nv=2, Vv=8), _comparison("104", Qq=10)
    path = tmp_path / "out" / "ec57.csv"
    write_csv(path, [a, b])
    import csv

    rows = list(csv.DictReader(path.open()))
    assert [r["record"] for r in rows] == ["100", "104", "gross", "average"]
    assert rows[0]["Nv"] == "2" and rows[0]["Vv"] == "8" and rows[0]["aggregated"] == "True"
    assert rows[1]["paced"] == "True" and rows[1]["aggregated"] == "False"
    assert float(rows[2]["V +P"]) == pytest.approx(80.0)
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # no temporary file left behind


def test_location_matching_agrees_with_wfdb_compare_annotations():
    """On beat trains with jitter, misses and extras (RR >= 0.4 s, so no two candidates compete), bxb's matches
    are the ones wfdb.processing.compare_annotations finds (its window is exclusive, bxb's inclusive)."""
    from wfdb.processing import compare_annotations

    fs = 360
    window = wfdb_time(0.15, fs)
    rng = np.random.default_rng(11)
    for trial in range(20):
        ref = np.cumsum(rng.integers(int(0.4 * fs), int(1.6 * fs), 300)) + fs
        keep = rng.random(len(ref)) > 0.05  # 5 % misses
        jitter = rng.integers(-window - 8, window + 8, len(ref))  # some beyond the window
        test = ref[keep] + jitter[keep]
        extras = ref[rng.random(len(ref)) < 0.05] + int(0.2 * fs)  # 5 % extra detections mid-RR
        test = np.unique(np.concatenate([test, extras]))
        c = compare(ref, ["N"] * len(ref), test, ["N"] * len(test), fs, learning_period=0,
                         sig_len=int(test.max()) + fs)
        wf = compare_annotations(ref, test, window + 1)
        t = c.tallies()
        assert (t["QTP"], t["QFN"], t["QFP"]) == (wf.tp, wf.fn, wf.fp), trial


def test_bad_annotations_are_refused():
    with pytest.raises(InputError, match="out of time order"):
        compare([100, 50], ["N", "N"], [100], ["N"], FS, learning_period=0)
    with pytest.raises(InputError, match="sample numbers for"):
        compare([100, 200], ["N"], [100], ["N"], FS, learning_period=0)
    with pytest.raises(InputError, match="negative"):
        compare([-5], ["N"], [100], ["N"], FS, learning_period=0)


def test_empty_files_count_every_beat_of_the_other():
    c = compare([100, 200, 300], ["N", "V", "N"], [], [], FS, learning_period=0, sig_len=1000)
    assert c.count("N", "o") == 2 and c.count("V", "o") == 1 and c.matrix.sum() == 3
    assert c.stats()["Q Se"] == 0.0 and c.stats()["Q +P"] is None
    c = compare([], [], [100, 400], ["N", "V"], FS, learning_period=0, sig_len=1000)
    assert c.count("O", "n") == 1 and c.count("O", "v") == 1 and c.stats()["Q +P"] == 0.0
    with pytest.raises(InputError, match="subtypes"):
        compare([100], ["N"], [100], ["N"], FS, learning_period=0, test_subtypes=[0, 0])


def test_line_columns_follow_bxb_L_format():
    rng = np.random.default_rng(3)
    m = rng.integers(0, 50, (7, 7))
    m[5:, 5:] = 0
    c = Comparison("r", m, 360.0)
    g = {f"{r}{t}": int(m[i, j]) for i, r in enumerate("NSVFQOX") for j, t in enumerate("nsvfqox")}
    expected = {  # bxb.c, print_results, fflag 5
        "Nn'": g["Nn"] + g["Nf"] + g["Nq"], "Sn'": g["Sn"] + g["Sf"] + g["Sq"], "Vn'": g["Vn"] + g["Vf"] + g["Vq"],
        "Fn'": g["Fn"] + g["Ff"] + g["Fq"] + g["Qn"] + g["Qf"] + g["Qq"],
        "On'": g["On"] + g["Of"] + g["Oq"] + g["Xn"] + g["Xf"] + g["Xq"],
        "Ns": g["Ns"], "Ss": g["Ss"], "Vs": g["Vs"], "Fs'": g["Fs"] + g["Qs"], "Os'": g["Os"] + g["Xs"],
        "Nv": g["Nv"], "Sv": g["Sv"], "Vv": g["Vv"], "Fv'": g["Fv"] + g["Qv"], "Ov'": g["Ov"] + g["Xv"],
        "No'": g["No"] + g["Nx"], "So'": g["So"] + g["Sx"], "Vo'": g["Vo"] + g["Vx"],
        "Fo'": g["Fo"] + g["Fx"] + g["Qo"] + g["Qx"],
    }
    assert c.line() == expected
    assert sum(expected.values()) == m.sum()

"""ECG strips: labels above and below the trace, disagreements circled, and a record without reference labels."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ecglib.report.strips import plot_strip

FS = 100.0
SIGNAL = np.sin(np.arange(1000) / 7.0)
TEST_SAMPLE = np.array([100, 300, 500, 700])
TEST_CLASS = np.array(["N", "V", "N", "S"])


def _drawn(ax) -> tuple[list[str], int]:
    """(the letters and words written on the strip, the circles drawn)."""
    circles = [line for line in ax.get_lines() if line.get_marker() == "o"]
    return [t.get_text() for t in ax.texts], len(circles)


def test_a_strip_circles_the_predictions_that_disagree_with_the_reference():
    ax = Figure().subplots()
    ref_sample = np.array([102, 298, 505, 900])  # the last prediction (700) has no reference beat near it
    plot_strip(SIGNAL, FS, ref_sample, np.array(["N", "N", "N", "N"]), TEST_SAMPLE, TEST_CLASS, 0.0, 10.0, ax=ax)
    texts, circles = _drawn(ax)
    assert "reference" in texts and "predicted" in texts
    assert texts.count("N") == 4 + 2 and texts.count("V") == 1 and texts.count("S") == 1
    assert circles == 2  # V where the reference says N, S where the reference has no beat


def test_a_strip_without_reference_shows_the_predictions_alone():
    ax = Figure().subplots()
    plot_strip(SIGNAL, FS, None, None, TEST_SAMPLE, TEST_CLASS, 2.0, 6.0, ax=ax)
    texts, circles = _drawn(ax)
    assert "reference" not in texts and circles == 0
    assert sorted(t for t in texts if len(t) == 1) == ["N", "S", "V"]  # the beats from 2 s to 8 s
    assert ax.get_xlim() == (2.0, 8.0)

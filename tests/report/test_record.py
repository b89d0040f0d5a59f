"""The record report: pages written from synthetic and real records labelled from their reference annotations (no
trained model needed), their content, the index's links, a 24-hour-sized record, and every image loaded by a real
browser (headless Chromium, skipped where none is installed)."""
from __future__ import annotations

import base64
import importlib.util
import io
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from ecglib.data.facts import CLASS_NAMES, CLASSES
from ecglib.ec57.annotate import AnnotatedRecord
from ecglib.report.events import DEFINITIONS, format_clock
from ecglib.report.record import MAX_EVENT_ROWS, write_record_report, write_report_index
from ecglib.report.record_figures import COLOURS
from ecglib.report.strips import CLASS_COLOURS

ROOT = Path(__file__).resolve().parents[2]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def _bench_module():
    """benchmarks/bench_report.py, whose records the tests share: a record labelled from its reference annotations
    and a 24-hour-sized one."""
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks" / "bench_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = _bench_module()
labelled_from_reference = BENCH.labelled_from_reference
day_record = BENCH.day_record


class Page(HTMLParser):
    """What a page holds: its images' sources, links, element ids, scripts and text."""

    def __init__(self, text: str):
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.ids: list[str] = []
        self.scripts = 0
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if "id" in a:
            self.ids.append(a["id"])
        self.scripts += tag == "script"

    def handle_data(self, data):
        self.text.append(data)

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


def png_size(src: str) -> tuple[int, int]:
    from PIL import Image

    assert src.startswith("data:image/png;base64,"), src[:40]
    image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    image.verify()
    return image.size


@pytest.fixture(scope="module")
def record_208(synthetic_records):
    return labelled_from_reference(synthetic_records / "208", learning_period=5.0)


# ------------------------------------------------------------------------------------------------- the page
def test_a_report_has_every_section_and_only_embedded_images(record_208, tmp_path):
    result, signal, ref, comparison = record_208
    prob = np.full((len(result.label), len(CLASSES)), 0.1)
    prob[np.arange(len(result.label)), result.label] = 0.6
    prob[:3] = 0.2  # three beats the model could not decide
    path = write_record_report(result, signal, tmp_path / "out", comparison=comparison,
                               noise=np.array([[10.0, 11.0], [10.5, 12.0]]), prob=prob, reference=ref)
    assert path == tmp_path / "out" / "208.html"
    text = path.read_text()
    page = Page(text)
    assert {"summary", "hr", "ectopy", "rr", "events", "strips", "ec57", "defs"} <= set(page.ids)
    # heart rate, S/V per hour, RR plots, class strips, event strips
    assert len(page.images) == 5
    for src in page.images:
        width, height = png_size(src)
        assert width > 300 and height > 100
    # offline: nothing fetched, no script, no link out of the page
    assert page.scripts == 0 and "http://" not in text and "https://" not in text
    assert all(link.startswith("#") for link in page.links)
    words = page.words
    counts = {c: int(np.sum(result.label == i)) for i, c in enumerate(CLASSES)}
    assert f"beats {len(result.label):,}" in words
    for c, n in counts.items():
        assert f"{c} {CLASS_NAMES[c]} {n:,} {100 * n / len(result.label):.2f} %" in words
    assert "time marked as noise 00:00:02 (8.0 %, 1 interval)" in words and "grey: noise" in words
    assert "uncertain" in words
    assert counts["V"] > 0 and f"V: ventricular ectopic ({counts['V']:,} beats) from 00:00:" in words
    # EC57: labels that are the reference's own score 100 % on V
    assert comparison.stats()["V Se"] == 100.0 and "100.00" in words
    assert "bxb&#x27;s text report" in text or "bxb's text report" in words
    for definition in DEFINITIONS.values():
        assert " ".join(definition.split()) in words


def test_a_report_without_reference_or_probabilities(record_208, tmp_path):
    result, signal, _, _ = record_208
    path = write_record_report(result, signal, tmp_path)
    page = Page(path.read_text())
    assert "ec57" not in page.ids and "<th>uncertain</th>" not in path.read_text()
    assert len(page.images) >= 4
    with pytest.raises(ValueError, match="one lead"):
        write_record_report(result, np.stack([signal, signal]), tmp_path)


def test_the_page_says_what_the_other_lead_gave(record_208, tmp_path):
    """Beats from the other lead, where the lead read is unreadable and where it missed them, counted as the
    summary line counts them; nothing said when there are none."""
    import dataclasses

    result, signal, _, _ = record_208
    backup = np.zeros(len(result.sample), dtype=bool)
    backup[:7] = True
    helped = dataclasses.replace(result, lead="V1", backup=backup, backup_lead="MLII", completed=30,
                                 completed_lead="MLII")
    words = Page(write_record_report(helped, signal, tmp_path / "helped").read_text()).words
    assert "(7 of them found on MLII where V1 is unreadable, with no class; 30 missed on V1 and found on MLII)" \
        in words
    assert "missed on" not in Page(write_record_report(result, signal, tmp_path / "plain").read_text()).words


def test_event_times_in_the_page_are_the_record_clock(record_208, tmp_path):
    result, signal, _, _ = record_208
    # force a pause: drop five beats in the middle
    keep = np.ones(len(result.sample), dtype=bool)
    keep[20:25] = False
    gap = AnnotatedRecord(result.record, result.sample[keep], result.label[keep], result.symbol[keep], result.fs,
                          result.seconds, 0.0, "reference", None)
    before, after = result.sample[19] / result.fs, result.sample[25] / result.fs
    words = Page(write_record_report(gap, signal, tmp_path).read_text()).words
    assert f"{format_clock(before)} {format_clock(after)} pause of {after - before:.1f} s" in words


# ------------------------------------------------------------------------------------------------- the index
def test_the_index_links_every_record_and_survives_a_move(synthetic_records, tmp_path):
    out = tmp_path / "reports"
    entries = []
    for name in ("100", "208", "213"):
        result, signal, ref, comparison = labelled_from_reference(synthetic_records / name, learning_period=5.0)
        entries.append((result, write_record_report(result, signal, out / "records", comparison, reference=ref)))
    index = write_report_index(entries, out)
    assert index == out / "index.html"
    links = Page(index.read_text()).links
    assert links == ["records/100.html", "records/208.html", "records/213.html"]
    moved = shutil.move(str(out), str(tmp_path / "elsewhere"))
    for link in links:
        assert (Path(moved) / link).is_file()
    words = Page((Path(moved) / "index.html").read_text()).words
    for result, _ in entries:
        assert f"{Path(result.record).name} {format_clock(result.seconds)} {len(result.sample):,}" in words


# ---------------------------------------------------------------------------------------------- 24 hours
@pytest.mark.slow
def test_a_24_hour_record_renders_with_the_events_table_capped(tmp_path):
    """A day of beats makes a page of bounded size: the events table capped, the RR plot binned. Its time is
    measured by benchmarks/bench_report.py (docs/record-report.md), not asserted here."""
    result, signal = day_record(24.0)
    assert len(result.sample) > 95_000
    path = write_record_report(result, signal, tmp_path, noise=[(3600.0, 3700.0)])
    text = path.read_text()
    rows = re.findall(r"<tr><td class=l>\d\d:\d\d:\d\d</td>", text)
    assert len(rows) == MAX_EVENT_ROWS
    assert f"The first {MAX_EVENT_ROWS} of" in text and "per minute" in text and "2-D histogram" in text
    assert path.stat().st_size < 2_000_000


def test_the_benchmark_script_runs(tmp_path, capsys):
    BENCH.main(["--hours", "0.2", "--repeat", "1", "--out", str(tmp_path)])
    assert "beats (0.2 h): report in" in capsys.readouterr().out
    assert (tmp_path / "day0.2h.html").is_file()


# -------------------------------------------------------------------------------------------- in a browser
def browser() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


# Run after the page has loaded: marks each image loaded or not, and the body with how many it checked.
MARK_IMAGES = ("<script>window.addEventListener('load',function(){var im=document.images;"
               "for(var i=0;i<im.length;i++){im[i].setAttribute('data-loaded',"
               "im[i].complete&&im[i].naturalWidth>0?'yes':'no');}"
               "document.body.setAttribute('data-images-checked',String(im.length));});</script>")


def images_in_browser(page: Path, exe: str, profile: Path) -> tuple[int, int, int]:
    """(images checked, loaded, not loaded) of PAGE opened by headless Chromium from a copy beside it that marks
    its images once loaded (the DOM dumped after the load event)."""
    probe = page.with_name(f"probe-{page.name}")
    probe.write_text(page.read_text().replace("</body>", MARK_IMAGES + "</body>"))
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
           "--virtual-time-budget=10000", "--dump-dom", probe.resolve().as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=180).stdout
    probe.unlink()
    checked = re.findall(r'data-images-checked="(\d+)"', dom)
    assert checked, f"the browser did not run the page's load handler: {dom[:300]!r}"
    return int(checked[0]), dom.count('data-loaded="yes"'), dom.count('data-loaded="no"')


@pytest.mark.slow
def test_every_image_loads_in_a_real_browser(synthetic_records, tmp_path):
    exe = browser()
    if exe is None:
        pytest.skip(f"no headless browser installed (looked for {', '.join(BROWSERS)})")
    result, signal, ref, comparison = labelled_from_reference(synthetic_records / "208", learning_period=5.0)
    out = tmp_path / "out"
    path = write_record_report(result, signal, out, comparison, noise=[(3.0, 4.0)], reference=ref)
    index = write_report_index([(result, path)], out)
    n = len(Page(path.read_text()).images)
    assert n >= 5
    assert images_in_browser(path, exe, tmp_path / "profile") == (n, n, 0)
    assert images_in_browser(index, exe, tmp_path / "profile") == (0, 0, 0)
    # the check sees a broken image: the same page with one image pointing nowhere
    broken = out / "broken.html"
    broken.write_text(path.read_text().replace("</body>", '<img src="missing.png" alt="missing"></body>'))
    assert images_in_browser(broken, exe, tmp_path / "profile") == (n + 1, n, 1)


# ---------------------------------------------------------------------------------------------- consistency
def test_the_figures_colour_classes_as_the_strips_do():
    assert COLOURS == {c: CLASS_COLOURS[c] for c in CLASSES}


def test_the_record_report_sits_between_annotation_and_the_command_line():
    """ecglib annotate --report calls it: it must not push the command line past the package's ten layers."""
    from test_structure import MAX_LAYERS, layers

    depth = layers()
    # the report reads annotate's records and the command line calls both, so the command line stays the top layer
    assert depth["ec57.annotate"] < depth["report.record"] < depth["cli.commands"] < MAX_LAYERS
    code = "import sys, ecglib.report.events, ecglib.report.record_figures; print(sorted(sys.modules))"
    assert "torch" not in subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                         check=True).stdout


# ------------------------------------------------------------------------------------------------ real data
@pytest.mark.realdata
def test_a_real_record_labelled_from_its_reference(MITDB, tmp_path):
    result, signal, ref, comparison = labelled_from_reference(MITDB / "213", learning_period=300.0)
    words = Page(write_record_report(result, signal, tmp_path, comparison, reference=ref).read_text()).words
    assert "duration 00:30:05" in words and f"beats {len(result.sample):,}" in words
    stats = comparison.stats()
    assert stats["V Se"] == 100.0 and stats["V +P"] == 100.0 and stats["Q Se"] == 100.0
    assert "VT runs (3+ V) / of which triplets" in words

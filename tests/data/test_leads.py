"""The lead rule: MLII, another name of lead II, the first ECG lead; --lead by name or position."""
from __future__ import annotations

import pytest

from ecglib.data.facts import MLII_NAMES
from ecglib.data.leads import choose_lead, may_be_ecg, normalise


@pytest.mark.parametrize("names, index, why", [
    (["MLII", "V1"], 0, "MLII by name"),
    (["V5", "MLII"], 1, "MLII by name"),                       # MIT-BIH 114: MLII second
    (["V1", "ml ii"], 1, "MLII by name"),                      # case and spaces do not matter
    (["ECG I", "ECG II", "ECG III"], 1, "another name of lead II, no MLII"),   # the EDF+ standard's labels
    (["I", "II", "III", "aVR"], 1, "another name of lead II, no MLII"),
    (["V5", "V2"], 0, "the first ECG lead, no lead II"),       # MIT-BIH 102: no MLII
    (["Resp", "EEG Fpz-Cz", "ECG"], 2, "the first ECG lead, no lead II"),  # other kinds of signal are skipped
    (["time", "lead_a", "lead_b"], 1, "the first ECG lead, no lead II"),   # a CSV's time column too
    (["ECG2", "ECG1"], 0, "the first ECG lead, no lead II"),   # ECG2 is a second channel, not lead II
    (["0"], 0, "the only signal"),
])
def test_the_lead_rule(names, index, why):
    assert choose_lead(names) == (index, why)


@pytest.mark.parametrize("lead, index", [("V1", 1), ("v 1", 1), ("1", 1), (0, 0), ("0", 0)])
def test_lead_by_name_or_position(lead, index):
    assert choose_lead(["MLII", "V1"], lead) == (index, "--lead")


def test_a_lead_named_by_digits_is_found_by_name_first():
    assert choose_lead(["1", "0"], "0") == (1, "--lead")


@pytest.mark.parametrize("names, lead, message", [
    (["MLII", "V1"], "V5", "no lead V5 (signals: 0 MLII, 1 V1)"),
    (["MLII", "V1"], "7", "no lead 7: no signal at position 7 (signals: 0 MLII, 1 V1)"),
    (["EEG Fpz-Cz", "EOG horizontal", "Resp oro-nasal"], None, "no ECG lead"),
    ([], None, "no signals"),
])
def test_refusals_name_the_signals(names, lead, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        choose_lead(names, lead)


def test_names_of_lead_ii_are_normalised_and_not_ambiguous():
    assert {normalise(n) for n in MLII_NAMES} == {"MLII", "II", "ECGII", "EKGII", "LEADII", "ECGLEADII"}
    assert normalise("ML_II") == normalise("ml-ii") == "MLII"
    assert may_be_ecg("ECG II") and may_be_ecg("V5") and not may_be_ecg("EEG Fpz-Cz") and not may_be_ecg("SpO2")

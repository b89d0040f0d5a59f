"""The lead rule: which signal of a recording is the ECG lead that ecglib reads, and why, one rule for every format
(WFDB, EDF, CSV, npy) and for training (:func:`ecglib.data.records.read_lead`) and labelling alike.

1. the lead the user names (``--lead NAME_OR_INDEX``: a signal's name, compared case- and space-insensitively, or
   its 0-based position among the recording's signals);
2. else the signal named MLII (MIT-BIH's modified lead II, the lead every model of ecglib is trained on);
3. else another name of lead II (:data:`ecglib.data.facts.MLII_NAMES`: II, ECG II, Lead II, ...);
4. else the first signal that may be an ECG lead: every signal but those whose name says they are something else
   (:data:`NOT_ECG`: an EEG, a respiration, a blood pressure, a time column, ...).

A recording none of whose signals may be an ECG lead is refused (the message lists them, so that ``--lead`` can
name one). Why a deny-list rather than a list of ECG names: ECG channels go by many names ("ECG1", "CM5",
"lead_a", a CSV's "ecg"), and a recording of one unnamed signal is an ECG when a user gives it to ecglib; the
EDF+ standard names signal types by the first word of a label ("EEG Fpz-Cz", "Resp oro-nasal"), so a signal that
declares another type is not taken for an ECG.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from .facts import MLII_NAMES

# First words of a signal name that say it is not an ECG lead: the EDF+ standard's signal types other than ECG
# (EEG, EOG, EMG, ERG, MEG, MCG, EP, Temp, Resp, SaO2, Light, Sound, Event) and common names of other channels in
# WFDB, EDF and CSV files (pressures, oximetry, respiration, time columns).
NOT_ECG: frozenset[str] = frozenset({
    "EEG", "EOG", "EMG", "ERG", "MEG", "MCG", "EP", "TEMP", "RESP", "SAO2", "LIGHT", "SOUND", "EVENT",
    "SPO2", "PLETH", "PPG", "ABP", "ART", "BP", "NBP", "PAP", "CVP", "ICP", "CO2", "ETCO2", "FLOW", "PRESS",
    "PRESSURE", "RESPIRATION", "THOR", "ABDO", "SNORE", "POSITION", "PULSE", "HR",
    "TIME", "T", "TIMESTAMP", "SECONDS", "SEC", "S", "MS", "SAMPLE", "SAMPLES", "INDEX",
})


def normalise(name: str) -> str:
    """A lead name compared case- and space-insensitively: 'ML II', 'ml_ii' and 'MLII' are the same."""
    return re.sub(r"[\s_\-]+", "", str(name)).upper()


_MLII = normalise("MLII")
_LEAD_II = frozenset(normalise(n) for n in MLII_NAMES) - {_MLII}


def is_lead_ii(name: str) -> bool:
    """Whether a signal of this name is lead II: MLII or another name of it (:data:`ecglib.data.facts.MLII_NAMES`)."""
    n = normalise(name)
    return n == _MLII or n in _LEAD_II


def may_be_ecg(name: str) -> bool:
    """Whether a signal of this name may be an ECG lead: its first word is none of :data:`NOT_ECG`."""
    words = re.split(r"[\s_\-.:()/]+", str(name).strip())
    return not (words and words[0].upper() in NOT_ECG)


def listing(names: Sequence[str]) -> str:
    """'0 MLII, 1 V1': the signals as ``--lead`` can name them."""
    return ", ".join(f"{i} {n}" if n != str(i) else str(i) for i, n in enumerate(names)) or "no signals"


def choose_lead(names: Sequence[str], lead: str | int | None = None) -> tuple[int, str]:
    """The position of the lead the rule picks among signals ``names`` (in the recording's order) and why, as the
    summary line says it: "MLII by name", "another name of lead II, no MLII", "the first ECG lead, no lead II",
    "the only signal", "--lead". ``lead``: the user's choice, a name or a 0-based position (an int or its digits).
    Raises ValueError with the problem (the caller names the file)."""
    names = [str(n) for n in names]
    if not names:
        raise ValueError("no signals")
    if lead is not None and str(lead).strip() != "":
        given = str(lead).strip()
        for i, n in enumerate(names):  # an exact name first: a lead may be named "1"
            if n == given:
                return i, "--lead"
        matches = [i for i, n in enumerate(names) if normalise(n) == normalise(given)]
        if matches:
            return matches[0], "--lead"
        if re.fullmatch(r"\d+", given):
            i = int(given)
            if i < len(names):
                return i, "--lead"
            raise ValueError(f"no lead {given}: no signal at position {given} (signals: {listing(names)})")
        raise ValueError(f"no lead {given} (signals: {listing(names)})")
    normalised = [normalise(n) for n in names]
    if _MLII in normalised:
        return normalised.index(_MLII), "MLII by name"
    for i, n in enumerate(normalised):
        if n in _LEAD_II:
            return i, "another name of lead II, no MLII"
    ecg = [i for i, n in enumerate(names) if may_be_ecg(n)]
    if ecg:
        return ecg[0], "the only signal" if len(names) == 1 else "the first ECG lead, no lead II"
    raise ValueError(f"no ECG lead: every signal's name says it is something else (signals: {listing(names)}); "
                     "--lead NAME_OR_INDEX chooses one")

"""ecglib's pretrained models, shipped as package data: for each model NAME, ``NAME.pt`` (the weights: an ecglib
checkpoint of the model's settings and float32 weights, nothing else), ``NAME.json`` (its card's numbers: data,
recipe, seed, command, commit, machine, DS2 EC57 tables, license) and ``NAME.md`` (the card to read).

:mod:`ecglib.pretrained.catalog` lists and loads them; ``make pretrained MITDB_DIR=DIR`` (benchmarks/
train_pretrained.py) trains, scores and writes them again.
"""

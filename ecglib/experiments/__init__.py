"""Experiments over many runs: sweep specs (:mod:`.spec`) and sweeps on Ray (:mod:`.sweep`), statistics over seeds
(:mod:`.stats`), option selection on DS1 folds (:mod:`.selection`), the deploy-loose tolerance sweep
(:mod:`.tolerance`) and the papermill study (:mod:`.study`). Modules are imported by name:
``from ecglib.experiments import sweep``.
"""

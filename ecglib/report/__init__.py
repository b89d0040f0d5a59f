"""What a reader sees: tables of runs (:mod:`.tables`), conclusions computed from them (:mod:`.conclusions`),
figures (:mod:`.figures`), ECG strips with beat labels (:mod:`.strips`) and the published anchors
(:mod:`.anchors`). Modules are imported by name: ``from ecglib.report import figures, tables``.
"""

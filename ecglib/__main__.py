import sys

# Ctrl-C while the command's modules are still importing is answered like one during the work: one line, exit 130.
try:
    from .cli import main

    status = main()
except KeyboardInterrupt:
    print("ecglib: interrupted", file=sys.stderr, flush=True)
    status = 130
if status == 130:
    import os

    # Out at once: a second Ctrl-C during the interpreter's clean-up would print a traceback, and an interrupt
    # that passed through a C extension's import makes Python end by SIGINT instead of with this status.
    # Outputs are already whole or removed (the atomic writes unwound); only the streams need flushing.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe must not change the status
            pass
    os._exit(130)
sys.exit(status)

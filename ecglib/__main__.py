import sys

# Ctrl-C while the command's modules are still importing is answered like one during the work: one line, exit 130.
try:
    from .cli import main

    status = main()
except KeyboardInterrupt:
    print("ecglib: interrupted", file=sys.stderr, flush=True)
    status = 130
sys.exit(status)

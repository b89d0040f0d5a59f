import sys

# Ctrl-C while the command's modules are still importing is answered like one during the work: one line, exit 130.
try:
    from .cli import main

    status = main()
except KeyboardInterrupt:
    print("ecglib: interrupted", file=sys.stderr, flush=True)
    status = 130
if status == 130:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while the interpreter exits prints nothing more
sys.exit(status)

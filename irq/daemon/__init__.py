"""The auto-submit daemon: its cycle and loop, the detached process, and the demo that drives it."""

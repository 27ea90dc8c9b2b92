"""irq's bundled trainer: IRED energy diffusion on matrix inversion, with three negative-mining strategies.

Imports torch, numpy and the standard library only, never irq: the two meet through files in the run
directory (see trainer/rundir.py and docs/trainer.md).
"""

"""Where jobs run: the local machine or a SLURM cluster over SSH, behind one interface.

base.py: the Backend protocol (everything callers use) and the Remote protocol (a login node:
run a command, move files). local.py runs jobs here; slurm.py drives sbatch/squeue/sacct/
sacctmgr through a Remote (ssh/session.py in use; fakeshell.py in tests), and slurm_output.py
reads what they print. fake.py is an in-memory backend for tests, never named in irq.toml.
"""

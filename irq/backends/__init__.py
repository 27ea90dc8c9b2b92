"""Where jobs run: the local machine or a SLURM cluster over SSH, behind one interface."""

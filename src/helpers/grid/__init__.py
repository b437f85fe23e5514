"""Stage 2, many runs: a ``params/*.yaml`` grid in, one run folder per config out.

``spec`` reads and checks a grid file; ``runner`` executes its pending configs (local worker
processes, Slurm through submitit, CUDA MPS when runs share a GPU), each through
``execution`` (claim it, papermill ``notebooks/train.ipynb``, record the attempt).
Nothing here trains: a run is the train notebook's job (``helpers.run``).
"""

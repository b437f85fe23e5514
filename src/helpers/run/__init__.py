"""Stage 1, one experiment: a ``TrainConfig`` in, a complete run folder ``runs/<run_id>/`` out.

What ``notebooks/train.ipynb`` calls. The registries (``methods``, ``sources``, ``catalog``)
say what can be trained on what; ``config`` checks a run's parameters before anything loads;
``data``, ``batches`` and ``models`` prepare it; ``device`` tunes precision and threads;
``training`` runs the loop; ``store`` writes and validates the run folder.
"""

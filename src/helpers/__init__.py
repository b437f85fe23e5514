"""Helpers shared by the train and analysis notebooks: data, models, training, runs, grids."""

__version__ = "0.1.0"

"""The code both notebooks call, one subpackage per stage of the data flow::

    params/*.yaml -> helpers.grid -> notebooks/train.ipynb (helpers.run) -> runs/
                  -> notebooks/analysis.ipynb (helpers.report) -> report/

``helpers.memory`` accounts for training memory; ``helpers.testing`` holds stand-ins for tests.
"""

__version__ = "0.1.0"

"""Training memory of a model x method x precision x batch, offline, and its GPU benchmark.

Uses the training code's own model builder and training step (``helpers.run``), so what is
accounted for is what a run allocates; the report reads it (``helpers.report``). ``sizes``:
element sizes and parameter counts; ``activations``: saved-for-backward bytes, measured, and
the published formula; ``accounting``: the components and predicted peak of one step;
``peaks``: measured peaks of real steps; ``results``: the GPU benchmark file and a run's peak.
"""

from .accounting import account, cuda_workspace_bytes
from .activations import (
    clear_caches,
    formula_activation_bytes,
    make_batch,
    measure_activations,
    saved_tensor_bytes,
)
from .peaks import LiveTensorBytes, measure_peak, training_steps
from .results import (
    compare_run,
    find_result,
    load_results,
    read_results,
    results_status,
    status_of,
)
from .sizes import (
    CUBLAS_WORKSPACE_BYTES,
    ELEMENT_BYTES,
    GIB,
    KERNELS,
    OPTIMIZERS,
    PRECISIONS,
    MemoryAccountingError,
    build,
    check_inputs,
    encoder_parameter_count,
    labels,
    parameter_counts,
    train_config,
)

__all__ = [
    "CUBLAS_WORKSPACE_BYTES", "ELEMENT_BYTES", "GIB", "KERNELS", "OPTIMIZERS", "PRECISIONS",
    "LiveTensorBytes", "MemoryAccountingError", "account", "build", "check_inputs", "clear_caches",
    "compare_run", "cuda_workspace_bytes", "encoder_parameter_count", "find_result", "labels",
    "formula_activation_bytes", "load_results", "make_batch", "measure_activations",
    "measure_peak", "parameter_counts", "read_results", "results_status", "saved_tensor_bytes",
    "status_of", "train_config", "training_steps",
]

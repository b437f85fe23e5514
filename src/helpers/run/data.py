"""The four classification datasets of the report, loaded from their files into one schema.

Every dataset becomes a ``datasets.DatasetDict`` with splits ``train``/``validation``/``test``
and columns ``id``, ``text``, ``text_pair`` and ``label``. Aspect sentiment keeps the aspect
term (``text``) and the sentence (``text_pair``) apart so the tokenizer encodes them as a real
sentence pair; single-text datasets have ``text_pair = None``. ``label`` is a ``ClassLabel``
with the real class names, so the model head gets the true number of labels.

Where the files are: an explicit ``data_dir`` > ``$NLPDL_DATA_DIR`` > ``<project>/data``.
What each dataset is (files, format, classes, split recipe, public source): one entry in
:mod:`helpers.run.sources`.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import datasets
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from helpers.settings import DATA_DIR, DATA_DIR_ENV, project_path

from . import sources
from .errors import did_you_mean
from .sources import FEATURES, SOURCES, SPLIT_SEED, DataError

#: Few-shot variants keep this many training examples (stratified sample, seed 2022).
FEW_SHOT_SIZE = 32

SHIPPED_SPLITS = {"train": "train", "validation": "dev", "test": "test"}


def dataset_names() -> tuple[str, ...]:
    """Every valid dataset name: ``<base>_sup`` and ``<base>_fs`` per registered source."""
    return tuple(f"{base}_{kind}" for base in SOURCES for kind in ("sup", "fs"))


#: The built-in datasets' names (registered ones: :func:`dataset_names`).
DATASET_NAMES: tuple[str, ...] = dataset_names()


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Explicit argument > ``$NLPDL_DATA_DIR`` > ``<project>/data``; relative paths are taken
    from the project root (helpers.settings)."""
    if data_dir is not None:
        return project_path(data_dir).resolve()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return project_path(env).resolve()
    return project_path(DATA_DIR)


def check_name(name: str) -> tuple[str, str]:
    """Split ``restaurant_sup`` into ``("restaurant", "sup")`` or raise naming the valid names."""
    names = dataset_names()
    if name not in names:
        hint = did_you_mean(name, names)
        raise DataError(
            f"Unknown dataset '{name}'.{hint} Valid names: {', '.join(names)}."
        )
    base, kind = name.rsplit("_", 1)
    return base, kind


def load(name: str | Sequence[str], data_dir: str | os.PathLike | None = None) -> DatasetDict:
    """Load one dataset, or several concatenated with non-colliding label ids."""
    if not isinstance(name, str):
        names = list(name)
        if not names:
            raise DataError("load() got an empty list of dataset names.")
        if len(names) == 1:
            return load(names[0], data_dir)
        return _concatenate([load(n, data_dir) for n in names], names)

    splits = read_rows(name, data_dir)
    base, kind = check_name(name)
    source = SOURCES[base]
    label = ClassLabel(names=list(source.labels))
    features = FEATURES.copy()
    features["label"] = label
    dd = DatasetDict(
        {split: Dataset.from_list(rows, features=features) for split, rows in splits.items()}
    )
    if kind == "fs":
        dd["train"] = few_shot(dd["train"])
    return dd


def read_rows(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, sources.Rows]:
    """``name``'s rows per split, read and checked as :func:`load` does, without building
    datasets: the grid runner reads each dataset once before starting runs, so a bad file
    stops the grid, not every run."""
    base, _ = check_name(name)
    source = SOURCES[base]
    folder = resolve_data_dir(data_dir) / source.folder
    splits = sources.read_splits(folder, source)
    for split, rows in splits.items():
        if not rows:
            raise DataError(f"Dataset '{name}': split '{split}' is empty (files in {folder}).")
    return splits


#: How a pair dataset's two texts reach the tokenizer (TrainConfig.input_format).
INPUT_FORMATS = ("pair", "sep_string")
#: The separator the original's train.py passed to its dataHelper.py (a plain string to the
#: tokenizer, not its separator token).
ORIGINAL_SEP = "<SEP>"


def check_input(name: str, input_format: str = "pair", num_labels: int | None = None) -> None:
    """Raise DataError when ``input_format`` or ``num_labels`` cannot apply to dataset ``name``
    (reads no file: the classes and the pair format are the source's)."""
    base, _ = check_name(name)
    source = SOURCES[base]
    if input_format not in INPUT_FORMATS:
        raise DataError(f"input_format={input_format!r} is not one of {list(INPUT_FORMATS)}.")
    if input_format != "pair" and not source.reader.pairs:
        raise DataError(f"input_format={input_format!r} joins an aspect and a sentence, but "
                        f"'{name}' is a single-text dataset; use input_format='pair' (the "
                        f"default, which leaves single texts as they are).")
    classes = len(source.labels)
    if num_labels is not None and (isinstance(num_labels, bool) or not isinstance(num_labels, int)
                                   or num_labels < classes):
        raise DataError(f"num_labels={num_labels!r} must be an integer >= {classes}, the "
                        f"number of classes of '{name}' ({', '.join(source.labels)}); None "
                        f"sizes the head from the data.")


def apply_input_format(dd: DatasetDict, input_format: str) -> DatasetDict:
    """``"pair"``: unchanged. ``"sep_string"``: one text ``f"{term} <SEP> {sentence}"`` and no
    pair, as the original's dataHelper.py line 39 built it."""
    if input_format == "pair":
        return dd
    if input_format != "sep_string":
        raise DataError(f"input_format={input_format!r} is not one of {list(INPUT_FORMATS)}.")

    def join(batch: dict[str, list]) -> dict[str, list]:
        return {"text": [t if p is None else f"{t} {ORIGINAL_SEP} {p}"
                         for t, p in zip(batch["text"], batch["text_pair"], strict=True)],
                "text_pair": [None] * len(batch["text"])}

    with quiet_progress():
        return dd.map(join, batched=True)


def head_labels(names: Sequence[str], num_labels: int | None = None) -> list[str]:
    """The head's label names: the dataset's, padded with ``unused_<i>`` up to ``num_labels``
    (the original's 6-way head on fewer classes; its extra outputs can still win the argmax)."""
    if num_labels is None:
        return list(names)
    if num_labels < len(names):
        raise DataError(f"num_labels={num_labels} is below the {len(names)} classes "
                        f"({', '.join(names)}).")
    return [*names, *(f"unused_{i}" for i in range(len(names), num_labels))]


def few_shot(train: Dataset, size: int = FEW_SHOT_SIZE, seed: int = SPLIT_SEED) -> Dataset:
    """A fixed stratified sample of the training split (same rows on every call)."""
    from sklearn.model_selection import train_test_split  # deferred: sklearn loads slowly

    labels = train["label"]
    idx, _ = train_test_split(
        list(range(len(train))), train_size=size, stratify=labels, random_state=seed
    )
    return train.select(sorted(idx))


def get_dataset(name: str | Sequence[str], sep_token: str,
                data_dir: str | os.PathLike | None = None) -> DatasetDict:
    """The assignment's original contract: ``text`` + ``label``, pairs joined by ``sep_token``.

    Prefer :func:`load` plus pair encoding; this exists for code written against the handout.
    """

    def join(row: dict) -> dict:
        pair = row["text_pair"]
        return {"text": row["text"] if pair is None else f"{row['text']}{sep_token}{pair}"}

    dd = load(name, data_dir)
    with quiet_progress():
        return dd.map(join, remove_columns=["id", "text_pair"])


@contextlib.contextmanager
def quiet_progress():
    """Silence datasets' per-map progress bars for instant in-memory maps; restore after."""
    was_disabled = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def label_names(dd: DatasetDict) -> list[str]:
    return list(dd["train"].features["label"].names)


def _concatenate(parts: list[DatasetDict], names: list[str]) -> DatasetDict:
    """Concatenate datasets; label ids are offset and names prefixed with the dataset name."""
    all_names: list[str] = []
    offsets = []
    for name, dd in zip(names, parts, strict=True):
        offsets.append(len(all_names))
        all_names += [f"{name}:{label}" for label in label_names(dd)]
    features = FEATURES.copy()
    features["label"] = ClassLabel(names=all_names)
    out = {}
    with quiet_progress():
        out = _shift(parts, names, offsets, features)
    return DatasetDict(out)


def _shift(parts: list[DatasetDict], names: list[str], offsets: list[int],
           features: Features) -> dict[str, Dataset]:
    out = {}
    for split in SHIPPED_SPLITS:
        shifted = []
        for name, dd, offset in zip(names, parts, offsets, strict=True):
            ds = dd[split].cast_column("label", Value("int64"))
            ds = ds.map(lambda b, o=offset, n=name: {
                "label": [x + o for x in b["label"]], "id": [f"{n}/{i}" for i in b["id"]]},
                batched=True)
            shifted.append(ds.cast(features))
        out[split] = datasets.concatenate_datasets(shifted)
    return out


# --------------------------------------------------------------------------- info and fetch


def info(name: str | Sequence[str], data_dir: str | os.PathLike | None = None) -> str:
    """Split sizes and label counts, as a printable table."""
    dd = load(name, data_dir)
    names = label_names(dd)
    lines = [f"{name if isinstance(name, str) else '+'.join(name)}: {len(names)} classes"]
    header = f"{'split':<11}{'rows':>6}  " + "  ".join(names)
    lines.append(header)
    for split, ds in dd.items():
        counts = Counter(ds["label"])
        lines.append(f"{split:<11}{len(ds):>6}  "
                     + "  ".join(f"{counts.get(i, 0):>{len(n)}}" for i, n in enumerate(names)))
    return "\n".join(lines)


def fetch(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Download a dataset's files from its public source into the data dir."""
    base, _ = check_name(name)
    source = SOURCES[base]
    folder = resolve_data_dir(data_dir) / source.folder
    if source.fetch is None:
        raise DataError(f"'{name}' {source.no_fetch}. Place {source.layout()} in {folder}.")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        source.fetch(folder)
    except (OSError, ConnectionError) as e:
        raise DataError(
            f"Could not download '{name}' ({type(e).__name__}: {e}). This needs internet; "
            f"offline, copy the files into {folder} by hand (see README, 'Data')."
        ) from None
    except Exception as e:  # datasets wraps network errors in its own types
        if "connect" in str(e).lower() or "offline" in str(e).lower():
            raise DataError(
                f"Could not download '{name}': no connection to the Hugging Face Hub. "
                f"Offline, copy the files into {folder} by hand (see README, 'Data')."
            ) from None
        raise
    return folder

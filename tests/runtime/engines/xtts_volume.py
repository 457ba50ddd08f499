"""An XTTS-v2 model volume with random weights, written as the real one is laid out.

XTTS-v2's weights cannot be downloaded here (no model hub), so this builds the
published architecture from its configuration with random weights and the
tokenizer file coqui-tts ships, and saves ``config.json``, ``model.pth``,
``vocab.json`` and ``speakers_xtts.pth`` where the runtime looks for them. The
runtime then loads it through coqui-tts's own ``load_checkpoint``, exactly as
a real volume. ``size="tiny"`` shrinks the GPT (2 layers, width 64) for CPU
tests; ``size="full"`` is XTTS-v2's shape (467 M parameters) for GPU figures.
Random weights speak noise and rarely emit the stop token: cap the tokens. The
tiny volume's stop token is silenced outright, so its every chunk runs to the
cap and the tests can count on a chunk's length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from avatar_runtime.engines.model_volume import XTTS_DIR

# XTTS-v2's published model_args (its config.json on the model hub).
XTTS_V2_ARGS = {
    "gpt_number_text_tokens": 6681,
    "gpt_start_text_token": 261,
    "gpt_stop_text_token": 0,
    "gpt_num_audio_tokens": 1026,
    "gpt_start_audio_token": 1024,
    "gpt_stop_audio_token": 1025,
    "gpt_use_perceiver_resampler": True,
}
TINY_ARGS = {"gpt_layers": 2, "gpt_n_model_channels": 64, "gpt_n_heads": 4, "decoder_input_dim": 64}
SPEAKERS = ("Ana Florence", "Claribel Dervla")


def build(root: Path, *, size: Literal["tiny", "full"] = "tiny", seed: int = 0) -> Path:
    import shutil

    import numpy as np
    import torch
    import TTS
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
    from TTS.tts.models.xtts import Xtts

    torch.manual_seed(seed)
    directory = root / XTTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    vocab = Path(TTS.__file__).parent / "tts/utils/assets/tortoise/tokenizer.json"
    shutil.copy(vocab, directory / "vocab.json")
    config = XttsConfig()
    for key, value in {**XTTS_V2_ARGS, **(TINY_ARGS if size == "tiny" else {})}.items():
        setattr(config.model_args, key, value)
    model = Xtts(config)
    model.tokenizer = VoiceBpeTokenizer(vocab_file=str(directory / "vocab.json"))
    model.init_models()
    model.eval()
    if size == "tiny":
        # Random weights still pick the stop token now and then (about 1 in 1026 a step):
        # a bias it can never overcome keeps every test chunk at the cap.
        with torch.no_grad():
            model.gpt.mel_head.bias[config.model_args.gpt_stop_audio_token] = -1e4
    torch.save({"model": model.state_dict()}, directory / "model.pth")
    config.save_json(str(directory / "config.json"))
    # Named voices, as XTTS-v2's studio voices are stored: latents of a sample each.
    rng = np.random.default_rng(seed)
    speakers = {}
    for name in SPEAKERS:
        noise = torch.from_numpy(rng.normal(0, 0.1, 22_050 * 4).astype("float32")).unsqueeze(0)
        speakers[name] = {
            "gpt_cond_latent": model.get_gpt_cond_latents(noise, 22_050),
            "speaker_embedding": model.get_speaker_embedding(noise, 22_050),
        }
    torch.save(speakers, directory / "speakers_xtts.pth")
    return root

"""What the fixture generators share: an offline, single-threaded, deterministic environment and
the helpers that write their files. Import this module before torch/transformers: it sets the
environment variables they read at import time."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
transformers.utils.logging.disable_progress_bar()

ROOT = Path(__file__).resolve().parent.parent


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    save_file(tensors, str(path), metadata={"format": "pt"})
    os.chmod(path, 0o644)  # safetensors may create files 0600


def write_json(path: Path, data, sort_keys: bool = False) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=sort_keys) + "\n", encoding="utf-8")


def versions(**extra: str) -> dict:
    """The versions that made a fixture (python, torch, transformers, [extra], safetensors, numpy)."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        **extra,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }


def llama_weights(seed: int, *, vocab: int, hidden: int, layers: int, heads: int, kv_heads: int, head_dim: int,
                  intermediate: int, matrix_std: float, embed_std: float, norm_std: float) -> dict[str, np.ndarray]:
    """Random f32 weights in HF Llama layout ([out, in] for Linear), drawn from a legacy numpy
    stream (stable across numpy versions) in a fixed order: embeddings, each layer, norm, lm_head.
    Matrices N(0, matrix_std^2), embeddings N(0, embed_std^2), norms 1 + norm_std * N(0, 1)."""
    rs = np.random.RandomState(seed)

    def mat(rows, cols, std=matrix_std):
        return (rs.standard_normal((rows, cols)) * std).astype(np.float32)

    def norm():
        return (1.0 + norm_std * rs.standard_normal((hidden,))).astype(np.float32)

    w: dict[str, np.ndarray] = {}
    w["model.embed_tokens.weight"] = mat(vocab, hidden, embed_std)
    for i in range(layers):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm()
        w[p + "self_attn.q_proj.weight"] = mat(heads * head_dim, hidden)
        w[p + "self_attn.k_proj.weight"] = mat(kv_heads * head_dim, hidden)
        w[p + "self_attn.v_proj.weight"] = mat(kv_heads * head_dim, hidden)
        w[p + "self_attn.o_proj.weight"] = mat(hidden, heads * head_dim)
        w[p + "post_attention_layernorm.weight"] = norm()
        w[p + "mlp.gate_proj.weight"] = mat(intermediate, hidden)
        w[p + "mlp.up_proj.weight"] = mat(intermediate, hidden)
        w[p + "mlp.down_proj.weight"] = mat(hidden, intermediate)
    w["model.norm.weight"] = norm()
    w["lm_head.weight"] = mat(vocab, hidden)
    return w

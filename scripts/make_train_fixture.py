#!/usr/bin/env python3
"""Generate the trainer parity fixture used by kiln-train's tests.

Creates tests/fixtures/train-parity/:

  model/config.json            tiny Hugging Face LlamaForCausalLM config (f32, no RoPE scaling)
  model/model.safetensors      its initial f32 weights (HF names, e.g. model.layers.0.self_attn.q_proj.weight)
  batch.json                   {"windows": [[17 ids], [17 ids]]}: inputs = w[:, :16], targets = w[:, 1:]
  grads.safetensors            d loss0 / d param for every parameter at the initial weights (same names)
  expected.json                loss0, then per optimizer step s = 0..9: loss before the update, lr used,
                               global grad norm before clipping; plus the recipe (as data) and versions
  final_params.safetensors     every parameter after the 10 AdamW steps (same names)
  README.md

The reference is plain PyTorch + transformers on CPU in float32:

  loss  = F.cross_entropy(model(inputs).logits.reshape(-1, V), targets.reshape(-1))   (mean over B*T)
  step  = zero grads -> loss.backward() -> clip_grad_norm_(all params, 1.0) -> set group lr -> AdamW.step()

with DeepSeek-Coder's recipe at toy scale: linear warmup then the three-stage step schedule
(x sqrt(0.1) at 80% and again at 90% of the steps), AdamW betas (0.9, 0.95), eps 1e-8, weight decay
0.1 on matrices (ndim >= 2: projections, embed_tokens, lm_head) and 0.0 on 1-D RMSNorm weights.

Usage (from the repo root):

    pip install -r scripts/requirements-fixtures.txt
    python scripts/make_train_fixture.py

Everything is deterministic (numpy's legacy RandomState for weights and tokens, single-threaded
torch with deterministic algorithms, non-foreach/non-fused AdamW); running the script twice yields
byte-identical files on the same machine. No network access is needed. Runs in a few seconds.
"""

from __future__ import annotations

import fixture_common  # noqa: F401  (sets the environment before torch/transformers load)
from fixture_common import llama_weights, save_tensors as save_raw, write_json, versions

import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from transformers import LlamaForCausalLM  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "train-parity"

# --------------------------------------------------------------------------------------
# Model (toy DeepSeek-Coder / Llama architecture)
# --------------------------------------------------------------------------------------

VOCAB = 64
HIDDEN = 32
INTERMEDIATE = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2
HEAD_DIM = 8
MAX_POS = 64
ROPE_THETA = 10000.0
RMS_EPS = 1e-6
BOS_ID = 0
EOS_ID = 1

# Initial weights. Matrices are drawn wider than config.initializer_range (0.02, which is only
# metadata here) so attention is far from uniform and RoPE / GQA / RMSNorm mistakes move the
# loss and gradients visibly; RMSNorm weights are 1 + noise (not all ones) so a mis-indexed or
# ignored norm weight shows up in the parity test.
WEIGHT_SEED = 20240
MATRIX_STD = 0.2
EMBED_STD = 0.5
NORM_STD = 0.1

# --------------------------------------------------------------------------------------
# Batch and training recipe
# --------------------------------------------------------------------------------------

BATCH_SEED = 7
BATCH = 2  # B
SEQ = 16  # T; windows hold T + 1 ids

MAX_LR = 1e-2
WARMUP_STEPS = 3
TOTAL_STEPS = 10
STAGE_FRACTIONS = (0.8, 0.9)  # from these fractions of TOTAL_STEPS on, lr *= sqrt(0.1) each
STAGE_FACTOR = math.sqrt(0.1)
BETAS = (0.9, 0.95)
ADAM_EPS = 1e-8
WEIGHT_DECAY = 0.1  # on params with ndim >= 2; 0.0 on 1-D params
MAX_GRAD_NORM = 1.0
CLIP_EPS = 1e-6  # torch: coef = min(1, max_norm / (total_norm + 1e-6))


def lr_at(step: int) -> float:
    """DeepSeek-Coder schedule: linear warmup, then max_lr with two sqrt(0.1) drops."""
    if step < WARMUP_STEPS:
        return MAX_LR * (step + 1) / WARMUP_STEPS
    lr = MAX_LR
    for frac in STAGE_FRACTIONS:
        if step >= frac * TOTAL_STEPS:
            lr *= STAGE_FACTOR
    return lr


def config_dict() -> dict:
    # Same keys (and order) as the real deepseek-coder config.json, plus head_dim, toy sizes.
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": MAX_POS,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": KV_HEADS,
        "pretraining_tp": 1,
        "rms_norm_eps": RMS_EPS,
        "rope_scaling": None,
        "rope_theta": ROPE_THETA,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": transformers.__version__,
        "use_cache": True,
        "vocab_size": VOCAB,
    }


def make_weights() -> dict[str, torch.Tensor]:
    """Random f32 weights in HF Llama layout ([out, in] for Linear)."""
    w = llama_weights(WEIGHT_SEED, vocab=VOCAB, hidden=HIDDEN, layers=LAYERS, heads=HEADS, kv_heads=KV_HEADS,
                      head_dim=HEAD_DIM, intermediate=INTERMEDIATE, matrix_std=MATRIX_STD, embed_std=EMBED_STD,
                      norm_std=NORM_STD)
    return {k: torch.from_numpy(v).contiguous() for k, v in w.items()}


def make_windows() -> list[list[int]]:
    rs = np.random.RandomState(BATCH_SEED)
    return rs.randint(0, VOCAB, size=(BATCH, SEQ + 1)).astype(np.int64).tolist()


# --------------------------------------------------------------------------------------
# I/O helpers
# --------------------------------------------------------------------------------------


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    save_raw({k: v.detach().to(torch.float32).contiguous().clone() for k, v in tensors.items()}, path)


def load_model(model_dir: Path) -> LlamaForCausalLM:
    model, info = LlamaForCausalLM.from_pretrained(
        str(model_dir),
        dtype=torch.float32,
        attn_implementation="eager",
        output_loading_info=True,
        local_files_only=True,
    )
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        assert not info.get(k), (k, info.get(k))
    assert model.config.rope_scaling is None, model.config.rope_scaling
    assert model.model.rotary_emb.rope_type == "default"
    assert model.model.rotary_emb.attention_scaling == 1.0
    assert model.config.head_dim == HEAD_DIM
    model.train()  # all dropouts are 0.0; train() only documents intent
    return model


# --------------------------------------------------------------------------------------
# Reference computations
# --------------------------------------------------------------------------------------


def loss_of(model: LlamaForCausalLM, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=inputs, use_cache=False).logits  # [B, T, V]
    assert logits.dtype == torch.float32 and logits.shape == (BATCH, SEQ, VOCAB)
    return F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))  # mean over B*T


def make_optimizer(model: LlamaForCausalLM) -> tuple[torch.optim.AdamW, list[str], list[str]]:
    decay, no_decay, decay_names, no_decay_names = [], [], [], []
    for name, p in model.named_parameters():
        if p.ndim >= 2:
            decay.append(p)
            decay_names.append(name)
        else:
            no_decay.append(p)
            no_decay_names.append(name)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": WEIGHT_DECAY},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr_at(0),
        betas=BETAS,
        eps=ADAM_EPS,
        amsgrad=False,
        maximize=False,
        foreach=False,
        fused=False,
        capturable=False,
        differentiable=False,
    )
    return opt, decay_names, no_decay_names


def replay_by_hand(model_dir: Path, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[list[float], dict[str, torch.Tensor]]:
    """Re-run the 10 steps with the recipe written out by hand (float64 optimizer math on the
    autograd grads, no torch.optim / clip_grad_norm_), as a check that expected.json's recipe
    text describes what torch did. Returns (grad_norms, final params)."""
    model = load_model(model_dir)
    named = list(model.named_parameters())
    m = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in named}
    v = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in named}
    b1, b2 = BETAS
    norms = []
    for step in range(TOTAL_STEPS):
        model.zero_grad(set_to_none=True)
        loss_of(model, inputs, targets).backward()
        g = {n: p.grad.detach().double() for n, p in named}
        norm = math.sqrt(sum(float((x * x).sum()) for x in g.values()))
        norms.append(norm)
        coef = min(1.0, MAX_GRAD_NORM / (norm + CLIP_EPS))
        lr, t = lr_at(step), step + 1
        with torch.no_grad():
            for n, p in named:
                gn = g[n] * coef
                wd = WEIGHT_DECAY if p.ndim >= 2 else 0.0
                x = p.detach().double() * (1.0 - lr * wd)
                m[n] = b1 * m[n] + (1.0 - b1) * gn
                v[n] = b2 * v[n] + (1.0 - b2) * gn * gn
                x = x - (lr / (1.0 - b1**t)) * m[n] / (v[n].sqrt() / math.sqrt(1.0 - b2**t) + ADAM_EPS)
                p.copy_(x.float())
    return norms, {n: p.detach().clone() for n, p in named}


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    model_dir = OUT / "model"
    model_dir.mkdir(parents=True)

    # 1. model
    write_json(model_dir / "config.json", config_dict())
    init = make_weights()
    save_tensors(init, model_dir / "model.safetensors")
    model = load_model(model_dir)
    names = [n for n, _ in model.named_parameters()]
    assert sorted(names) == sorted(init), set(names) ^ set(init)
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), init[n]), n

    # 2. batch
    windows = make_windows()
    rows = ",\n".join("    " + json.dumps(r) for r in windows)
    (OUT / "batch.json").write_text('{\n  "windows": [\n' + rows + "\n  ]\n}\n", encoding="utf-8")
    assert json.loads((OUT / "batch.json").read_text())["windows"] == windows
    w = torch.tensor(windows, dtype=torch.long)
    inputs, targets = w[:, :SEQ], w[:, 1:]

    # 3. loss0 and its gradients
    model.zero_grad(set_to_none=True)
    loss0_t = loss_of(model, inputs, targets)
    loss0_t.backward()
    loss0 = float(loss0_t.detach())
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    assert all(torch.isfinite(g).all() and g.abs().max() > 0 for g in grads.values())
    save_tensors(grads, OUT / "grads.safetensors")

    # 4. 10 AdamW steps from the initial weights (fresh model, fresh optimizer state)
    model = load_model(model_dir)
    params = [p for _, p in model.named_parameters()]
    opt, decay_names, no_decay_names = make_optimizer(model)
    losses, lrs, grad_norms, clip_coefs = [], [], [], []
    for step in range(TOTAL_STEPS):
        opt.zero_grad(set_to_none=True)
        loss = loss_of(model, inputs, targets)
        loss.backward()
        if step == 0:
            assert float(loss.detach()) == loss0, (float(loss.detach()), loss0)
            for n, p in model.named_parameters():
                assert torch.equal(p.grad, grads[n]), n
        # global L2 norm over all parameters' grads, before clipping (returned by clip_grad_norm_)
        total_norm = torch.nn.utils.clip_grad_norm_(params, max_norm=MAX_GRAD_NORM, norm_type=2.0, foreach=False)
        lr = lr_at(step)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        losses.append(float(loss.detach()))
        lrs.append(lr)
        grad_norms.append(float(total_norm))
        clip_coefs.append(min(1.0, MAX_GRAD_NORM / (float(total_norm) + CLIP_EPS)))
    with torch.no_grad():
        loss_final = float(loss_of(model, inputs, targets))
    save_tensors({n: p for n, p in model.named_parameters()}, OUT / "final_params.safetensors")

    # 5. sanity
    assert all(math.isfinite(x) for x in losses + grad_norms + [loss_final])
    assert losses[-1] < losses[0] - 0.5 and loss_final < losses[-1], (losses, loss_final)
    assert sum(b < a for a, b in zip(losses, losses[1:])) >= TOTAL_STEPS - 2, losses
    assert any(g > MAX_GRAD_NORM for g in grad_norms), "clipping never active"
    final = {n: p.detach().clone() for n, p in model.named_parameters()}
    hand_norms, hand_final = replay_by_hand(model_dir, inputs, targets)
    norm_rel = max(abs(a - b) / b for a, b in zip(hand_norms, grad_norms))
    param_diff = max(float((hand_final[n] - final[n]).abs().max()) for n in final)
    assert norm_rel < 1e-4 and param_diff < 1e-4, (norm_rel, param_diff)

    expected = {
        "loss0": loss0,
        "losses": losses,
        "lrs": lrs,
        "grad_norms": grad_norms,
        "clip_coefs": clip_coefs,
        "loss_after_last_step": loss_final,
        "recipe": {
            "batch_size": BATCH,
            "seq_len": SEQ,
            "loss": "mean cross-entropy over all B*T positions; inputs = windows[:, :T], targets = windows[:, 1:]",
            "steps": TOTAL_STEPS,
            "schedule": {
                "kind": "warmup_then_step",
                "max_lr": MAX_LR,
                "warmup_steps": WARMUP_STEPS,
                "total_steps": TOTAL_STEPS,
                "warmup": "lr(s) = max_lr * (s + 1) / warmup_steps for s < warmup_steps",
                "stage_fractions": list(STAGE_FRACTIONS),
                "stage_factor": STAGE_FACTOR,
                "stages": "otherwise lr = max_lr * stage_factor^k, k = #{f in stage_fractions : s >= f * total_steps}",
            },
            "optimizer": {
                "kind": "adamw",
                "betas": list(BETAS),
                "eps": ADAM_EPS,
                "weight_decay": WEIGHT_DECAY,
                "weight_decay_applies_to": "params with ndim >= 2; 1-D params (RMSNorm weights) get 0.0",
                "decoupled": True,
                "bias_correction": True,
                "update": (
                    "t += 1; p *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; "
                    "p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)"
                ),
                "decay_params": decay_names,
                "no_decay_params": no_decay_names,
            },
            "grad_clip": {
                "max_norm": MAX_GRAD_NORM,
                "norm": "global L2 over all parameters' grads (sqrt of the sum of squares), before clipping",
                "coef": "min(1, max_norm / (norm + 1e-6)), every grad multiplied by coef",
                "eps": CLIP_EPS,
            },
            "order": "zero grads; forward; loss (recorded); backward; clip (norm recorded); set lr (recorded); adamw step",
            "weight_seed": WEIGHT_SEED,
            "batch_seed": BATCH_SEED,
            "init": {"matrix_std": MATRIX_STD, "embed_std": EMBED_STD, "norm": f"1 + {NORM_STD} * N(0, 1)"},
        },
        "versions": versions(),
    }
    write_json(OUT / "expected.json", expected)
    write_readme(expected)

    sizes = {str(p.relative_to(OUT)): p.stat().st_size for p in sorted(OUT.rglob("*")) if p.is_file()}
    total = sum(sizes.values())
    assert total < 1_000_000, sizes
    print(f"loss0      {loss0:.6f}")
    print("step  lr          grad_norm   loss")
    for s in range(TOTAL_STEPS):
        print(f"{s:4d}  {lrs[s]:.8f}  {grad_norms[s]:.6f}  {losses[s]:.6f}")
    print(f"after {TOTAL_STEPS} steps loss {loss_final:.6f}")
    print(f"hand-written replay (f64 optimizer math): max grad-norm rel diff {norm_rel:.2e}, max |param diff| {param_diff:.2e}")
    print(json.dumps({"sizes": sizes, "total_bytes": total}, indent=2))
    return 0


def write_readme(exp: dict) -> None:
    v = exp["versions"]
    text = f"""# train-parity

Reference for kiln-train's parity test: one fixed batch, the loss and every gradient at the initial
weights, then 10 optimizer steps of DeepSeek-Coder's recipe at toy scale, computed with PyTorch +
transformers on CPU in float32. Generated by `python scripts/make_train_fixture.py`
(pinned deps: `scripts/requirements-fixtures.txt`); do not edit by hand.

- `model/`: Hugging Face `LlamaForCausalLM` checkpoint (`config.json`, f32 `model.safetensors`):
  vocab {VOCAB}, hidden {HIDDEN}, intermediate {INTERMEDIATE}, {LAYERS} layers, {HEADS} heads, {KV_HEADS} KV heads (GQA),
  head_dim {HEAD_DIM}, rms_norm_eps {RMS_EPS}, rope_theta {ROPE_THETA:g}, no rope scaling, untied lm_head, no biases,
  SiLU MLP, BOS {BOS_ID} / EOS {EOS_ID}. Initial weights: numpy `RandomState({WEIGHT_SEED})`, matrices N(0, {MATRIX_STD}^2),
  embed_tokens N(0, {EMBED_STD}^2), RMSNorm weights 1 + {NORM_STD}·N(0, 1) (`initializer_range` 0.02 is metadata only).
- `batch.json`: `{{"windows": [...]}}`, {BATCH} windows of {SEQ + 1} ids from `RandomState({BATCH_SEED}).randint(0, {VOCAB})`;
  inputs = `w[:, :{SEQ}]`, targets = `w[:, 1:]`.
- Loss: `F.cross_entropy(logits.reshape(-1, {VOCAB}), targets.reshape(-1))`, the mean over all {BATCH}x{SEQ} positions
  (eager attention, causal mask, no padding, no built-in label shifting).
- `grads.safetensors`: gradient of `loss0` w.r.t. every parameter (same names as the weights).
- `expected.json`: `loss0`; per step s = 0..{TOTAL_STEPS - 1}: `losses[s]` (before the update), `lrs[s]`, `grad_norms[s]`
  (global L2 norm over all parameters' grads, before clipping) and `clip_coefs[s]`; `loss_after_last_step`;
  the recipe as data; versions.
- `final_params.safetensors`: every parameter after the {TOTAL_STEPS} steps.

Each step: zero grads, forward, loss, backward, `clip_grad_norm_(all params, {MAX_GRAD_NORM})`, set lr, `AdamW.step()`.
lr: warmup `{MAX_LR} * (s + 1) / {WARMUP_STEPS}` for s < {WARMUP_STEPS}, then {MAX_LR}, times sqrt(0.1) from s >= 0.8·{TOTAL_STEPS}
and again from s >= 0.9·{TOTAL_STEPS}. AdamW (torch, decoupled decay, bias-corrected, single-tensor path):
betas {BETAS}, eps {ADAM_EPS}, weight decay {WEIGHT_DECAY} on params with ndim >= 2 (projections, embed_tokens, lm_head),
0.0 on RMSNorm weights.

loss0 = {exp['loss0']:.6f}; losses {exp['losses'][0]:.4f} -> {exp['losses'][-1]:.4f}, {exp['loss_after_last_step']:.4f} after the last step.

Versions: python {v['python']}, torch {v['torch']}, transformers {v['transformers']}, safetensors {v['safetensors']},
numpy {v['numpy']}.
"""
    (OUT / "README.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""
Fixtures for Hugging Face configs as they are in the wild (test/fixtures/hf-configs/<name>/): config.json,
model.safetensors (HF tensor names and layouts) and expected.json (input_ids, logits[, recycle_logits]).

The expected logits come from an independent numpy reference of transformers' LlamaForCausalLM / Qwen2ForCausalLM
forward, written from the PyTorch code's math (float64 here):

  RMSNorm          x * rsqrt(mean(x^2) + eps) * w
  RoPE             rotate-half: x * cos + rotate_half(x) * sin, cos/sin of pos * inv_freq duplicated over the halves;
                   inv_freq = 1 / theta^(2i/D), rescaled as modeling_rope_utils' _compute_llama3_parameters
                   ("llama3": by wavelength bands) and _compute_linear_scaling_rope_parameters ("linear": / factor)
  attention        q/k/v projections (+ biases: Qwen2 q/k/v; Llama attention_bias q/k/v/o), GQA (head h reads kv head
                   h // (H/G)), scale head_dim^-0.5, causal softmax, o_proj [hidden, H*head_dim]
  MLP              down(silu(gate(x)) * up(x)) (+ biases with Llama mlp_bias)
  head             lm_head, or the embedding when tie_word_embeddings
  recycle module   (our format, ARCHITECTURE.md §1.1) m_t = W_in concat(h_t, e(x_{t+1})) + b_in, the same blocks at
                   positions t, then the base's final norm and head

Before writing anything the reference is checked against the PyTorch outputs of test/fixtures/tiny-llama and
tiny-recycle-llama (transformers' own forward, recycle module included), so the reference itself is validated.
Each scaled config also asserts that the scaling changes the logits (the unscaled forward differs).

numpy only, deterministic seeds: python3 scripts/make-hf-config-fixtures.py
"""
import json
import math
import os
import struct
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
FIXTURES = os.path.join(ROOT, 'test', 'fixtures')
OUT = os.path.join(FIXTURES, 'hf-configs')


# ---- safetensors (header JSON + raw little-endian data) ----------------------------------------------------------


def read_safetensors(path):
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        assert info['dtype'] == 'F32', (path, name, info['dtype'])
        s, e = info['data_offsets']
        out[name] = np.frombuffer(raw[base + s : base + e], dtype='<f4').reshape(info['shape']).astype(np.float64)
    return out


def write_safetensors(path, tensors):
    header = {'__metadata__': {'format': 'pt'}}
    blobs = []
    off = 0
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype='<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(arr.shape), 'data_offsets': [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(',', ':')).encode('utf-8')
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---- the reference forward ---------------------------------------------------------------------------------------


def head_dim_of(cfg):
    return cfg.get('head_dim') or cfg['hidden_size'] // cfg['num_attention_heads']


def rope_type_of(cfg):
    rs = cfg.get('rope_scaling')
    if not rs:
        return 'default'
    return rs.get('rope_type', rs.get('type', 'default'))


def inv_freq_of(cfg, scaled=True):
    """transformers' modeling_rope_utils: _compute_default_rope_parameters, then the rope_type's rescaling."""
    D = head_dim_of(cfg)
    inv_freq = 1.0 / (cfg.get('rope_theta', 10000.0) ** (np.arange(0, D, 2, dtype=np.float64) / D))
    kind = rope_type_of(cfg) if scaled else 'default'
    rs = cfg.get('rope_scaling')
    if kind == 'default':
        return inv_freq
    if kind == 'linear':
        return inv_freq / rs['factor']
    if kind == 'llama3':
        factor = rs['factor']
        low_freq_factor = rs['low_freq_factor']
        high_freq_factor = rs['high_freq_factor']
        old_context_len = rs['original_max_position_embeddings']
        low_freq_wavelen = old_context_len / low_freq_factor
        high_freq_wavelen = old_context_len / high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        inv_freq_llama = np.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
        smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
        is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
        return np.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
    raise ValueError(f'rope type {kind} is not in this reference')


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def silu(x):
    return x / (1 + np.exp(-x))


def biases_of(cfg):
    """(q/k/v bias, o bias, mlp bias) as the model classes build their Linear layers."""
    if cfg['model_type'] == 'qwen2':
        return True, False, False
    ab = bool(cfg.get('attention_bias', False))
    return ab, ab, bool(cfg.get('mlp_bias', False))


def block(cfg, W, p, x, pos, inv_freq):
    T, C = x.shape
    H, G, D = cfg['num_attention_heads'], cfg.get('num_key_value_heads') or cfg['num_attention_heads'], head_dim_of(cfg)
    eps = cfg.get('rms_norm_eps', 1e-6)
    qkv_b, o_b, mlp_b = biases_of(cfg)

    def lin(v, name, has_bias):
        y = v @ W[name + '.weight'].T
        return y + W[name + '.bias'] if has_bias else y

    h = rms_norm(x, W[p + 'input_layernorm.weight'], eps)
    q = lin(h, p + 'self_attn.q_proj', qkv_b).reshape(T, H, D)
    k = lin(h, p + 'self_attn.k_proj', qkv_b).reshape(T, G, D)
    v = lin(h, p + 'self_attn.v_proj', qkv_b).reshape(T, G, D)
    freqs = pos[:, None].astype(np.float64) * inv_freq[None, :]
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    rep = H // G
    k = np.repeat(k, rep, axis=1)
    v = np.repeat(v, rep, axis=1)
    scores = np.einsum('thd,shd->hts', q, k) * D**-0.5
    mask = np.triu(np.ones((T, T), dtype=bool), 1)
    scores = np.where(mask[None], -np.inf, scores)
    scores -= scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    att = np.einsum('hts,shd->thd', probs, v).reshape(T, H * D)
    x = x + lin(att, p + 'self_attn.o_proj', o_b)
    h = rms_norm(x, W[p + 'post_attention_layernorm.weight'], eps)
    m = silu(lin(h, p + 'mlp.gate_proj', mlp_b)) * lin(h, p + 'mlp.up_proj', mlp_b)
    return x + lin(m, p + 'mlp.down_proj', mlp_b)


def forward(cfg, W, ids, scaled=True):
    """Base logits [T, V] and, with a "recycle" section, the module's logits [T-1, V]."""
    ids = np.asarray(ids)
    inv_freq = inv_freq_of(cfg, scaled)
    emb = W['model.embed_tokens.weight']
    head = emb if cfg.get('tie_word_embeddings', False) else W['lm_head.weight']
    eps = cfg.get('rms_norm_eps', 1e-6)
    T = len(ids)
    x = emb[ids]
    pos = np.arange(T)
    for l in range(cfg['num_hidden_layers']):
        x = block(cfg, W, f'model.layers.{l}.', x, pos, inv_freq)
    logits = rms_norm(x, W['model.norm.weight'], eps) @ head.T
    rec = cfg.get('recycle')
    if not rec:
        return logits, None
    m = np.concatenate([x[: T - 1], emb[ids[1:]]], axis=-1) @ W['recycle.in_proj.weight'].T + W['recycle.in_proj.bias']
    for l in range(rec['num_layers']):
        m = block(cfg, W, f'recycle.layers.{l}.', m, np.arange(T - 1), inv_freq)
    return logits, rms_norm(m, W['model.norm.weight'], eps) @ head.T


# ---- validation against the PyTorch fixtures -------------------------------------------------------------------


def check_against_pytorch():
    for name in ['tiny-llama', 'tiny-recycle-llama']:
        d = os.path.join(FIXTURES, name)
        cfg = json.load(open(os.path.join(d, 'config.json')))
        exp = json.load(open(os.path.join(d, 'expected.json')))
        W = read_safetensors(os.path.join(d, 'model.safetensors'))
        logits, rl = forward(cfg, W, exp['input_ids'])
        diff = np.abs(logits - np.array(exp['logits'])).max()
        msg = f'{name}: numpy reference vs PyTorch logits, max |diff| = {diff:.3g}'
        if 'recycle_logits' in exp:
            rdiff = np.abs(rl - np.array(exp['recycle_logits'])).max()
            msg += f', recycle logits {rdiff:.3g}'
            diff = max(diff, rdiff)
        print(msg)
        assert diff < 2e-5, msg


# ---- fixtures --------------------------------------------------------------------------------------------------


def param_shapes(cfg):
    """HF tensor names and shapes of a Llama / Qwen2 checkpoint (plus recycle.* for our module)."""
    C, I, V = cfg['hidden_size'], cfg['intermediate_size'], cfg['vocab_size']
    H, D = cfg['num_attention_heads'], head_dim_of(cfg)
    G = cfg.get('num_key_value_heads') or H
    qkv_b, o_b, mlp_b = biases_of(cfg)

    def blk(p):
        s = {p + 'input_layernorm.weight': ('norm', [C])}
        for n, rows in [('q', H * D), ('k', G * D), ('v', G * D)]:
            s[f'{p}self_attn.{n}_proj.weight'] = ('mat', [rows, C])
            if qkv_b:
                s[f'{p}self_attn.{n}_proj.bias'] = ('bias', [rows])
        s[p + 'self_attn.o_proj.weight'] = ('mat', [C, H * D])
        if o_b:
            s[p + 'self_attn.o_proj.bias'] = ('bias', [C])
        s[p + 'post_attention_layernorm.weight'] = ('norm', [C])
        for n, shape in [('gate', [I, C]), ('up', [I, C]), ('down', [C, I])]:
            s[f'{p}mlp.{n}_proj.weight'] = ('mat', shape)
            if mlp_b:
                s[f'{p}mlp.{n}_proj.bias'] = ('bias', [shape[0]])
        return s

    shapes = {'model.embed_tokens.weight': ('emb', [V, C])}
    for l in range(cfg['num_hidden_layers']):
        shapes.update(blk(f'model.layers.{l}.'))
    shapes['model.norm.weight'] = ('norm', [C])
    if not cfg.get('tie_word_embeddings', False):
        shapes['lm_head.weight'] = ('emb', [V, C])
    rec = cfg.get('recycle')
    if rec:
        shapes['recycle.in_proj.weight'] = ('mat', [C, 2 * C])
        shapes['recycle.in_proj.bias'] = ('bias', [C])
        for l in range(rec['num_layers']):
            shapes.update(blk(f'recycle.layers.{l}.'))
    return shapes


def random_weights(cfg, seed):
    rng = np.random.default_rng(seed)
    W = {}
    for name, (kind, shape) in param_shapes(cfg).items():
        if kind == 'norm':
            a = 1 + 0.1 * rng.standard_normal(shape)
        elif kind == 'bias':
            a = 0.1 * rng.standard_normal(shape)
        elif kind == 'emb':
            a = 0.2 * rng.standard_normal(shape)
        else:  # matrices: std 1/sqrt(fan_in), so the attention patterns (and the rotation) matter
            a = rng.standard_normal(shape) / math.sqrt(shape[1])
        # the file holds float32: the reference computes with exactly those values
        W[name] = a.astype(np.float32).astype(np.float64)
    return W


def llama3_config():
    # The layout of Llama 3.1 / 3.2 config.json files, shrunk: explicit head_dim (4 x 24 = 96 != 64), GQA, untied head,
    # rope_scaling "llama3" with original_max_position_embeddings 64 so that the head dim's 12 frequencies fall in all
    # three bands (wavelength < 16 kept, 16..64 smoothed, > 64 divided by the factor).
    return {
        'architectures': ['LlamaForCausalLM'],
        'attention_bias': False,
        'attention_dropout': 0.0,
        'bos_token_id': 1,
        'eos_token_id': [2, 3, 4],
        'head_dim': 24,
        'hidden_act': 'silu',
        'hidden_size': 64,
        'initializer_range': 0.02,
        'intermediate_size': 160,
        'max_position_embeddings': 512,
        'mlp_bias': False,
        'model_type': 'llama',
        'num_attention_heads': 4,
        'num_hidden_layers': 2,
        'num_key_value_heads': 2,
        'pretraining_tp': 1,
        'rms_norm_eps': 1e-05,
        'rope_scaling': {
            'factor': 8.0,
            'high_freq_factor': 4.0,
            'low_freq_factor': 1.0,
            'original_max_position_embeddings': 64,
            'rope_type': 'llama3',
        },
        'rope_theta': 500000.0,
        'tie_word_embeddings': False,
        'torch_dtype': 'float32',
        'transformers_version': '4.45.0',
        'use_cache': True,
        'vocab_size': 300,
    }


def qwen2_config():
    # The layout of Qwen2 / Qwen2.5 config.json files, shrunk: q/k/v biases implied by model_type, tied head, GQA,
    # rope_theta 1e6, sliding window off.
    return {
        'architectures': ['Qwen2ForCausalLM'],
        'attention_dropout': 0.0,
        'bos_token_id': 1,
        'eos_token_id': 2,
        'hidden_act': 'silu',
        'hidden_size': 64,
        'initializer_range': 0.02,
        'intermediate_size': 176,
        'max_position_embeddings': 256,
        'max_window_layers': 2,
        'model_type': 'qwen2',
        'num_attention_heads': 4,
        'num_hidden_layers': 2,
        'num_key_value_heads': 1,
        'rms_norm_eps': 1e-06,
        'rope_scaling': None,
        'rope_theta': 1000000.0,
        'sliding_window': 256,
        'tie_word_embeddings': True,
        'torch_dtype': 'float32',
        'transformers_version': '4.43.1',
        'use_cache': True,
        'use_sliding_window': False,
        'vocab_size': 300,
    }


def linear_bias_config():
    # A Llama-2-era config with the legacy rope_scaling key "type": linear scaling by 4, attention_bias (q/k/v/o) and
    # mlp_bias (gate/up/down), plus our "recycle" section: the module's blocks carry the same biases and rotation.
    return {
        'architectures': ['LlamaForCausalLM'],
        'attention_bias': True,
        'bos_token_id': 1,
        'eos_token_id': 2,
        'hidden_act': 'silu',
        'hidden_size': 64,
        'intermediate_size': 128,
        'max_position_embeddings': 256,
        'mlp_bias': True,
        'model_type': 'llama',
        'num_attention_heads': 4,
        'num_hidden_layers': 2,
        'num_key_value_heads': 4,
        'rms_norm_eps': 1e-06,
        'rope_scaling': {'factor': 4.0, 'type': 'linear'},
        'rope_theta': 10000.0,
        'tie_word_embeddings': False,
        'torch_dtype': 'float32',
        'vocab_size': 300,
        'recycle': {'num_layers': 1, 'loss_weight': 1.0, 'hidden': 'pre_norm'},
    }


def make(name, cfg, seed):
    W = random_weights(cfg, seed)
    ids = np.random.default_rng(seed + 1000).integers(0, cfg['vocab_size'], size=40).tolist()
    logits, rl = forward(cfg, W, ids)
    if rope_type_of(cfg) == 'llama3':
        rs = cfg['rope_scaling']
        wavelen = 2 * math.pi / inv_freq_of(cfg, scaled=False)
        L0 = rs['original_max_position_embeddings']
        kept = int((wavelen < L0 / rs['high_freq_factor']).sum())
        divided = int((wavelen > L0 / rs['low_freq_factor']).sum())
        smoothed = len(wavelen) - kept - divided
        print(f'{name}: llama3 bands: {kept} frequencies kept, {smoothed} smoothed, {divided} divided by the factor')
        assert kept and smoothed and divided, f'{name}: the llama3 frequencies miss a band'
    if rope_type_of(cfg) != 'default':
        plain, _ = forward(cfg, W, ids, scaled=False)
        d = np.abs(plain - logits).max()
        print(f'{name}: rope_scaling {rope_type_of(cfg)} changes the logits by up to {d:.3g}')
        assert d > 1e-2, f'{name}: the scaling does not change the logits'
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump(cfg, f, indent=2)
        f.write('\n')
    write_safetensors(os.path.join(d, 'model.safetensors'), W)
    exp = {
        'note': 'logits of the numpy reference of transformers forward (scripts/make-hf-config-fixtures.py, float64)',
        'tolerance': 1e-4,
        'input_ids': ids,
        'logits': [[round(float(v), 7) for v in row] for row in logits],
    }
    if rl is not None:
        exp['recycle_logits'] = [[round(float(v), 7) for v in row] for row in rl]
    with open(os.path.join(d, 'expected.json'), 'w') as f:
        json.dump(exp, f, separators=(',', ':'))
        f.write('\n')
    # the written file reads back to the same weights
    back = read_safetensors(os.path.join(d, 'model.safetensors'))
    assert set(back) == set(W) and all(np.array_equal(back[k], W[k]) for k in W)
    print(f'{name}: wrote {d} ({len(W)} tensors, {len(ids)} positions)')


def main():
    check_against_pytorch()
    make('llama3-rope-scaling', llama3_config(), 11)
    make('qwen2-qkv-bias', qwen2_config(), 12)
    make('llama-linear-bias', linear_bias_config(), 13)
    return 0


if __name__ == '__main__':
    sys.exit(main())

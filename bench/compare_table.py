#!/usr/bin/env python3
"""Turns the JSON lines of bench/compare.sh (engine and PyTorch, one run) into Markdown tables of
ratios, with the targets of issue 6 marked met or not. Standard library only.

    python3 bench/compare_table.py results.jsonl
    python3 bench/compare_table.py --into docs/benchmarks.md table.md   # replace the GPU block

End to end: "vs PyTorch best" = the fastest variant's median ms of the newest torch in the run /
the engine's median ms (above 1: the engine is faster); an older torch (Debian's 1.13) gets a
column of its own. Kernels: the fraction of the limit measured in the same run. Memory: the peak
device memory of the training step (both sides) and the largest batch that fits.
"""
import json
import re
import sys

# (bench, device) -> minimum speed-up over PyTorch's best configuration.
END_TO_END_TARGETS = {("train_step", "cuda"): 1.3, ("sample_step", "cuda"): 1.3, ("train_step", "cpu"): 1.0}
# bench -> minimum fraction of the measured copy bandwidth, at streaming sizes.
BANDWIDTH_TARGETS = {"q_sample": 0.9, "group_norm_silu_forward": 0.8}
ATTENTION_TARGET = 0.9  # engine forward at 256 tokens vs PyTorch's best SDPA backend


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.startswith("{")]


def verdict(value, target):
    if target is None:
        return ""
    return f"{'met' if value >= target else 'NOT met'} (>= {target:g})"


def torch_major(line):
    try:
        return int(str(line.get("torch", "0")).split(".")[0])
    except ValueError:
        return 0


def end_to_end(lines):
    """Engine against current PyTorch (torch >= 2, the ratio and target) and, where the run has
    it, an older torch (Debian's 1.13) as a second column. compare.sh runs each side more than
    once, alternating: every side's figure is its fastest run's median."""
    rows = []
    keys = sorted({(l["bench"], l["config"], l["device"], l["batch"]) for l in lines
                   if l.get("side") == "ddpm" and "config" in l and "ms" in l})
    old_versions = set()
    for bench, config, device, batch in keys:
        same = [l for l in lines if (l.get("bench"), l.get("config"), l.get("device"), l.get("batch"))
                == (bench, config, device, batch)]
        torch_runs = [l for l in same if l["side"] == "pytorch" and "ms" in l]
        newest = max((torch_major(l) for l in torch_runs), default=0)
        current = [l for l in torch_runs if torch_major(l) == newest]
        older = [l for l in torch_runs if torch_major(l) < newest]
        old_versions.update(l.get("torch", "?") for l in older)
        best = min(current, key=lambda l: l["ms"]) if current else None
        old_best = min(older, key=lambda l: l["ms"]) if older else None
        for variant in sorted({l["variant"] for l in same if l["side"] == "ddpm"}):
            runs = [l for l in same if l["side"] == "ddpm" and l["variant"] == variant]
            ours = min(runs, key=lambda l: l["ms"])
            ratio = best["ms"] / ours["ms"] if best else None
            target = END_TO_END_TARGETS.get((bench, device)) if variant != "fp32" or device == "cpu" else None
            rows.append([f"{bench} {config} b{batch} {device}", variant,
                         f"{ours['ms']:.2f}" + (f" (best of {len(runs)} runs)" if len(runs) > 1 else ""),
                         f"{best['variant']} {best['ms']:.2f} (torch {best.get('torch', '?')})" if best else "-",
                         f"{ratio:.2f}x" if ratio else "-", verdict(ratio, target) if ratio else "",
                         f"{old_best['variant']} {old_best['ms']:.2f} ({old_best['ms'] / ours['ms']:.2f}x)"
                         if old_best else "-"])
    print("## End to end: the engine against PyTorch's fastest configuration\n")
    old = "older torch " + ", ".join(sorted(old_versions)) if old_versions else "older torch"
    table(["case", "engine", "engine ms", "PyTorch best (ms)", "vs PyTorch best", "target", f"{old} best (ms, engine vs it)"],
          rows)
    rows = [[f"{l['bench']} {l['config']} b{l['batch']} {l['device']}", f"{l['variant']} (torch {l.get('torch', '?')})",
             f"{l['ms']:.2f}" if "ms" in l else "skipped: " + l.get("skipped", "?")[:60]]
            for l in lines if l.get("side") == "pytorch" and "config" in l
            and l.get("bench") in ("train_step", "sample_step", "sample_run")]
    if rows:
        print("\nEvery PyTorch run:\n")
        table(["case", "variant", "ms"], rows)


def kernels(lines):
    rows = []
    for l in lines:
        if l.get("side") != "ddpm" or not ("of_copy_bandwidth" in l or "of_gemm_peak" in l):
            continue
        limit = "copy bandwidth" if "of_copy_bandwidth" in l else "bf16/f32 GEMM peak"
        fraction = l.get("of_copy_bandwidth", l.get("of_gemm_peak"))
        target = BANDWIDTH_TARGETS.get(l["bench"]) if l.get("streaming") else None
        detail = " ".join(str(l[k]) for k in ("shape", "impl", "mode", "noise", "tokens") if k in l)
        rows.append([l["bench"], detail, l.get("dtype", ""), f"{l['ms']:.3f}",
                     f"{fraction:.2f} of {limit}" if fraction is not None else "-",
                     verdict(fraction, target) if fraction is not None else ""])
    if rows:
        print("\n## Kernels against limits measured in the same run\n")
        table(["kernel", "case", "dtype", "ms", "achieved", "target"], rows)


def attention(lines):
    rows = []
    for ours in lines:
        if not (ours.get("side") == "ddpm" and ours.get("bench") == "attention_forward"
                and ours.get("impl") in ("fused", "backend", "tensor_core") and ours.get("dtype") == "bf16"):
            continue
        peers = [l for l in lines if l.get("side") == "pytorch" and l.get("bench") == "attention_forward"
                 and "ms" in l and (l.get("tokens"), l.get("batch"), l.get("heads"))
                 == (ours["tokens"], ours["batch"], ours["heads"])]
        if not peers:
            continue
        best = min(peers, key=lambda l: l["ms"])
        ratio = best["ms"] / ours["ms"]
        impl = ours["impl"] if ours["impl"] != "backend" else f"backend ({ours.get('backend_runs', '?')})"
        rows.append([f"{ours['tokens']} tokens, batch {ours['batch']}, {ours['heads']} head(s), {impl}", f"{ours['ms']:.3f}",
                     f"{best['variant']} {best['ms']:.3f}", f"{ratio:.2f}x",
                     verdict(ratio, ATTENTION_TARGET if ours["tokens"] == 256 else None)])
    if rows:
        print("\n## Attention forward (bf16): the engine's kernels against PyTorch's best SDPA backend\n")
        table(["shape", "engine ms", "PyTorch best (ms)", "vs PyTorch best", "target"], rows)


def memory(lines):
    """Peak device memory of the training step, and the largest batch, engine and PyTorch; the
    engine's bf16 step against PyTorch's leanest bf16 variant at the same batch."""
    GiB = 2 ** 30
    peaks = [l for l in lines if l.get("bench") == "train_step" and "peak_bytes" in l]
    largest = [l for l in lines if l.get("bench") == "largest_batch" and "largest_batch" in l]
    if not peaks and not largest:
        return
    print("\n## Device memory of the training step\n")
    rows = [[l["side"], l["variant"], l["batch"], f"{l['peak_bytes'] / GiB:.2f}", ""] for l in peaks]
    for ours in (l for l in peaks if l["side"] == "ddpm" and l["variant"] == "bf16_mixed"):
        theirs = [l for l in peaks if l["side"] == "pytorch" and "bf16" in l["variant"] and l["batch"] == ours["batch"]]
        if theirs:
            best = min(theirs, key=lambda l: l["peak_bytes"])
            ratio = ours["peak_bytes"] / best["peak_bytes"]
            rows.append(["engine / PyTorch", f"bf16_mixed / {best['variant']}", ours["batch"], f"{ratio:.2f}x",
                         "met (<= 1)" if ratio <= 1 else "NOT met (<= 1)"])
    rows += [[l["side"], l["variant"], f"largest: {l['largest_batch']} (fails at {l['first_failed'] or '-'})", "", ""]
             for l in largest]
    table(["side", "variant", "batch", "peak GiB", "target"], rows)


def into_docs(doc_path, table_path):
    """Replaces the block between the compare.sh gpu markers in doc_path by the table (appends
    the block if the markers are missing)."""
    begin, end = "<!-- compare.sh gpu: begin -->", "<!-- compare.sh gpu: end -->"
    with open(table_path) as f:
        body = re.sub(r"^## ", "### ", f.read().strip(), flags=re.M)  # sections of the block
    block = f"{begin}\n## GPU: engine against PyTorch (bench/compare.sh)\n\n{body}\n{end}"
    with open(doc_path) as f:
        doc = f.read()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    doc = pattern.sub(lambda _: block, doc) if pattern.search(doc) else doc.rstrip("\n") + "\n\n" + block + "\n"
    with open(doc_path, "w") as f:
        f.write(doc)


def table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--into":
        into_docs(sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) != 2:
        sys.exit("usage: compare_table.py results.jsonl | compare_table.py --into DOC.md TABLE.md")
    lines = load(sys.argv[1])
    end_to_end(lines)
    memory(lines)
    kernels(lines)
    attention(lines)


if __name__ == "__main__":
    main()

"""`gpt2rec encode`: precompute user and item embeddings (through the on-disk cache) and time it."""

from __future__ import annotations

import json
import re

from .data_options import add_data_options, data_config


def register(subparsers) -> None:
    p = subparsers.add_parser("encode", help="precompute user and item text embeddings", description=encode_cmd.__doc__)
    p.add_argument("--dataset", required=True, help="a MovieLens name (ml-100k, ...) or a dataset path")
    p.add_argument(
        "--lm",
        default="auto",
        help="hub ID, local folder, or offline alias gemma3-270m / minilm (auto: gpt2 if cached, else gemma3-270m)",
    )
    p.add_argument("--out", default=None, help="output folder (default: $GPT2REC_HOME/encode/<dataset>-<lm>)")
    p.add_argument(
        "--pooling", default="fields", choices=["fields", "mean", "last", "tokens"],
        help="fields (default: what l3ae and enhanced read, so their training finds these vectors cached) | "
        "mean (what basic reads) | last | tokens",
    )  # fmt: skip
    p.add_argument("--layer", type=int, default=-1, help="-1 = final output; else hidden_states index (default: -1)")
    p.add_argument("--max-length", type=int, default=64, help="max tokens per text (default: 64, as the models)")
    p.add_argument("--batch-size", type=int, default=64, help="texts per LM forward pass (default: 64)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA if present)")
    p.add_argument(
        "--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="LM dtype (default: float32)"
    )
    p.add_argument("--refresh", action="store_true", help="recompute even if the cache has the embeddings")
    p.add_argument("--no-limit", action="store_true", help="skip timing the bare model forward")
    p.add_argument(
        "--nproc", type=int, default=None,
        help="share the encoding among N processes (runs torchrun --nproc-per-node N; or launch torchrun yourself)",
    )  # fmt: skip
    add_data_options(p)
    p.set_defaults(func=encode_cmd)


def encode_cmd(args) -> int:
    """Render every user and item as a sentence, embed them with the language model, cache the vectors
    (the very entries `gpt2rec train` reads with the same LM, pooling and settings), and write
    encode.json (texts/s, and the ratio to the bare model forward on the same batches).
    Under torchrun (or with --nproc N) the ranks split the distinct texts and rank 0 writes the same
    cache entry and folder a single process would."""
    from .. import distributed as dist

    if args.nproc is not None and not dist.launched():
        return dist.launch(args.nproc, dist.without_nproc(args.argv))
    return dist.run_ranked(lambda device: _encode(args, str(device) if device else args.device), args.device)


def _encode(args, device) -> int:
    from .. import distributed as dist
    from ..data.home import home_dir
    from ..data.load import load_dataset
    from ..text.encoder import EncoderConfig, TextEncoder
    from ..text.offline import default_lm
    from ..text.precompute import encode_dataset

    lm = default_lm() if args.lm == "auto" else args.lm
    config = EncoderConfig(
        model=lm,
        pooling=args.pooling,
        layer=args.layer,
        max_length=args.max_length,
        batch_size=args.batch_size,
        device=device,
        dtype=args.dtype,
    )
    dataset = load_dataset(data_config(args))
    encoder = TextEncoder(config)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{dataset.name}-{lm}".strip("/"))[-80:]
    out = args.out or home_dir() / "encode" / slug
    report = encode_dataset(dataset, encoder, out, refresh=args.refresh, measure_limit=not args.no_limit)
    if dist.is_main():
        print(json.dumps(report, indent=2))
        print(f"wrote {out}")
    return 0

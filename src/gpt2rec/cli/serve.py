"""`gpt2rec serve RUN_DIR [--host 127.0.0.1] [--port 8000] [--api-key-env VAR]`: HTTP API and web page.

Endpoints under /v1 (OpenAPI docs at /docs), the page at /. Binds 127.0.0.1 by default; another
address needs --api-key-env (writes then need the key in the X-API-Key header).
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve a run folder over HTTP (API + web page)", description=__doc__)
    p.add_argument("run_dir", help="a folder written by `gpt2rec train`")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the API key for writes")
    p.add_argument("--device", help="cuda / cpu (default: the run's setting)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for scoring (default 1)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..serve.server import serve
    from .train import quiet_hub_progress

    quiet_hub_progress()  # no "Loading weights" bars in the server's log (at start, or an LM loaded later)
    serve(args.run_dir, args.host, args.port, args.api_key_env, args.device, args.threads)
    return 0

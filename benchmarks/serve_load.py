"""Load benchmark of `gpt2rec serve`: drives the running server on loopback with Debian's `wrk`.

    python benchmarks/serve_load.py RUN_DIR [--seconds 1:5,8:10,32:20] [--out benchmarks/results]

Starts `gpt2rec serve RUN_DIR` on 127.0.0.1 at a free port, warms it up, then runs wrk (1 thread,
a Lua script cycling through the run's users on GET /v1/users/{id}/recommendations?k=10) at each
concurrency for a bounded time, and a POST level (the batch endpoint, 8 users per body). Writes
throughput, p50/p95/p99 latency and errors to OUT/serve.json and a section to OUT/serve.md, beside
the in-process scoring throughput (the same Service, no HTTP) and the machine's load average.
Nothing leaves the machine: the server listens on 127.0.0.1 only and is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

LUA = """
local ids = {%(ids)s}
local n, i = #ids, 0
%(body)s
request = function()
  i = i %% n + 1
  %(request)s
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "seconds": %%.3f, "non2xx": %%d, "socket_errors": %%d, ' ..
    '"p50_ms": %%.3f, "p95_ms": %%.3f, "p99_ms": %%.3f, "max_ms": %%.3f}\\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3))
end
"""
GET = 'return wrk.format("GET", "/v1/users/" .. ids[i] .. "/recommendations?k=10")'
POST = (
    "local b = {} for j = 0, 7 do b[#b + 1] = ids[(i + j - 1) % n + 1] end\n"
    '  return wrk.format("POST", "/v1/recommendations", {["Content-Type"] = "application/json"}, '
    '\'{"k": 10, "user_ids": [\' .. table.concat(b, ",") .. \']}\')'
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc, timeout: float = 300) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/v1/health", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the server was not ready within {timeout} s")


def run_wrk(url: str, script: Path, connections: int, seconds: int) -> dict:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    res = json.loads(line[len("RESULT ") :])
    res["errors"] = res["non2xx"] + res["socket_errors"]
    res["requests_per_s"] = res["requests"] / res["seconds"]
    return res


def in_process(run_dir: str, users: list, seconds: float = 5.0) -> dict:
    """Recommendations/s of the Service itself (no HTTP): one user per call, and 32 per call."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import torch

    from gpt2rec.serve.service import load_service

    torch.set_num_threads(1)  # as the server (`gpt2rec serve --threads 1`)
    service = load_service(run_dir)
    idx = [service.run.user_index(u) for u in users]
    out = {}
    for batch in (1, 32):
        service.recommend_many(idx[:batch], 10)  # warm-up
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            chunk = [idx[(done + j) % len(idx)] for j in range(batch)]
            service.recommend_many(chunk, 10)
            done += batch
        out[f"batch_{batch}_recs_per_s"] = done / (time.perf_counter() - start)
    service.store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--seconds", default="1:5,8:10,32:20", help="concurrency:seconds pairs (GET)")
    parser.add_argument("--post-seconds", type=int, default=5, help="seconds of the POST batch level (c=8)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--note", default="", help="a sentence for the report (e.g. what else loaded the machine)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpt2rec", "serve", args.run_dir, "--host", "127.0.0.1", "--port", str(port)], env=env
    )
    try:
        health = wait_ready(url, proc)
        with urllib.request.urlopen(url + "/v1/users?limit=200") as r:
            users = [u["user_id"] for u in json.loads(r.read())]
        ids = ", ".join(json.dumps(u) for u in users)
        results = {"levels": []}
        with tempfile.TemporaryDirectory() as tmp:
            get_lua, post_lua = Path(tmp) / "get.lua", Path(tmp) / "post.lua"
            get_lua.write_text(LUA % {"ids": ids, "body": "", "request": GET})
            post_lua.write_text(LUA % {"ids": ids, "body": "", "request": POST})
            run_wrk(url, get_lua, 8, 2)  # warm-up
            for pair in args.seconds.split(","):
                conc, secs = (int(x) for x in pair.split(":"))
                res = run_wrk(url, get_lua, conc, secs)
                res.update(endpoint="GET /v1/users/{id}/recommendations?k=10", concurrency=conc, users_per_request=1)
                res["recommendations_per_s"] = res["requests_per_s"]
                results["levels"].append(res)
                print(json.dumps(res), flush=True)
            if args.post_seconds:
                res = run_wrk(url, post_lua, 8, args.post_seconds)
                res.update(endpoint="POST /v1/recommendations (8 users)", concurrency=8, users_per_request=8)
                res["recommendations_per_s"] = res["requests_per_s"] * 8
                results["levels"].append(res)
                print(json.dumps(res), flush=True)
        with urllib.request.urlopen(url + "/v1/health") as r:
            after = json.loads(r.read())
    finally:
        proc.terminate()
        proc.wait(30)
    results["in_process"] = in_process(args.run_dir, users)
    results["server"] = {k: health[k] for k in ("model", "lm", "users", "items")}
    results["batching"] = {"model_calls": after["batches"], "requests": after["batched_requests"]}
    results["total_requests"] = sum(x["requests"] for x in results["levels"])
    results["total_errors"] = sum(x["errors"] for x in results["levels"])
    results["machine"] = {
        "cpus": os.cpu_count(),
        "load_average_after": os.getloadavg(),
        "python": platform.python_version(),
    }
    results["command"] = "python benchmarks/serve_load.py " + " ".join(sys.argv[1:])
    results["note"] = args.note
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".serve.json.tmp"
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, out / "serve.json")
    write_report(results, out / "serve.md")
    print(f"wrote {out / 'serve.json'} and {out / 'serve.md'}")


def write_report(r: dict, path: Path) -> None:
    s, load = r["server"], r["machine"]["load_average_after"]
    lines = [
        "# Serving load benchmark (`gpt2rec serve`)",
        "",
        f"Model: {s['model']} (LM {s['lm']}), {s['users']} users, {s['items']} items. Client: `wrk` (1 thread, "
        f"Lua script) on the same {r['machine']['cpus']} CPUs as the server (one uvicorn process), loopback only. "
        f"Load average after the run: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min).",
        "",
        "| endpoint | concurrency | requests | errors | req/s | recommendations/s | p50 ms | p95 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for x in r["levels"]:
        lines.append(
            f"| {x['endpoint']} | {x['concurrency']} | {x['requests']:,} | {x['errors']} | {x['requests_per_s']:,.0f} | "
            f"{x['recommendations_per_s']:,.0f} | {x['p50_ms']:.1f} | {x['p95_ms']:.1f} | {x['p99_ms']:.1f} |"
        )
    ip, b = r["in_process"], r["batching"]
    lines += [
        "",
        f"Total: {r['total_requests']:,} requests, {r['total_errors']} errors. Micro-batching: "
        f"{b['requests']:,} user requests were scored in {b['model_calls']:,} model calls.",
        f"In-process scoring (the same `Service`, no HTTP): {ip['batch_1_recs_per_s']:,.0f} recommendations/s one "
        f"user per call, {ip['batch_32_recs_per_s']:,.0f} with 32 users per call.",
        "",
        f"Command: `{r['command']}`",
        "",
    ]
    if r.get("note"):
        lines += [r["note"], ""]
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)


if __name__ == "__main__":
    main()

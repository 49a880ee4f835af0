"""`gpt2rec serve`: an HTTP API and a web page over one run folder (needs the `serve` extra).

Modules: `service.py` (the answers, no HTTP; `derived.py`: what it derives once from the run's data,
`new_ids.py`: IDs of added items), `batcher.py` (micro-batching), `schemas.py` (request
bodies), `app.py` (routes and errors), `server.py` (binding rules and uvicorn), `static/` (the page).
"""

"""pixie console: a local web app (Starlette on uvicorn) to start, watch and inspect runs, on the
warm embedded engine or on a deployed stack. `pixie ui` starts it (server.py)."""

"""`sdr-assets serve-api`: a read-only HTTP API over one data root (FastAPI + uvicorn; no dagster).

- :mod:`sdr_assets.api.app`: the endpoints (``create_app``);
- :mod:`sdr_assets.api.params`: query-parameter checks (a bad value is a 400 naming it);
- :mod:`sdr_assets.api.server`: the command's body (bind, serve until Ctrl-C).

All SQL lives in ``store.queries``; the SigMF archive is ``sigmf_export.SpanArchive``.
"""

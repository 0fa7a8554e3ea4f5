"""Serving the reviewer: privacy settings first, then the Gradio app behind its queue.

    serve(host="127.0.0.1", port=7860, model=ModelSpec("default"), login=False)

Contracts are confidential, so before Gradio is imported this module turns off everything
that could talk to the outside: Gradio's analytics and version check, Hugging Face
telemetry and downloads, the share tunnel (never requested) and web fonts (the theme uses
system fonts). Uploads and exports live in a private temporary folder (mode 0700) removed
when the server stops; Gradio's own cache there is swept hourly.

Login (for a shared server) is Gradio's basic auth: the password comes only from the
environment (`CONTRACT_REVIEW_APP_PASSWORD`, user name `CONTRACT_REVIEW_APP_USER`, default
"reviewer"), never from the command line, where `ps` would show it.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile

PASSWORD_ENV = "CONTRACT_REVIEW_APP_PASSWORD"
USER_ENV = "CONTRACT_REVIEW_APP_USER"
LOOPBACK = ("127.0.0.1", "localhost", "::1")

PRIVACY_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "GRADIO_SHARE": "False",
}


def private_environment() -> str:
    """Set the privacy variables and a private temp folder for Gradio; call before importing gradio."""
    for key, value in PRIVACY_ENV.items():
        os.environ[key] = value
    if not os.environ.get("GRADIO_TEMP_DIR"):
        tmp = tempfile.mkdtemp(prefix="contract-review-")  # mkdtemp makes it 0700
        os.environ["GRADIO_TEMP_DIR"] = tmp
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return os.environ["GRADIO_TEMP_DIR"]


def auth_from_env(env: dict | None = None) -> tuple[str, str]:
    env = os.environ if env is None else env
    password = env.get(PASSWORD_ENV, "")
    if len(password) < 8:
        raise ValueError(f"--login needs a password of 8 or more characters in the environment: "
                         f"export {PASSWORD_ENV}=... (and optionally {USER_ENV}, default 'reviewer')")
    return env.get(USER_ENV) or "reviewer", password


def serve(host: str = "127.0.0.1", port: int = 7860, model=None, login: bool = False, max_mb: float = 20.0,
          concurrency: int = 1, preload: bool = True, quiet: bool = False) -> None:
    private_environment()
    from .ingest import DEFAULT_MAX_BYTES
    from contract_review.predictor import ModelSpec

    from .predictors import load_predictor

    model = model or ModelSpec()
    auth = auth_from_env() if login else None
    if host not in LOOPBACK and not login:
        logging.getLogger("contract_review.app").warning(
            "serving on %s without --login: anyone who can reach this port can read uploaded contracts", host)
    if preload:  # fail now, with the message, rather than at the first lawyer's upload
        load_predictor(model)

    from .ui import build_app

    max_bytes = int(max_mb * 1024 * 1024) if max_mb else DEFAULT_MAX_BYTES
    demo = build_app(model, max_bytes=max_bytes, review_concurrency=concurrency)
    demo.queue(default_concurrency_limit=concurrency, max_size=64)
    demo.launch(
        server_name=host, server_port=port, auth=auth, share=False, show_error=True, quiet=quiet,
        ssr_mode=False, footer_links=["api", "settings"], enable_monitoring=False, mcp_server=False,
        max_file_size=max(2 * max_bytes, 50 * 1024 * 1024),  # ours is the limit users meet, with a clear message
        theme=demo.cr_theme, css=demo.cr_css, auth_message="Contract review: sign in",
    )

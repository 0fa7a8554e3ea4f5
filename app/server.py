"""Serving the reviewer: privacy settings first, then the Gradio app behind its guards.

    serve(AppConfig(default=ModelSpec("default")), host="127.0.0.1", port=7860, login=False)

Contracts are confidential, so before Gradio is imported this module turns off everything
that could talk to the outside: Gradio's analytics and version check, Hugging Face
telemetry and downloads, the share tunnel (never requested) and web fonts (the theme uses
system fonts). Uploads and exports live in a private temporary folder (mode 0700) removed
when the server stops; an upload is deleted as soon as it is read, a page's exports when
the page closes (`app.sessions`), and Gradio's cache there is swept every 10 minutes.

In front of Gradio's routes (`app.guard`): a file in that folder is served only to the
browser that uploaded or made it, and sign-in attempts are throttled with back-off. Login
(for a shared server) is Gradio's: the password comes only from the environment
(`CONTRACT_REVIEW_APP_PASSWORD`, user name `CONTRACT_REVIEW_APP_USER`, default "reviewer"),
never from the command line, where `ps` would show it.

The log says what happened in counts and seconds, never a contract's name or text, and an
error as one line with its type; `--debug` adds tracebacks (which may name files).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path

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

log = logging.getLogger("contract_review.app")


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


def configure_logging(debug: bool) -> None:
    """The app's log on stderr: one line per event; Gradio's tracebacks only with --debug."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    app_log = logging.getLogger("contract_review")
    if not app_log.handlers:
        app_log.addHandler(handler)
    app_log.setLevel(logging.DEBUG if debug else logging.INFO)
    app_log.propagate = False


def serve(config=None, host: str = "127.0.0.1", port: int = 7860, login: bool = False, preload: bool = True,
          quiet: bool = False) -> None:
    tmp = Path(private_environment())
    configure_logging(getattr(config, "debug", False))
    from .guard import FileOwners, LoginThrottle, guard_middleware
    from .predictors import load_predictor
    from .service import AppConfig, ReviewService
    from .sessions import Sessions

    config = config or AppConfig()
    auth = auth_from_env() if login else None
    if host not in LOOPBACK and not login:
        log.warning("serving on %s without --login: anyone who can reach this port can read uploaded contracts", host)
    if preload:  # fail now, with the message, rather than at the first lawyer's upload
        load_predictor(config.default)

    from .ui import build_app

    files = FileOwners(tmp)
    sessions = Sessions(tmp / "sessions", files)
    atexit.register(sessions.close_all)
    service = ReviewService(config, files, sessions)
    demo = build_app(service)
    # reviews in progress at once are the review event's concurrency; the rest (filters, exports) run freely
    demo.queue(default_concurrency_limit=config.concurrency, max_size=64)
    log.info("serving on %s:%d: %d review(s) at once, %s per review, uploads up to %.0f MB", host, port,
             config.concurrency, f"{config.time_limit:.0f} s" if config.time_limit else "no time limit",
             config.max_bytes / 2**20)
    demo.launch(
        server_name=host, server_port=port, auth=auth, share=False, show_error=True, quiet=quiet,
        ssr_mode=False, footer_links=["api", "settings"], enable_monitoring=False, mcp_server=False,
        max_file_size=max(2 * config.max_bytes, 50 * 1024 * 1024),  # ours is the limit users meet, with a message
        theme=demo.cr_theme, css=demo.cr_css, auth_message="Contract review: sign in",
        app_kwargs={"middleware": guard_middleware(files, LoginThrottle() if login else None)},
    )

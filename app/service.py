"""What the page and the API do, without Gradio: choose a model, read an upload, run a review.

    service = ReviewService(AppConfig(default=ModelSpec(), max_bytes=...), files, sessions)
    contract = service.read_upload(path, name, owner)   # read once, then the file is deleted
    review = service.review(contract, "default", represent="second_party", anyway=False, job=Job())

Models are offered by name only: the served model, the shipped reviewer alone, the rules,
and, only where the operator enables it (`serve --models-dir DIR`), the reviewer folders
found under that one folder, listed by folder name. No caller of the page or the API can
name a server path, so nobody can probe the server's folders or load a model from one.

Errors a user can act on come back as `UserFacing` with the message to show; anything else
is logged as one line without the contract's name or text (the traceback only with
`serve --debug`) and reported to the user as an unexpected error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from contract_review.predictor import DEFAULT, ModelSpec, PredictorError, describe_model, parse_model
from contract_review.reviewer.heads import is_reviewer_folder

from .guard import FileOwners, remove_upload
from .ingest import DEFAULT_MAX_BYTES, Contract, IngestError, read_contract, read_text
from .jobs import FairModel, Job, JobPredictor, ReviewStopped
from .predictors import load_predictor
from .review import NeedsConfirmation, Review, review_contract
from .sessions import Sessions

log = logging.getLogger("contract_review.app")

SERVED = "served"  # the choice for a server started with another model than the three below
FOLDER_PREFIX = "folder:"
NAMED = ((f"CPU default: SmolLM2-135M + shipped reviewer adapter, mixed with TF-IDF", DEFAULT),
         ("Reviewer adapter alone (no TF-IDF)", "reviewer"),
         ("Rules only (no model; instant, rough)", "rules"))


class UserFacing(Exception):
    """An error the user can act on; `question` is True when the answer is to review anyway."""

    def __init__(self, message: str, question: bool = False):
        super().__init__(message)
        self.question = question


@dataclass(frozen=True)
class AppConfig:
    default: ModelSpec = ModelSpec()
    max_bytes: int = DEFAULT_MAX_BYTES
    time_limit: float | None = 600.0  # seconds per review on the server; None: none
    concurrency: int = 2  # reviews in progress at once (their batches take turns at the model)
    models_dir: Path | None = None  # where an operator keeps more reviewer folders; None: no folder choice
    debug: bool = False  # tracebacks in the log

    def __post_init__(self) -> None:
        if self.max_bytes <= 0:
            raise ValueError("the upload limit must be positive")
        if self.concurrency < 1:
            raise ValueError("--concurrency must be 1 or more")
        if self.time_limit is not None and self.time_limit <= 0:
            raise ValueError("--time-limit must be positive (seconds)")
        if self.models_dir is not None and not Path(self.models_dir).is_dir():
            raise ValueError(f"--models-dir {self.models_dir}: no such folder")


class ReviewService:
    def __init__(self, config: AppConfig, files: FileOwners, sessions: Sessions, fair: FairModel | None = None):
        self.config, self.files, self.sessions = config, files, sessions
        self.fair = fair or FairModel()

    # -- models ------------------------------------------------------------------------------------
    def model_choices(self) -> list[tuple[str, str]]:
        """(label, value) of every model a user may pick; values are names, never paths."""
        out = list(NAMED)
        d = self.config.default
        if (d.model, d.adapter) not in {(v, None) for _, v in NAMED}:
            out.insert(0, (f"{describe_model(d)} (this server's model)", SERVED))
        for name in self._folders():
            out.append((f"Reviewer folder '{name}' (from the server's models folder)", FOLDER_PREFIX + name))
        return out

    def default_choice(self) -> str:
        d = self.config.default
        return d.model if (d.model, d.adapter) in {(v, None) for _, v in NAMED} else SERVED

    def _folders(self) -> list[str]:
        root = self.config.models_dir
        if root is None:
            return []
        return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and is_reviewer_folder(p))

    def choose(self, value: str | None) -> ModelSpec:
        value = value or self.default_choice()
        if value == SERVED:
            return self.config.default
        if value in {v for _, v in NAMED}:
            return parse_model(value)
        if value.startswith(FOLDER_PREFIX) and value[len(FOLDER_PREFIX):] in self._folders():
            return parse_model(DEFAULT, Path(self.config.models_dir) / value[len(FOLDER_PREFIX):])
        offered = ", ".join(v for _, v in self.model_choices())
        raise UserFacing(f"Unknown model {value!r}: choose one of {offered}")

    # -- input -------------------------------------------------------------------------------------
    def read_upload(self, path: str | None, name: str | None, owner: str) -> Contract:
        """Read an uploaded file once and delete it (and Gradio's folder for it) at once, whatever happens.
        A file in the server's folder that this owner did not upload is refused like a missing one, and left
        alone: it is not the caller's to delete."""
        if not path:
            raise UserFacing("Upload a contract or paste its text first.")
        shown = name or Path(path).name
        ours = self.files.under_root(path)
        if ours and self.files.owner(path) != owner:
            raise UserFacing(f"{shown}: the file is gone (uploads are read once); upload it again")
        try:
            return read_contract(path, max_bytes=self.config.max_bytes, name=shown)
        except IngestError as exc:
            raise UserFacing(str(exc)) from None
        finally:
            if ours:
                remove_upload(path, self.files)

    def read_pasted(self, text: str | None) -> Contract:
        try:
            return read_text(text or "")
        except IngestError as exc:
            raise UserFacing(str(exc)) from None

    # -- the review --------------------------------------------------------------------------------
    def review(self, contract: Contract, model: str | None, represent: str | None, anyway: bool, job: Job) -> Review:
        choice = self.choose(model)
        try:
            predictor = load_predictor(choice)
            review = review_contract(contract, JobPredictor(predictor, job, self.fair), job.progress,
                                     model_choice=describe_model(choice), represent=represent, anyway=anyway)
        except NeedsConfirmation as exc:
            raise UserFacing(str(exc), question=True) from None
        except ReviewStopped as exc:
            log.info("review stopped (%s) after %d of %d clauses, %.1f s", exc.why, job.done, job.total, job.elapsed)
            raise UserFacing(str(exc)) from None
        except PredictorError as exc:
            raise UserFacing(str(exc)) from None
        except ValueError as exc:  # a represented party the contract does not name
            if "is not a party of this contract" in str(exc):
                raise UserFacing(str(exc)) from None
            raise
        job.stage = "done"
        # counts and time only: contract text and names stay out of the logs
        log.info("reviewed a %s of %d characters: %d clauses in %.1f s", contract.kind, len(contract.text),
                 len(review.findings), review.seconds["total"])
        return review

    def unexpected(self, exc: BaseException, what: str = "review") -> str:
        """Log an unexpected error as one line (its type; the traceback only with --debug); the user's message."""
        if self.config.debug:
            log.exception("%s failed", what)
        else:
            log.error("%s failed: %s (start the server with --debug for the traceback)", what, type(exc).__name__)
        return (f"The {what} failed unexpectedly ({type(exc).__name__}). Nothing was kept; try again, and tell "
                "the server's operator if it happens again.")


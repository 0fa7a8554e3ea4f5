"""The Gradio reviewer: upload or paste a contract, read its review, correct labels, export.

`build_app(service)` returns the Blocks; `app.server.serve()` launches it. The page, top to
bottom: the input row (file or pasted text, model, the party you act for, Review / Cancel /
Review anyway), a status line with the review's progress in clauses, the summary, then tabs:
Clauses (a filterable, sortable table; a row shows the clause in context and the form to
correct its labels), Contract (the whole text, risky clauses highlighted by level) and Export
(DOCX/PDF report, CSV, JSON; saving the review on this machine).

An upload is read the moment it arrives and deleted then; the page keeps its text, so Review
can run again (another model, another represented party) without uploading again. A review
runs in a worker thread while the page shows its progress; Cancel, or closing the page, stops
it before its next batch of clauses. A text in another language or that does not read like a
contract is not reviewed until the user answers the question with "Review anyway". Exports
go to the page's own folder (`app.sessions`), are served to this browser only (`app.guard`)
and are deleted when the page closes. Only corrections (at once) and reviews the user saves
are kept, under `corrections.app_dir()`. The HTML is built from escaped text (`app.ui_html`).
"""

from __future__ import annotations

import html
import threading
from pathlib import Path

import gradio as gr

from contract_review.taxonomy import load_taxonomy

from . import export as exporter
from .corrections import CorrectionStore, app_dir, correction_from, send_to_label_studio
from .guard import owner_of
from .jobs import Job
from .review import Review, apply_correction, refresh_summary
from .service import ReviewService, UserFacing
from .ui_html import (ALL, CSS, NEUTRAL, SORTS, context_html, contract_html, filter_choices, party_choices,
                      progress_html, represent_choices, styled, summary_html, table, warnings_html)

POLL_S = 0.5  # how often the page's progress line is refreshed during a review


def read_once(upload: gr.File) -> gr.File:
    """Make a filepath gr.File hand its event the uploaded path and nothing more. Gradio's own (6.31) makes an
    empty temporary file in its cache for every file an event receives and never removes it: one file left
    behind per upload. A file of a type it refuses is deleted at once. (The instance is patched, not
    subclassed: Gradio writes a .pyi stub next to any module that subclasses a component.)"""

    def process(f):
        from gradio.utils import NamedString
        from gradio_client import utils as client_utils

        if upload.file_types and not client_utils.is_valid_file(f.path, upload.file_types):
            Path(f.path).unlink(missing_ok=True)
            raise gr.Error(f"{Path(f.path).name}: upload a .pdf, .docx or .txt file", print_exception=False)
        return NamedString(f.path)

    upload._process_single_file = process
    return upload


def _represent(value: str | None) -> str | None:
    return None if value in (None, "", NEUTRAL) else value


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or ""


def build_app(service: ReviewService, store: CorrectionStore | None = None) -> gr.Blocks:
    tax = load_taxonomy()
    store = store or CorrectionStore(app_dir() / "corrections.jsonl")
    type_choices = [(f"{c.name} ({c.id})", c.id) for c in tax.clause_types]
    concurrency = service.config.concurrency

    def run_job(contract, model, represent, anyway, job: Job, session: str) -> dict:
        """Run one review in a worker thread; the result or the error in the returned dict when it ends."""
        out: dict = {}

        def work():
            try:
                out["review"] = service.review(contract, model, _represent(represent), anyway, job)
            except UserFacing as exc:
                out["error"] = exc
            except Exception as exc:  # noqa: BLE001 -- reported to the user as unexpected, logged in one line
                out["error"] = UserFacing(service.unexpected(exc))
            finally:
                service.sessions.finish(session, job)

        service.sessions.start(session, job)
        out["thread"] = threading.Thread(target=work, name=f"review-{job.id}", daemon=True)
        out["thread"].start()
        return out

    def on_upload(file_path, request: gr.Request):
        """Read the upload now and delete it: its text stays with the page for as many reviews as wanted."""
        if not file_path:
            return None, "", gr.update(choices=represent_choices(None), value=NEUTRAL)
        try:
            contract = service.read_upload(file_path, Path(file_path).name, owner_of(request))
        except UserFacing as exc:
            return None, f"**Could not read the file:** {html.escape(str(exc))}", gr.update()
        except Exception as exc:  # noqa: BLE001
            return None, f"**Could not read the file:** {html.escape(service.unexpected(exc, 'upload'))}", gr.update()
        from contract_review.annotation.parties import contract_parties

        names = contract_parties(contract.text).names()
        pages = f", {contract.pages} pages" if contract.pages else ""
        status = (f"Read **{html.escape(contract.name)}** ({contract.kind}{pages}, {len(contract.text):,} characters). "
                  "Choose the party you act for if you wish, then **Review**.")
        return contract, status, gr.update(choices=represent_choices(names), value=NEUTRAL)

    def outputs_for(review: Review) -> dict:
        risks, types, bearers = filter_choices(review)
        s = review.summary
        verdict = (f"**{s['risk_clauses']} flagged** (medium or high risk)" if review.assessed
                   else "**not assessed** (see the warning)")
        status = f"Reviewed **{html.escape(review.contract['name'])}**: {s['clauses']} clauses, {verdict}."
        return {review_state: review, status_md: status, summary: summary_html(review), grid: styled(table(review)),
                risk_f: gr.update(choices=risks, value=ALL), type_f: gr.update(choices=types, value=ALL),
                party_f: gr.update(choices=bearers, value=ALL), contract_view: contract_html(review),
                context: '<div class="cr-muted">Click a row of the table to see the clause in context and '
                         'correct it.</div>', export_file: gr.update(value=None), selected: None,
                c_party: gr.update(choices=party_choices(review), value=None),
                c_bearer: gr.update(choices=party_choices(review), value=None),
                represent: gr.update(choices=represent_choices(review.parties))}

    def idle(extra: dict) -> dict:
        return {review_btn: gr.update(interactive=True), cancel_btn: gr.update(visible=False), progress: "", **extra}

    def on_review(contract, pasted, model, party, anyway_flag, request: gr.Request):
        session = _session(request)
        try:
            contract = contract or service.read_pasted(pasted)
        except UserFacing as exc:
            yield idle({status_md: f"**Could not review:** {html.escape(str(exc))}", anyway_btn: gr.update(visible=False)})
            return
        job = Job(time_limit=service.config.time_limit)
        run = run_job(contract, model, party, bool(anyway_flag), job, session)
        yield {review_btn: gr.update(interactive=False), cancel_btn: gr.update(visible=True),
               anyway_btn: gr.update(visible=False), status_md: "",
               progress: progress_html(job, contract.name, service.fair.waiting)}
        try:
            while run["thread"].is_alive():
                run["thread"].join(POLL_S)
                yield {progress: progress_html(job, contract.name, max(0, service.fair.waiting - 1))}
        finally:
            if run["thread"].is_alive():  # the page went away mid-review: nobody will read it
                job.cancel()
        error = run.get("error")
        if error is not None:
            message = f"**Not reviewed:** {html.escape(str(error))}"
            yield idle({status_md: message if not error.question else warnings_html([str(error)]),
                        anyway_btn: gr.update(visible=error.question)})
            return
        yield idle({**outputs_for(run["review"]), anyway_btn: gr.update(visible=False)})

    def on_cancel(request: gr.Request):
        n = service.sessions.cancel(_session(request))
        return "Cancelling the review…" if n else "No review is running."

    def on_close(request: gr.Request):
        service.sessions.close(_session(request))

    def api_review(file_path, pasted, model, party, anyway, request: gr.Request) -> dict:
        """The review as JSON: the same object `contract-review review` writes."""
        job = Job(time_limit=service.config.time_limit)
        session = _session(request)
        try:
            contract = (service.read_upload(file_path, Path(file_path).name, owner_of(request)) if file_path
                        else service.read_pasted(pasted))
            service.sessions.start(session, job)
            return service.review(contract, model, _represent(party), bool(anyway), job).to_dict()
        except UserFacing as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception as exc:  # noqa: BLE001
            raise gr.Error(service.unexpected(exc), print_exception=False) from None
        finally:
            service.sessions.finish(session, job)

    def on_represent(review, party):
        if review is None:
            return gr.update(), gr.update()
        try:
            refresh_summary(review, represent=_represent(party) or "")
        except ValueError as exc:
            return review, gr.update(value=f"**{html.escape(str(exc))}**")
        return review, summary_html(review)

    def on_filter(review, risk, ctype, party, sort):
        return styled(table(review, risk, ctype, party, sort))

    def on_select(review, evt: gr.SelectData):
        if review is None or evt.row_value is None:
            return (gr.update(),) * 8
        index = int(evt.row_value[0])
        f = review.finding(index)
        return (index, context_html(review, index), f"**Correct {html.escape(f.where)}** (the labels below are its "
                "current ones)", gr.update(value=list(f.clause_types)), gr.update(value=f.party),
                gr.update(value=f.risk), gr.update(value=f.risk_to), gr.update(value=f.reason))

    def on_correct(review, index, types, party, risk, bearer, reason, risk_f_, type_f_, party_f_, sort_,
                   request: gr.Request):
        if review is None or not index:
            return (review, "Select a clause in the table first.", gr.update(), gr.update(), gr.update(), gr.update())
        try:
            f = apply_correction(review, int(index), types or [], party, risk, reason, tax, risk_to=bearer or None)
        except ValueError as exc:
            return (review, f"**Not saved:** {html.escape(str(exc))}", gr.update(), gr.update(), gr.update(),
                    gr.update())
        store.add(correction_from(review, f, reviewer=getattr(request, "username", None) or ""))
        pending = len(store.unsent())
        msg = (f"Saved the correction of {html.escape(f.where)} ({f.risk} risk, {', '.join(f.type_names)}, borne by "
               f"{html.escape(f.risk_to_name)}) to `{store.path}`. {pending} correction(s) not yet sent to Label "
               "Studio.")
        return (review, msg, summary_html(review), styled(table(review, risk_f_, type_f_, party_f_, sort_)),
                context_html(review, f.index), contract_html(review, f.index))

    def on_send():
        from contract_review.annotation.label_studio import ClientSettings, LabelStudioClient, LabelStudioError

        if not store.unsent():
            return "No corrections waiting to be sent."
        try:
            with LabelStudioClient(ClientSettings.from_env(tries=2)) as client:
                r = send_to_label_studio(store, client)
        except (LabelStudioError, RuntimeError) as exc:
            return f"**Not sent** (the corrections stay saved here): {html.escape(str(exc))}"
        return (f"Sent {r.sent} correction(s) to Label Studio project {r.project_id} as annotations; "
                "`contract-review annotate pull` brings them into the dataset.")

    def on_export(review, fmt, request: gr.Request):
        if review is None:
            return None, "Review a contract first."
        owner, session = owner_of(request), _session(request)
        try:
            path = exporter.write_exports(review, service.sessions.folder(session, owner), [fmt])[fmt]
        except Exception as exc:  # noqa: BLE001
            return None, f"**Not exported:** {html.escape(service.unexpected(exc, 'export'))}"
        service.sessions.keep(session, path, owner)
        notes = exporter.export_warnings(review, fmt)
        return str(path), warnings_html(notes) if notes else f"The {fmt.upper()} file is ready below."

    def on_save(review):
        if review is None:
            return "Review a contract first."
        folder = app_dir() / "reviews" / review.contract["doc_id"]
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        (folder / "review.json").write_bytes(exporter.to_json(review))
        (folder / "contract.txt").write_text(review.text, encoding="utf-8")
        exporter.write_exports(review, folder, ["docx"])
        return f"Saved the review, the contract text and a report in `{folder}`."

    theme = gr.themes.Default(primary_hue="blue", font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])  # no web fonts: nothing leaves the machine
    with gr.Blocks(title="Contract review", delete_cache=(600, 900)) as demo:
        demo.cr_theme, demo.cr_css = theme, CSS  # server.py passes them to launch()
        review_state, contract_state, selected = gr.State(None), gr.State(None), gr.State(None)
        anyway_flag = gr.State(False)
        gr.Markdown("# Contract review\nUpload a contract (PDF with a text layer, Word .docx or text) or paste it. "
                    "Each clause gets its type, who it obliges, who bears its risk and how severely, with the "
                    "reason in the clause's own terms. The contract stays on this machine; uploads are deleted once "
                    "read, and files made here when you close the page.")
        with gr.Row():
            with gr.Column(scale=3):
                upload = read_once(gr.File(label="Contract file (.pdf, .docx, .txt)",
                                             file_types=[".pdf", ".docx", ".txt"], type="filepath", elem_id="upload"))
                with gr.Accordion("…or paste the contract's text", open=False):
                    pasted = gr.Textbox(lines=8, max_lines=20, show_label=False, elem_id="paste",
                                        placeholder="Paste the contract here")
            with gr.Column(scale=2):
                model = gr.Radio(service.model_choices(), value=service.default_choice(), label="Model",
                                 elem_id="model")
                represent = gr.Dropdown(represent_choices(None), value=NEUTRAL, label="I act for",
                                        elem_id="represent", allow_custom_value=False)
                with gr.Row():
                    review_btn = gr.Button("Review", variant="primary", elem_id="review-btn")
                    cancel_btn = gr.Button("Cancel review", variant="stop", visible=False, elem_id="cancel-btn")
                    anyway_btn = gr.Button("Review anyway", visible=False, elem_id="anyway-btn")
        progress = gr.HTML("", elem_id="progress")
        status_md = gr.Markdown("", elem_id="status")
        summary = gr.HTML("", elem_id="summary")
        with gr.Tabs():
            with gr.Tab("Clauses", id="clauses"):
                with gr.Row():
                    risk_f = gr.Dropdown([ALL], value=ALL, label="Risk", elem_id="filter-risk")
                    type_f = gr.Dropdown([ALL], value=ALL, label="Clause type", elem_id="filter-type")
                    party_f = gr.Dropdown([ALL], value=ALL, label="Risk borne by", elem_id="filter-party")
                    sort = gr.Dropdown(list(SORTS), value=SORTS[0], label="Sort by", elem_id="sort")
                grid = gr.Dataframe(table(None), interactive=False, wrap=True, elem_id="clause-table", max_height=640,
                                    column_widths=["4%", "12%", "7%", "13%", "13%", "11%", "20%", "20%"])
                with gr.Row():
                    with gr.Column(scale=3):
                        context = gr.HTML("", elem_id="context")
                    with gr.Column(scale=2):
                        form_title = gr.Markdown("**Correct a clause**: click a row first", elem_id="correct-title")
                        c_types = gr.Dropdown(type_choices, multiselect=True, label="Clause types",
                                              elem_id="correct-types")
                        with gr.Row():
                            c_party = gr.Dropdown(party_choices(None), value=None, label="Obliges",
                                                  elem_id="correct-party")
                            c_risk = gr.Dropdown(list(tax.risk_levels), value=None, label="Risk",
                                                 elem_id="correct-risk")
                            c_bearer = gr.Dropdown(party_choices(None), value=None, label="Risk borne by",
                                                   elem_id="correct-bearer")
                        c_reason = gr.Textbox(label="Reason (one sentence)", lines=2, elem_id="correct-reason")
                        save_btn = gr.Button("Save correction", variant="primary", elem_id="save-correction")
                        correct_msg = gr.Markdown("", elem_id="correct-status")
                        send_btn = gr.Button("Send saved corrections to Label Studio", size="sm", elem_id="send-ls")
            with gr.Tab("Contract", id="contract"):
                contract_view = gr.HTML("", elem_id="contract")
            with gr.Tab("Export", id="export"):
                gr.Markdown("Reports cite every finding by the contract's own numbering and quote its clause. Files "
                            "made here are served to this page only and deleted when you close it; **Save review** "
                            "keeps the review on this machine.")
                with gr.Row():
                    exp_docx = gr.Button("Word report (.docx)", elem_id="export-docx")
                    exp_pdf = gr.Button("PDF report", elem_id="export-pdf")
                    exp_csv = gr.Button("CSV", elem_id="export-csv")
                    exp_json = gr.Button("JSON", elem_id="export-json")
                export_msg = gr.HTML("", elem_id="export-status")
                export_file = gr.File(label="Download", interactive=False, elem_id="export-file")
                save_review_btn = gr.Button("Save review on this machine", elem_id="save-review")
                save_msg = gr.Markdown("", elem_id="save-status")
        # API only: the review as JSON (gradio_client: Client(url).predict(..., api_name="/review"))
        api_json = gr.JSON(visible=False)
        api_btn = gr.Button(visible=False)
        api_model, api_party = gr.Textbox(visible=False), gr.Textbox(visible=False)  # checked by the service
        api_anyway = gr.Checkbox(visible=False)

        upload.upload(on_upload, upload, [contract_state, status_md, represent], api_visibility="private",
                      concurrency_limit=None)
        upload.clear(lambda: (None, ""), None, [contract_state, status_md], api_visibility="private", queue=False)
        review_outputs = [review_state, status_md, summary, grid, risk_f, type_f, party_f, contract_view, context,
                          export_file, selected, c_party, c_bearer, represent, review_btn, cancel_btn, anyway_btn,
                          progress]
        review_inputs = [contract_state, pasted, model, represent, anyway_flag]
        review_btn.click(lambda: False, None, anyway_flag, queue=False, api_visibility="private").then(
            on_review, review_inputs, review_outputs, concurrency_limit=concurrency, concurrency_id="review",
            api_visibility="private", show_progress="hidden")
        anyway_btn.click(lambda: True, None, anyway_flag, queue=False, api_visibility="private").then(
            on_review, review_inputs, review_outputs, concurrency_limit=concurrency, concurrency_id="review",
            api_visibility="private", show_progress="hidden")
        cancel_btn.click(on_cancel, None, status_md, api_visibility="private", queue=False)
        demo.unload(on_close)
        api_btn.click(api_review, [upload, pasted, api_model, api_party, api_anyway], api_json, api_name="review",
                      concurrency_limit=concurrency, concurrency_id="review")
        represent.change(on_represent, [review_state, represent], [review_state, summary], api_visibility="private",
                         concurrency_limit=None)
        for comp in (risk_f, type_f, party_f, sort):
            comp.change(on_filter, [review_state, risk_f, type_f, party_f, sort], grid, api_visibility="private",
                        concurrency_limit=None)
        grid.select(on_select, [review_state],
                    [selected, context, form_title, c_types, c_party, c_risk, c_bearer, c_reason],
                    api_visibility="private", concurrency_limit=None).then(
            None, [selected], None, js="(i) => { document.querySelectorAll('#contract-view .focus').forEach("
                                       "e => e.classList.remove('focus')); const e = document.getElementById("
                                       "'clause-' + i); if (e) { e.classList.add('focus'); } }")
        save_btn.click(on_correct, [review_state, selected, c_types, c_party, c_risk, c_bearer, c_reason, risk_f,
                                    type_f, party_f, sort], [review_state, correct_msg, summary, grid, context,
                                                             contract_view],
                       api_visibility="private", concurrency_limit=None)
        send_btn.click(on_send, None, correct_msg, api_visibility="private")
        for btn, fmt in ((exp_docx, "docx"), (exp_pdf, "pdf"), (exp_csv, "csv"), (exp_json, "json")):
            btn.click(_export_fn(on_export, fmt), review_state, [export_file, export_msg], api_visibility="private",
                      concurrency_limit=None)
        save_review_btn.click(on_save, review_state, save_msg, api_visibility="private", concurrency_limit=None)
    return demo


def _export_fn(on_export, fmt: str):
    def export(review, request: gr.Request):
        return on_export(review, fmt, request)

    return export

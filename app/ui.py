"""The Gradio reviewer: upload or paste a contract, read its review, correct labels, export.

`build_app()` returns the Blocks; `app.server.serve()` launches it. The page, top to bottom:
the input row (file or pasted text, model choice, Review), a status line, the summary, then
tabs: Clauses (a filterable, sortable table; a row shows the clause in context and the form
to correct its labels), Contract (the whole text, risky clauses highlighted by level) and
Export (DOCX/PDF report, CSV, JSON; saving the review on this machine).

Everything a session holds (the review, its exports) lives in session state and a private
temporary folder that is deleted when the session ends; the uploaded file is deleted as soon
as it has been read. Only corrections (at once) and reviews the user saves are kept, under
`corrections.app_dir()`. The HTML here is built from escaped text only.

Helpers that turn a review into HTML or table rows are plain functions, tested without a
browser; the event handlers only wire them to components.
"""

from __future__ import annotations

import html
import logging
import os
import shutil
import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from contract_review.predictor import DEFAULT, ModelSpec, PredictorError, describe_model, parse_model
from contract_review.taxonomy import load_taxonomy

from . import export as exporter
from .corrections import CorrectionStore, app_dir, correction_from, send_to_label_studio
from .ingest import DEFAULT_MAX_BYTES, IngestError, read_contract, read_text
from .predictors import load_predictor
from .review import Review, apply_correction, review_contract
from .summary import quote, risk_order

log = logging.getLogger("contract_review.app")

ALL = "All"
SORTS = ("Position in contract", "Risk (highest first)", "Confidence (lowest first)", "Clause type", "Obliged party")
TABLE_COLUMNS = ["#", "Risk", "Clause type", "Obliged party", "Confidence", "Reason", "Clause"]
LOCAL = "local"
MODEL_CHOICES = [("CPU default: SmolLM2-135M + shipped reviewer adapter, mixed with TF-IDF", DEFAULT),
                 ("Reviewer adapter alone (no TF-IDF)", "reviewer"),
                 ("Rules only (no model; instant, rough)", "rules"),
                 ("Local base model + adapter folder", LOCAL)]
ADAPTER_KINDS = (DEFAULT, "reviewer", LOCAL)  # the choices the adapter folder box applies to
RISK_LABEL = {"high": "HIGH", "medium": "MEDIUM", "low": "low", "none": "none"}
CONTEXT_CHARS = 450

CSS = """
.clause.risk-high {background:#fde2e2; border-bottom:2px solid #c81e1e; color:#111;}
.clause.risk-medium {background:#fff1dc; border-bottom:2px solid #d97706; color:#111;}
.clause.risk-low {background:#e8f0fd; color:#111;}
.clause.focus {outline:3px solid #1c64f2; outline-offset:1px;}
#contract-view {white-space:pre-wrap; font-family:Georgia,'Times New Roman',serif; line-height:1.55;
  max-height:75vh; overflow-y:auto; padding:12px; border:1px solid #ddd; border-radius:6px; background:#fff; color:#111;}
#context-view .ctx {white-space:pre-wrap; font-family:Georgia,serif; line-height:1.5; color:#333;
  background:#fff; padding:10px; border:1px solid #ddd; border-radius:6px;}
.badge {display:inline-block; padding:1px 8px; border-radius:10px; font-weight:600; font-size:0.85em; color:#fff;}
.badge.risk-high {background:#c81e1e;} .badge.risk-medium {background:#d97706;}
.badge.risk-low {background:#3f83f8;} .badge.risk-none {background:#6b7280;}
.cr-summary {color:#111; background:#fff; border:1px solid #ddd; border-radius:8px; padding:12px 16px;}
.cr-summary h3 {margin:6px 0 6px 0;}
.cr-counts {display:flex; gap:10px; flex-wrap:wrap; margin-bottom:8px;}
.cr-count {border-radius:8px; padding:6px 14px; min-width:90px; text-align:center; color:#fff;}
.cr-count b {font-size:1.5em; display:block;}
.cr-count.risk-high {background:#c81e1e;} .cr-count.risk-medium {background:#d97706;}
.cr-count.risk-low {background:#3f83f8;} .cr-count.risk-none {background:#6b7280;}
.cr-cols {display:flex; gap:24px; flex-wrap:wrap;} .cr-cols > div {flex:1; min-width:260px;}
.cr-summary li {margin-bottom:4px;} .cr-muted {color:#555; font-size:0.9em;}
#status {min-height:1.5em;}
#clause-table, #clause-table * {font-family:ui-sans-serif,system-ui,sans-serif !important;}
"""


# -- HTML and tables from a review (pure functions) --------------------------------------------

def badge(risk: str) -> str:
    return f'<span class="badge risk-{html.escape(risk)}">{html.escape(RISK_LABEL.get(risk, risk))}</span>'


def summary_html(review: Review) -> str:
    s, esc = review.summary, html.escape
    counts = "".join(f'<div class="cr-count risk-{lvl}"><b>{n}</b>{"no" if lvl == "none" else esc(lvl)} risk</div>'
                     for lvl, n in s["risk_counts"].items())
    top = "".join(
        f'<li>{badge(t["risk"])} <b>Clause {t["index"]}</b>: {esc(t["type"])} &middot; obliges {esc(t["party"])}'
        f'<br><span class="cr-muted">{esc(t["reason"])}</span></li>' for t in s["top_risks"][:6]
    ) or "<li>No medium or high risk clause was found.</li>"
    parties = "".join(
        f'<li><b>{esc(p["name"])}</b> ({esc(p["role"].replace("_", " "))})'
        + (f' &middot; also &ldquo;{esc("”, “".join(p["aliases"]))}&rdquo;' if p["aliases"] else "") + "</li>"
        for p in s["parties"]) or "<li>No parties found in the opening.</li>"
    missing = "".join(f'<li><b>{esc(m["clause"])}</b>: {esc(m["why"])}</li>' for m in s["missing"]) \
        or "<li>Every usual clause was found.</li>"
    extra = []
    if s.get("unlabelled"):
        extra.append(f'{s["unlabelled"]} clauses could not be labelled by the model: review them by hand.')
    if s.get("corrected"):
        extra.append(f'{s["corrected"]} label(s) corrected by a reviewer.')
    c, m = review.contract, review.model
    return (
        f'<div class="cr-summary" id="summary-view"><h3>{esc(c["name"])}</h3>'
        f'<div class="cr-muted">{c["clauses"]} clauses, {c["chars"]:,} characters &middot; labelled by '
        f'{esc(m["name"])} ({esc(m["model_version"])}) in {review.seconds.get("total", 0):.1f} s &middot; '
        f'a first pass for a lawyer, not legal advice</div>'
        f'<div class="cr-counts">{counts}</div>'
        + (f'<div class="cr-muted">{esc(" ".join(extra))}</div>' if extra else "")
        + f'<div class="cr-cols"><div><h3>Highest risks</h3><ol>{top}</ol></div>'
        f'<div><h3>Parties</h3><ul>{parties}</ul><h3>Usual clauses not found</h3><ul id="missing-list">{missing}</ul>'
        f'</div></div></div>'
    )


def contract_html(review: Review, focus: int | None = None) -> str:
    """The whole contract, each clause a span (`clause-N`) coloured by its risk level."""
    out, pos, text = [], 0, review.text
    for f in review.findings:
        out.append(html.escape(text[pos : f.start]))
        classes = f"clause risk-{f.risk}" + (" focus" if f.index == focus else "")
        title = f"Clause {f.index}: {f.risk} risk, {', '.join(f.type_names)}; obliges {f.party_name}"
        out.append(f'<span class="{classes}" id="clause-{f.index}" title="{html.escape(title)}">'
                   f"{html.escape(text[f.start:f.end])}</span>")
        pos = f.end
    out.append(html.escape(text[pos:]))
    legend = (f'<div class="cr-muted" style="margin-bottom:6px">Highlighted: {badge("high")} {badge("medium")} '
              f'{badge("low")} risk. Hover a clause for its labels.</div>')
    return legend + f'<div id="contract-view">{"".join(out)}</div>'


def context_html(review: Review, index: int) -> str:
    f = review.finding(index)
    text = review.text
    a = max(0, f.start - CONTEXT_CHARS)
    b = min(len(text), f.end + CONTEXT_CHARS)
    if a > 0:
        a = text.find(" ", a) + 1 or a
    if b < len(text):
        b = text.rfind(" ", f.end, b) if text.rfind(" ", f.end, b) > 0 else b
    esc = html.escape
    head = (f'<div><b>Clause {f.index}</b> {badge(f.risk)} {esc(", ".join(f.type_names))} &middot; obliges '
            f'<b>{esc(f.party_name)}</b> &middot; confidence {f.confidence:.0%}'
            + (" &middot; <i>corrected</i>" if f.corrected else "") + "</div>"
            f'<div class="cr-muted" style="margin:4px 0 8px 0">{esc(f.reason)}</div>')
    body = (("…" if a > 0 else "") + esc(text[a : f.start]) +
            f'<span class="clause risk-{f.risk} focus">{esc(text[f.start:f.end])}</span>' +
            esc(text[f.end : b]) + ("…" if b < len(text) else ""))
    return f'<div id="context-view">{head}<div class="ctx">{body}</div></div>'


def table(review: Review | None, risk: str = ALL, ctype: str = ALL, party: str = ALL,
          sort: str = SORTS[0]) -> pd.DataFrame:
    if review is None:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    tax = load_taxonomy()
    rows = [f for f in review.findings
            if (risk in (ALL, None) or f.risk == risk)
            and (ctype in (ALL, None) or ctype in f.type_names)
            and (party in (ALL, None) or f.party_name == party)]
    if sort == SORTS[1]:
        rows = risk_order(rows, tax)
    elif sort == SORTS[2]:
        rows = sorted(rows, key=lambda f: (f.confidence, f.index))
    elif sort == SORTS[3]:
        rows = sorted(rows, key=lambda f: (", ".join(f.type_names), f.index))
    elif sort == SORTS[4]:
        rows = sorted(rows, key=lambda f: (f.party_name, f.index))
    data = [[f.index, RISK_LABEL.get(f.risk, f.risk) + (" *" if f.corrected else ""), ", ".join(f.type_names),
             f.party_name, f"{f.confidence:.0%}", f.reason, quote(f.text, 120)] for f in rows]
    return pd.DataFrame(data, columns=TABLE_COLUMNS)


RISK_CELL = {"HIGH": "background-color:#fde2e2;color:#9b1c1c;font-weight:600",
             "MEDIUM": "background-color:#fff1dc;color:#8a4b00;font-weight:600",
             "low": "background-color:#e8f0fd;color:#1e429f"}


def styled(df: pd.DataFrame):
    """The table with its Risk cells coloured like the highlights in the contract."""
    return df.style.map(lambda v: RISK_CELL.get(str(v).rstrip(" *"), ""), subset=["Risk"])


def party_choices(review: Review | None) -> list[tuple[str, str]]:
    """The obliged-party labels, named as in this contract."""
    from .review import party_display

    parties = review.parties if review else {}
    return [(f"{party_display(p, parties)} ({p.replace('_', ' ')})" if p != "none" else "no one (none)", p)
            for p in load_taxonomy().parties]


def filter_choices(review: Review | None) -> tuple[list[str], list[str], list[str]]:
    tax = load_taxonomy()
    if review is None:
        return [ALL], [ALL], [ALL]
    risks = [lvl for lvl in reversed(tax.risk_levels) if any(f.risk == lvl for f in review.findings)]
    types = sorted({n for f in review.findings for n in f.type_names})
    parties = sorted({f.party_name for f in review.findings})
    return [ALL, *risks], [ALL, *types], [ALL, *parties]


# -- the app ---------------------------------------------------------------------------------------

def _session_dir(current: str | None) -> str:
    if current and Path(current).is_dir():
        return current
    return tempfile.mkdtemp(prefix="cr-session-")


def _drop_session_dir(path: str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


def build_app(default: ModelSpec = ModelSpec(), max_bytes: int = DEFAULT_MAX_BYTES,
              store: CorrectionStore | None = None, review_concurrency: int = 1) -> gr.Blocks:
    tax = load_taxonomy()
    store = store or CorrectionStore(app_dir() / "corrections.jsonl")
    type_choices = [(f"{c.name} ({c.id})", c.id) for c in tax.clause_types]
    named = [value for _, value in MODEL_CHOICES if value != LOCAL]
    model_choices = list(MODEL_CHOICES)
    if default.model in named or Path(default.model).is_dir():
        default_radio = default.model if default.model in named else LOCAL
    else:  # another registered model served with --model (tfidf, ...): offered under its own name
        model_choices.insert(0, (f"{default.model} (this server's model)", default.model))
        default_radio = default.model

    def choose_model(kind: str, base: str, adapter: str) -> ModelSpec:
        """The registry's choice for the UI's radio: a name, or the local base folder + adapter."""
        if kind == LOCAL:
            if not (base or "").strip():
                raise PredictorError("give the folder of a local base model (and its adapter folder)")
            return parse_model(base, adapter)
        return parse_model(kind or DEFAULT, adapter if kind in ADAPTER_KINDS else None)

    def run_review(file_path, pasted, kind, base, adapter, progress=None) -> Review:
        """Ingest, load the model, review. Raises IngestError / PredictorError with a clear message."""
        if file_path:
            try:
                contract = read_contract(file_path, max_bytes=max_bytes, name=Path(file_path).name)
            finally:
                try:  # the upload is not kept: what the session needs is in memory now
                    os.remove(file_path)
                except OSError:
                    pass
        else:
            contract = read_text(pasted or "")
        choice = choose_model(kind, base, adapter)
        if progress:
            progress(0.0, desc=f"Loading the model ({describe_model(choice)})")
        predictor = load_predictor(choice)

        def on_progress(done: int, total: int) -> None:
            if progress and total:
                progress((done, total), desc="Labelling clauses", unit="clauses")

        review = review_contract(contract, predictor, on_progress, model_choice=describe_model(choice))
        # counts and time only: contract text and names stay out of the logs
        log.info("reviewed a %s of %d characters: %d clauses in %.1f s", contract.kind, len(contract.text),
                 len(review.findings), review.seconds["total"])
        return review

    def empty_outputs(message: str):
        return (None, message, "", table(None), *[gr.update(choices=[ALL], value=ALL)] * 3, "", "",
                gr.update(value=None), None, gr.update(choices=party_choices(None), value=None))

    def on_review(file_path, pasted, kind, base, adapter, progress=gr.Progress()):
        try:
            review = run_review(file_path, pasted, kind, base, adapter, progress)
        except (IngestError, PredictorError) as exc:
            gr.Warning(str(exc), duration=15)
            return empty_outputs(f"**Could not review:** {html.escape(str(exc))}")
        risks, types, parties = filter_choices(review)
        s = review.summary
        status = (f"Reviewed **{html.escape(review.contract['name'])}**: {s['clauses']} clauses, "
                  f"**{s['risk_clauses']} flagged** (medium or high risk), {len(s['missing'])} usual clauses not found.")
        return (review, status, summary_html(review), styled(table(review)),
                gr.update(choices=risks, value=ALL), gr.update(choices=types, value=ALL),
                gr.update(choices=parties, value=ALL), contract_html(review),
                '<div class="cr-muted">Click a row of the table to see the clause in context and correct it.</div>',
                gr.update(value=None), None, gr.update(choices=party_choices(review), value=None))

    def api_review(file_path, pasted, kind, base, adapter) -> dict:
        """The review as JSON: the same object `contract-review review` writes."""
        try:
            return run_review(file_path, pasted, kind or DEFAULT, base, adapter).to_dict()
        except (IngestError, PredictorError) as exc:
            raise gr.Error(str(exc)) from None

    def on_filter(review, risk, ctype, party, sort):
        return styled(table(review, risk, ctype, party, sort))

    def on_select(review, evt: gr.SelectData):
        if review is None or evt.row_value is None:
            return (gr.update(),) * 7
        index = int(evt.row_value[0])
        f = review.finding(index)
        return (index, context_html(review, index), f"**Correct clause {index}** (labels below are the current ones)",
                gr.update(value=list(f.clause_types)), gr.update(value=f.party), gr.update(value=f.risk),
                gr.update(value=f.reason))

    def on_correct(review, index, types, party, risk, reason, risk_f, type_f, party_f, sort, request: gr.Request):
        if review is None or not index:
            return (review, "Select a clause in the table first.", gr.update(), gr.update(), gr.update(), gr.update())
        try:
            f = apply_correction(review, int(index), types or [], party, risk, reason, tax)
        except ValueError as exc:
            return (review, f"**Not saved:** {html.escape(str(exc))}", gr.update(), gr.update(), gr.update(),
                    gr.update())
        reviewer = getattr(request, "username", None) or ""
        store.add(correction_from(review, f, reviewer=reviewer))
        pending = len(store.unsent())
        msg = (f"Saved the correction of clause {f.index} ({f.risk} risk, {', '.join(f.type_names)}, obliges "
               f"{html.escape(f.party_name)}) to `{store.path}`. {pending} correction(s) not yet sent to Label Studio.")
        return (review, msg, summary_html(review), styled(table(review, risk_f, type_f, party_f, sort)),
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

    def on_export(review, session_dir, fmt):
        if review is None:
            gr.Warning("Review a contract first.")
            return None, session_dir
        session_dir = _session_dir(session_dir)
        path = exporter.write_exports(review, session_dir, [fmt])[fmt]
        return str(path), session_dir

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
    with gr.Blocks(title="Contract review", delete_cache=(1800, 3600)) as demo:
        demo.cr_theme, demo.cr_css = theme, CSS  # server.py passes them to launch()
        review_state = gr.State(None)
        session_dir = gr.State(None, delete_callback=_drop_session_dir)
        selected = gr.State(None)
        gr.Markdown("# Contract review\nUpload a contract (PDF with a text layer, Word .docx or text) or paste it. "
                    "Each clause gets its type, the party it obliges, a risk level with a reason, and a confidence. "
                    "The contract stays on this machine.")
        with gr.Row():
            with gr.Column(scale=3):
                upload = gr.File(label="Contract file (.pdf, .docx, .txt)", file_types=[".pdf", ".docx", ".txt"],
                                 type="filepath", elem_id="upload")
                with gr.Accordion("…or paste the contract's text", open=False):
                    pasted = gr.Textbox(lines=8, max_lines=20, show_label=False, elem_id="paste",
                                        placeholder="Paste the contract here")
            with gr.Column(scale=2):
                kind = gr.Radio(model_choices, value=default_radio, label="Model", elem_id="model")
                base = gr.Textbox(label="Local base model folder", visible=default_radio == LOCAL,
                                  value=default.model if default_radio == LOCAL else "", elem_id="base-model")
                adapter = gr.Textbox(label="Reviewer adapter folder (empty: the shipped one)",
                                     value=default.adapter or "", visible=default_radio in ADAPTER_KINDS,
                                     elem_id="adapter")
                review_btn = gr.Button("Review", variant="primary", elem_id="review-btn")
        status = gr.Markdown("", elem_id="status")
        summary = gr.HTML("", elem_id="summary")
        with gr.Tabs():
            with gr.Tab("Clauses", id="clauses"):
                with gr.Row():
                    risk_f = gr.Dropdown([ALL], value=ALL, label="Risk", elem_id="filter-risk")
                    type_f = gr.Dropdown([ALL], value=ALL, label="Clause type", elem_id="filter-type")
                    party_f = gr.Dropdown([ALL], value=ALL, label="Obliged party", elem_id="filter-party")
                    sort = gr.Dropdown(list(SORTS), value=SORTS[0], label="Sort by", elem_id="sort")
                grid = gr.Dataframe(table(None), interactive=False, wrap=True, elem_id="clause-table",
                                    column_widths=["5%", "9%", "16%", "14%", "8%", "23%", "25%"], max_height=640)
                with gr.Row():
                    with gr.Column(scale=3):
                        context = gr.HTML("", elem_id="context")
                    with gr.Column(scale=2):
                        form_title = gr.Markdown("**Correct a clause**: click a row first", elem_id="correct-title")
                        c_types = gr.Dropdown(type_choices, multiselect=True, label="Clause types",
                                              elem_id="correct-types")
                        with gr.Row():
                            c_party = gr.Dropdown(party_choices(None), value=None, label="Obliged party",
                                                  elem_id="correct-party")
                            c_risk = gr.Dropdown(list(tax.risk_levels), value=None, label="Risk",
                                                 elem_id="correct-risk")
                        c_reason = gr.Textbox(label="Reason (one sentence)", lines=2, elem_id="correct-reason")
                        save_btn = gr.Button("Save correction", variant="primary", elem_id="save-correction")
                        correct_msg = gr.Markdown("", elem_id="correct-status")
                        send_btn = gr.Button("Send saved corrections to Label Studio", size="sm", elem_id="send-ls")
            with gr.Tab("Contract", id="contract"):
                contract_view = gr.HTML("", elem_id="contract")
            with gr.Tab("Export", id="export"):
                gr.Markdown("Reports quote every finding's clause. Files made here are deleted when you close the "
                            "page; **Save review** keeps the review on this machine.")
                with gr.Row():
                    exp_docx = gr.Button("Word report (.docx)", elem_id="export-docx")
                    exp_pdf = gr.Button("PDF report", elem_id="export-pdf")
                    exp_csv = gr.Button("CSV", elem_id="export-csv")
                    exp_json = gr.Button("JSON", elem_id="export-json")
                export_file = gr.File(label="Download", interactive=False, elem_id="export-file")
                save_review_btn = gr.Button("Save review on this machine", elem_id="save-review")
                save_msg = gr.Markdown("", elem_id="save-status")
        # API only: the review as JSON (gradio_client: Client(url).predict(..., api_name="/review"))
        api_json = gr.JSON(visible=False)
        api_btn = gr.Button(visible=False)

        kind.change(lambda k: (gr.update(visible=k == LOCAL), gr.update(visible=k in ADAPTER_KINDS)), kind,
                    [base, adapter], queue=False, api_visibility="private")
        review_btn.click(
            on_review, [upload, pasted, kind, base, adapter],
            [review_state, status, summary, grid, risk_f, type_f, party_f, contract_view, context, export_file,
             selected, c_party],
            concurrency_limit=review_concurrency, concurrency_id="review", api_visibility="private")
        api_btn.click(api_review, [upload, pasted, kind, base, adapter], api_json, api_name="review",
                      concurrency_limit=review_concurrency, concurrency_id="review")
        for comp in (risk_f, type_f, party_f, sort):
            comp.change(on_filter, [review_state, risk_f, type_f, party_f, sort], grid, api_visibility="private",
                        concurrency_limit=None)
        grid.select(on_select, [review_state], [selected, context, form_title, c_types, c_party, c_risk, c_reason],
                    api_visibility="private", concurrency_limit=None).then(
            None, [selected], None, js="(i) => { document.querySelectorAll('#contract-view .focus').forEach("
                                       "e => e.classList.remove('focus')); const e = document.getElementById("
                                       "'clause-' + i); if (e) { e.classList.add('focus'); } }")
        save_btn.click(on_correct, [review_state, selected, c_types, c_party, c_risk, c_reason, risk_f, type_f, party_f,
                                    sort], [review_state, correct_msg, summary, grid, context, contract_view],
                       api_visibility="private", concurrency_limit=None)
        send_btn.click(on_send, None, correct_msg, api_visibility="private")
        for btn, fmt in ((exp_docx, "docx"), (exp_pdf, "pdf"), (exp_csv, "csv"), (exp_json, "json")):
            btn.click(lambda r, d, fmt=fmt: on_export(r, d, fmt), [review_state, session_dir],
                      [export_file, session_dir], api_visibility="private", concurrency_limit=None)
        save_review_btn.click(on_save, review_state, save_msg, api_visibility="private", concurrency_limit=None)
    return demo

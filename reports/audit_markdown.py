"""The claims audit as Markdown: a legend, a summary per paper, then one table per paper
with a row per claim (``reports.audit`` computes the rows). Text from the claims files and the
results (papers, models, splits, notes) is escaped (:mod:`reports.markdown`)."""
from __future__ import annotations

import math
from collections.abc import Sequence

from tabulate import tabulate

from reports.audit import (CONFIRMED, NO_REPORTED_VALUE, NOT_COMPARABLE, NOT_CONFIRMED, NOT_REPRODUCED,
                           NOT_RUN, REPRODUCED, AuditSettings, ClaimAudit)
from reports.claims import PaperClaims
from reports.markdown import markdown_prose, markdown_text
from reports.statistics import CONFIDENCE, Statistics

DASH = "–"
CLAIM_HEADERS = ["split", "model (paper's name)", "metric", "reported", "read in", "ours", "difference",
                 "reproduction", "best baseline", "p (Holm)", "progress", "notes"]
VERDICTS = (REPRODUCED, NOT_REPRODUCED, NOT_COMPARABLE, NOT_RUN, NO_REPORTED_VALUE)
SUMMARY_HEADERS = ["paper", "claims", *VERDICTS, CONFIRMED, NOT_CONFIRMED]


def render_audit(audited: Sequence[tuple[PaperClaims, Sequence[ClaimAudit]]], settings: AuditSettings,
                 statistics: Statistics) -> str:
    n_claims = sum(len(audits) for _, audits in audited)
    lines = ["# RecAudit claims audit", "",
             f"Built by `python -m reports audit` from {n_claims} claims of {len(audited)} "
             f"{'paper' if len(audited) == 1 else 'papers'} (the claims "
             "registry, one YAML file per paper in `reports/claims/`) and the result files "
             "`results/<dataset>/<split>/<model>/` with their statistics (`reports/statistics.json`).", "",
             *legend(settings, statistics), "", "## Summary", "",
             tabulate([summary_row(paper, audits) for paper, audits in audited], headers=SUMMARY_HEADERS,
                      tablefmt="github", disable_numparse=True), ""]
    for paper, audits in audited:
        lines += paper_section(paper, audits)
    return "\n".join(lines).rstrip("\n") + "\n"


def legend(settings: AuditSettings, statistics: Statistics) -> list[str]:
    reference_metric = markdown_text(statistics.metrics[0]) if statistics.metrics else "the first report metric"
    tested = ", ".join(markdown_text(m) for m in statistics.metrics) or "none"
    return [
        "How to read the tables:",
        "",
        "- **reported**: the paper's number; **read in**: where it was read, with its provenance tag "
        "([paper]: the paper or the authors' own artefact; [reprint]: a later paper reprinting it, the original "
        "table not seen; [lecture]: the lecture's slide of the table; [rerun]: not the paper's own number but a later "
        "study's re-run of the authors' code under the split's protocol).",
        f"- **ours**: our mean under the same split, `± sd` over seeds (ddof 1) for a stochastic model run with "
        f"several seeds, and `[low, high]`, the {CONFIDENCE:.0%} BCa bootstrap interval of the mean over users "
        f"({settings.n_resamples} resamples, seed {settings.seed}; the statistics file's interval for a report "
        "metric, drawn the same way for any other). **difference**: ours - reported (relative to reported).",
        f"- **reproduction**: \"{REPRODUCED}\" when |ours - reported| <= {settings.tolerance:g} x reported "
        f"(`audit.tolerance`) or the reported value lies in our interval; \"{NOT_REPRODUCED}\" otherwise; "
        f"\"{NOT_RUN}\" with the reasons in the notes when we have no result for the claim; "
        f"\"{NOT_COMPARABLE}\" when the claims file flags the paper's number as computed under a protocol we do "
        "not reproduce (e.g. an evaluation that counted training items as hits; the notes say which): ours is "
        "shown for the record, the difference is no verdict on the reproduction.",
        f"- **best baseline**: the split's reference in every report, the baseline (family \"baseline\") with the "
        f"highest mean on {reference_metric}, and its mean on the claim's metric. **p (Holm)**: two-sided paired "
        "Wilcoxon signed-rank test over users, model against that baseline, Holm-adjusted within the split's "
        "metric column (one family per split and metric, as the leaderboard's marks and the verdicts; "
        f"`reports/statistics.json`, which tests the report metrics {tested}). "
        f"**progress**: \"{CONFIRMED}\" when the model is significantly better (alpha {settings.alpha:g}), "
        f"\"{NOT_CONFIRMED}\" when not different or worse.",
    ]


def summary_row(paper: PaperClaims, audits: Sequence[ClaimAudit]) -> list[str]:
    verdicts = [a.verdict for a in audits]
    progress = [a.progress.verdict for a in audits if a.progress is not None]
    return [markdown_text(paper.paper), str(len(audits)), *(str(verdicts.count(v)) for v in VERDICTS),
            str(progress.count(CONFIRMED)), str(progress.count(NOT_CONFIRMED))]


def paper_section(paper: PaperClaims, audits: Sequence[ClaimAudit]) -> list[str]:
    notes = [f"- {markdown_prose(note)}" for note in paper.notes]
    table = tabulate([claim_row(a) for a in audits], headers=CLAIM_HEADERS, tablefmt="github",
                     disable_numparse=True)
    return [f"## {markdown_text(paper.paper)} ({markdown_prose(f'`{paper.key}`')})", "",
            markdown_prose(paper.citation), "", *notes, *([""] if notes else []), table, ""]


def claim_row(audit: ClaimAudit) -> list[str]:
    claim = audit.claim
    described = "; ".join(part for part in (claim.paper_model, claim.setting) if part)
    reported = DASH if claim.reported is None else f"{claim.reported:g}"
    flag = f"{NOT_COMPARABLE}: {claim.not_comparable}" if claim.not_comparable else ""
    notes = [text for text in (flag, audit.reason, claim.note, audit.progress_note) if text]
    ours = difference = baseline = p_value = progress = DASH
    found = audit.reproduction
    if found is not None:
        ours = f"{found.mean:.4f}"
        if found.std is not None:
            ours += f" ± {found.std:.4f}"
        if math.isfinite(found.ci_low):
            ours += f" [{found.ci_low:.4f}, {found.ci_high:.4f}]"
        if claim.reported is not None:
            gap = found.mean - claim.reported
            difference = f"{gap:+.4f}" + (f" ({gap / claim.reported:+.1%})" if claim.reported else "")
    if audit.progress is not None:
        check = audit.progress
        baseline = f"{markdown_text(check.baseline)} {check.baseline_mean:.4f}"
        p_value = f"{check.p_holm:.3g}"
        progress = check.verdict
    return [markdown_text(claim.protocol), markdown_text(f"{claim.result_label} ({described})"), markdown_text(claim.metric),
            reported, markdown_text(f"{claim.where} {claim.tags}"), ours, difference, audit.verdict, baseline,
            p_value, progress, markdown_prose("; ".join(notes)) or DASH]

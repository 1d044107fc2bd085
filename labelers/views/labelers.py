"""The admins' labeler pages (/manage/labelers/): create, edit criteria as a draft, publish,
compare versions, relabel after publishing, shadow runs, re-review, quality per version,
threshold advice, the export.

Staff only. Server-rendered; no inline script or style (the site's CSP forbids both)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.services import audit_record
from labelers import selectors, shadow, tasks
from labelers.criteria import (
    DRAFT_FIELDS,
    REVIEW_POLICY_FIELDS,
    StaleEdit,
    draft_snapshot,
    labeler_create,
    labeler_draft_save,
    labeler_min_confidence_set,
    labeler_review_policy_set,
    labeler_version_publish,
    model_warning,
    review_policy_snapshot,
)
from labelers.forms import (
    LabelerCreateForm,
    PolicyForm,
    RelabelForm,
    ReviewPolicyForm,
    ShadowRunForm,
    ThresholdForm,
)
from labelers.models import Labeler, LabelerVersion, RelabelRun, ShadowRun
from labelers.quality.chart import daily_chart
from labelers.quality.export import decided_export_rows
from labelers.quality.figures import ADVICE_MIN_DECIDED
from labelers.quality.loaders import labeler_report
from lib.days import today_start
from moderation.filters import int_or_none
from moderation.permissions import staff_required
from moderation.services.rereview import items_send_for_rereview


@require_GET
@staff_required
def labeler_list(request: HttpRequest) -> HttpResponse:
    labelers = Labeler.objects.prefetch_related("sources").order_by("name")
    rows = [(labeler, labeler.current_version, labeler.draft_version) for labeler in labelers]
    return render(request, "labelers/labeler_list.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
@staff_required
def labeler_new(request: HttpRequest) -> HttpResponse:
    form = LabelerCreateForm(request.POST or None, initial={"kind": Labeler.Kind.CRITERIA})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        labeler = labeler_create(
            name=data["name"],
            slug=data["slug"],
            kind=data["kind"],
            criteria_text=data["criteria_text"],
            remote_labeler_id=data["remote_labeler_id"],
            remote_version_id=data["remote_version_id"] or "latest",
            model=data["model"],
            min_confidence=data["min_confidence"],
            created_by=request.user,
        )
        _warn_model(request, data["model"])
        messages.success(
            request,
            f"{labeler.name} created with version 1. Route sources to it in the admin "
            "(Sources) to start labeling with it.",
        )
        return redirect("manage_labeler", labeler_id=labeler.pk)
    return render(request, "labelers/labeler_new.html", {"form": form})


def _warn_model(request: HttpRequest, model: str) -> None:
    if warning := model_warning(model):
        messages.warning(request, warning)


@require_GET
@staff_required
def labeler_detail(request: HttpRequest, labeler_id: int) -> HttpResponse:
    return _labeler_page(request, get_object_or_404(Labeler, pk=labeler_id))


def _labeler_page(
    request: HttpRequest,
    labeler: Labeler,
    *,
    draft_form: PolicyForm | None = None,
    stale: dict | None = None,
    status: int = 200,
) -> HttpResponse:
    """The labeler's page; after a refused save or publish, with what changed (`stale`) and
    the admin's own text kept in the draft form."""
    versions = list(selectors.labeler_versions(labeler))
    current, draft = labeler.current_version, labeler.draft_version
    start = draft or current
    draft_form = draft_form or PolicyForm(
        initial={
            "criteria_text": start.criteria_text if start else "",
            "remote_labeler_id": start.remote_labeler_id if start else "",
            "remote_version_id": (start.remote_version_id if start else "") or "latest",
            "model": start.model if start else "",
        }
    )
    by_number = {version.number: version for version in versions}
    diff = None
    older = by_number.get(int_or_none(request.GET.get("a")))
    newer = by_number.get(int_or_none(request.GET.get("b")))
    if older is None and len(versions) >= 2:
        newer, older = versions[0], versions[1]
    if older is not None and newer is not None:
        diff = selectors.line_diff(
            selectors.version_policy_lines(older), selectors.version_policy_lines(newer)
        )
    return render(
        request,
        "labelers/labeler_detail.html",
        {
            "labeler": labeler,
            "versions": versions,
            "current": current,
            "draft": draft,
            "draft_form": draft_form,
            "relabel_form": RelabelForm(),
            "policy_form": ReviewPolicyForm(
                initial={name: getattr(labeler, name) for name in REVIEW_POLICY_FIELDS}
            ),
            "shadow_form": ShadowRunForm(labeler=labeler),
            "shadow_runs": selectors.labeler_shadow_runs(labeler),
            "diff": diff,
            "diff_a": older,
            "diff_b": newer,
            "model_warning": model_warning(start.model) if start else "",
            "sources": labeler.sources.order_by("name"),
            # What the page shows, sent back with each change: see _seen.
            "draft_seen": json.dumps(draft_snapshot(draft)),
            "policy_seen": json.dumps(review_policy_snapshot(labeler)),
            "stale": stale,
        },
        status=status,
    )


def _seen(request: HttpRequest) -> dict[str, Any] | None:
    """The snapshot the admin's page was rendered with (a hidden field), or None if the form
    sent none: a change is made only to what the admin saw."""
    try:
        seen = json.loads(request.POST.get("seen", ""))
    except ValueError:
        return None
    return seen if isinstance(seen, dict) else None


_NOT_SEEN = (
    "Nothing was changed: the form did not say what your page showed. Here is the page as "
    "it is now; look again and repeat."
)


def _draft_changed(
    request: HttpRequest,
    labeler: Labeler,
    exc: StaleEdit,
    seen: dict[str, Any],
    *,
    refused: str,
    draft_form: PolicyForm | None = None,
) -> HttpResponse:
    """The draft was edited (or published) by someone else since the admin's page was
    shown: say so, with the difference between what they saw and the draft now, and keep
    their own text in the form."""
    labeler.refresh_from_db()
    draft = labeler.draft_version
    saw = LabelerVersion(**{k: seen.get(k) or "" for k in DRAFT_FIELDS if k != "number"})
    if draft is not None:
        by = f" by {draft.created_by}" if draft.created_by else ""
        message = (
            f"{refused}: the draft was edited{by} since your page was shown. The difference "
            f"between the draft you saw and draft v{draft.number} as it is now is below; read "
            "it before you publish or save again."
        )
        diff = selectors.line_diff(
            selectors.version_policy_lines(saw), selectors.version_policy_lines(draft)
        )
    else:
        message = (
            f"{refused}: the draft you saw was published or replaced since your page was "
            "shown. Look at the versions below."
        )
        diff = None
    return _labeler_page(
        request,
        labeler,
        draft_form=draft_form,
        stale={"message": message, "diff": diff},
        status=409,
    )


@require_POST
@staff_required
def labeler_policy(request: HttpRequest, labeler_id: int) -> HttpResponse:
    """Set the labeler's flag threshold, auto-approve band and audit share; undecided items
    are re-evaluated in the background when any of them changed."""
    labeler = get_object_or_404(Labeler, pk=labeler_id)
    form = ReviewPolicyForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{form.fields[field].label}: {' '.join(errors)}")
        return redirect("manage_labeler", labeler_id=labeler.pk)
    band = form.cleaned_data["auto_approve_confidence"]
    old_band = labeler.auto_approve_confidence
    if band is not None and (old_band is None or band < old_band):
        # A wider band approves items already waiting, possibly many and old, and each
        # approval goes back to the product: say how many first, as re-review does.
        count = selectors.auto_approve_candidates(labeler=labeler, band=band)
        if count and int_or_none(request.POST.get("confirm_count")) != count:
            return render(
                request,
                "labelers/labeler_policy_confirm.html",
                {
                    "labeler": labeler,
                    "values": form.cleaned_data,
                    "count": count,
                    "changed": "confirm_count" in request.POST,
                    "seen": request.POST.get("seen", ""),
                },
            )
    seen = _seen(request)
    if seen is None:
        messages.error(request, _NOT_SEEN)
        return redirect("manage_labeler", labeler_id=labeler.pk)
    try:
        change = labeler_review_policy_set(
            labeler=labeler, created_by=request.user, seen=seen, **form.cleaned_data
        )
    except StaleEdit as exc:
        messages.error(request, f"Not saved: {exc.said()}")
        return _labeler_page(request, labeler, status=409)
    if change.reevaluation is not None:
        messages.success(
            request,
            f"Saved ({', '.join(change.changed)}); undecided items are being re-evaluated in "
            f"the background (re-evaluation {change.reevaluation.pk}).",
        )
    else:
        messages.info(request, "Nothing changed.")
    return redirect("manage_labeler", labeler_id=labeler.pk)


@require_POST
@staff_required
def labeler_draft(request: HttpRequest, labeler_id: int) -> HttpResponse:
    labeler = get_object_or_404(Labeler, pk=labeler_id)
    form = PolicyForm(request.POST)
    if not form.is_valid():
        for error in form.errors.values():
            messages.error(request, " ".join(error))
        return redirect("manage_labeler", labeler_id=labeler.pk)
    data = form.cleaned_data
    seen = _seen(request)
    if seen is None:
        messages.error(request, _NOT_SEEN)
        return _labeler_page(request, labeler, draft_form=form, status=409)
    try:
        draft = labeler_draft_save(
            labeler=labeler,
            criteria_text=data["criteria_text"],
            remote_labeler_id=data["remote_labeler_id"],
            remote_version_id=data["remote_version_id"] or "latest",
            model=data["model"],
            created_by=request.user,
            seen=seen,
        )
    except StaleEdit as exc:
        return _draft_changed(
            request, labeler, exc, seen, refused="Your draft was not saved", draft_form=form
        )
    _warn_model(request, data["model"])
    messages.success(
        request, f"Draft v{draft.number} saved. Items keep being labeled with the published one."
    )
    return redirect(f"{reverse('manage_labeler', args=[labeler.pk])}#draft")


@require_POST
@staff_required
def labeler_publish(request: HttpRequest, labeler_id: int) -> HttpResponse:
    labeler = get_object_or_404(Labeler, pk=labeler_id)
    draft = get_object_or_404(
        LabelerVersion, pk=int_or_none(request.POST.get("version")), labeler=labeler
    )
    seen = _seen(request)
    if seen is None:
        messages.error(request, _NOT_SEEN)
        return redirect("manage_labeler", labeler_id=labeler.pk)
    try:
        version = labeler_version_publish(version=draft, seen=seen, published_by=request.user)
    except StaleEdit as exc:
        return _draft_changed(request, labeler, exc, seen, refused="Nothing was published")
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"v{version.number} is published: new items are labeled with it. Nothing was "
            "relabeled; use “Relabel with the current version” below if you want that.",
        )
    return redirect("manage_labeler", labeler_id=labeler.pk)


@require_POST
@staff_required
def labeler_relabel(request: HttpRequest, labeler_id: int) -> HttpResponse:
    labeler = get_object_or_404(Labeler, pk=labeler_id)
    form = RelabelForm(request.POST)
    version = labeler.current_version
    if not form.is_valid() or version is None:
        messages.error(request, "Choose which items to relabel, and a number of days.")
        return redirect("manage_labeler", labeler_id=labeler.pk)
    runs = tasks.relabel_version_start(
        version=version,
        since=timezone.now() - timedelta(days=form.cleaned_data["days"]),
        undecided_only=form.cleaned_data["scope"] == "undecided",
        created_by=request.user,
    )
    if not runs:
        messages.warning(request, f"No source is routed to {labeler.name}: nothing to relabel.")
        return redirect("manage_labeler", labeler_id=labeler.pk)
    ids = ",".join(str(run.pk) for run in runs)
    return redirect(f"{reverse('manage_relabel_runs')}?ids={ids}")


@require_GET
@staff_required
def relabel_runs(request: HttpRequest) -> HttpResponse:
    """Progress of relabel runs (the page reloads itself only when asked: no script)."""
    ids = [int_or_none(part) for part in request.GET.get("ids", "").split(",")]
    runs = RelabelRun.objects.select_related("labeler_version__labeler", "source")
    if wanted := [pk for pk in ids if pk is not None]:
        runs = runs.filter(pk__in=wanted)
    rows = [(run, run.progress()) for run in runs.order_by("-id")[:50]]
    return render(request, "labelers/relabel_runs.html", {"rows": rows})


@require_POST
@staff_required
def labeler_shadow(request: HttpRequest, labeler_id: int) -> HttpResponse:
    """Start a shadow run of one of the labeler's versions (the draft, usually)."""
    labeler = get_object_or_404(Labeler, pk=labeler_id)
    form = ShadowRunForm(request.POST, labeler=labeler)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return redirect(f"{reverse('manage_labeler', args=[labeler.pk])}#shadow")
    data = form.cleaned_data
    run = tasks.shadow_run_start(
        version=data["version"],
        source=data["source"],
        sample_size=data["sample_size"],
        decided_only=data["decided_only"],
        created_by=request.user,
    )
    if not run.total:
        messages.warning(request, f"{data['source'].slug} has no items to sample.")
    return redirect("manage_shadow_run", run_id=run.pk)


# More than this is a page nobody reads; the counts above the list say how many there are.
SHADOW_DISAGREEMENTS_SHOWN = 200


@require_GET
@staff_required
def shadow_run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """A run's progress (the page refreshes itself while it works: a meta tag, no script),
    and its comparison with the published version and the reviewers."""
    run = get_object_or_404(
        ShadowRun.objects.select_related("version__labeler", "baseline", "source"), pk=run_id
    )
    comparison = shadow.shadow_run_comparison(run)
    shown = comparison.disagreements[:SHADOW_DISAGREEMENTS_SHOWN]
    snippets = shadow.item_snippets([d.item_id for d in shown])
    return render(
        request,
        "labelers/shadow_run.html",
        {
            "run": run,
            "labeler": run.version.labeler,
            "working": run.state in (ShadowRun.State.QUEUED, ShadowRun.State.RUNNING),
            "comparison": comparison,
            "disagreements": [(d, snippets.get(d.item_id, "")) for d in shown],
            "failures": shadow.shadow_run_failures(run),
        },
    )


@require_POST
@staff_required
def shadow_run_resume(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(ShadowRun, pk=run_id)
    if tasks.shadow_run_resume(run=run):
        messages.success(request, "Resumed: only the items not answered yet are asked for.")
    else:
        messages.info(request, "Only a failed run can be resumed.")
    return redirect("manage_shadow_run", run_id=run.pk)


@require_http_methods(["GET", "POST"])
@staff_required
def labeler_rereview(request: HttpRequest, labeler_id: int) -> HttpResponse:
    """Decided items whose decision was made under an older version of this labeler, sent
    back to the queue after the admin saw how many: GET counts, POST sends them only if the
    count the admin confirmed is still right (else it shows the new count and asks again).
    A page of its own because the count reads every decided item of the routed sources: too
    heavy for each view of the labeler's page."""
    labeler = get_object_or_404(Labeler, pk=labeler_id)
    count = selectors.decided_under_older_versions_count(labeler=labeler)
    changed = False
    if request.method == "POST":
        # Sending reads the items themselves (every decided item of the routed sources).
        item_ids = selectors.decided_under_older_versions(labeler=labeler)
        count = len(item_ids)
        changed = int_or_none(request.POST.get("count")) != count
        if item_ids and not changed:
            moved = items_send_for_rereview(item_ids=item_ids, requested_by=request.user)
            messages.success(
                request,
                f"{moved} item{'s' if moved != 1 else ''} sent for re-review: they wait in the "
                "queue, marked “re-review”.",
            )
            return redirect("manage_labeler", labeler_id=labeler.pk)
    return render(
        request,
        "labelers/labeler_rereview.html",
        {
            "labeler": labeler,
            "current": labeler.current_version,
            "count": count,
            "changed": changed,
        },
    )


# The quality page's time windows (days); "all" reads every label the labeler ever gave.
QUALITY_WINDOWS = (7, 30, 90, 365)


@require_GET
@staff_required
def labeler_quality(request: HttpRequest, labeler_id: int) -> HttpResponse:
    labeler = get_object_or_404(Labeler, pk=labeler_id)
    days = int_or_none(request.GET.get("days"))
    days = days if days in QUALITY_WINDOWS else (None if "days" in request.GET else 90)
    # Whole UTC days (today and the days before it): closed days are read from their daily
    # counts, and only today is counted from its labels (a window starting mid-day would
    # count its first day live too).
    midnight = today_start()
    since = midnight - timedelta(days=days - 1) if days else None
    reports = [
        (report, daily_chart(report.quality.days))
        for report in labeler_report(labeler, since=since)
    ]
    return render(
        request,
        "labelers/labeler_quality.html",
        {
            "labeler": labeler,
            "reports": reports,
            "advice_min_decided": ADVICE_MIN_DECIDED,
            "policy_seen": json.dumps(review_policy_snapshot(labeler)),
            "days": days,
            "windows": QUALITY_WINDOWS,
        },
    )


@require_POST
@staff_required
def labeler_threshold(request: HttpRequest, labeler_id: int) -> HttpResponse:
    """Apply a threshold an admin chose (from the advice): the same re-evaluation as the
    admin's save of min_confidence."""
    labeler = get_object_or_404(Labeler, pk=labeler_id)
    form = ThresholdForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A minimum confidence is between 0.5 and 1.0, or empty.")
        return redirect("manage_labeler_quality", labeler_id=labeler.pk)
    value = form.cleaned_data["min_confidence"]
    seen = _seen(request)
    if seen is None:
        messages.error(request, _NOT_SEEN)
        return redirect("manage_labeler_quality", labeler_id=labeler.pk)
    try:
        reevaluation = labeler_min_confidence_set(
            labeler=labeler, min_confidence=value, created_by=request.user, seen=seen
        )
    except StaleEdit as exc:
        # The advice was computed for what the page showed: look at the new one.
        messages.error(request, f"The advice was not applied: {exc.said()}")
        return redirect("manage_labeler_quality", labeler_id=labeler.pk)
    if reevaluation is not None:
        shown = "none" if value is None else f"{value:.3f}"
        messages.success(
            request,
            f"Minimum confidence of {labeler.name} set to {shown}; undecided items are being "
            f"re-evaluated in the background (re-evaluation {reevaluation.pk}).",
        )
    else:
        messages.info(request, "That is the threshold already: nothing changed.")
    return redirect("manage_labeler_quality", labeler_id=labeler.pk)


@require_GET
@staff_required
def export_decisions(request: HttpRequest) -> StreamingHttpResponse:
    """Decided items as JSON Lines, streamed a batch of items at a time."""
    audit_record(action="export.decisions", actor=request.user)

    def lines() -> Iterator[str]:
        for row in decided_export_rows():
            yield json.dumps(row, ensure_ascii=False) + "\n"

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="decisions-{stamp}.jsonl"'
    return response

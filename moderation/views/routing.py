"""The admins' routing page (/routing/): the team queues, the rules in order (reorder,
enable, disable, delete), each rule's form with its preview against recent items before it
is saved, and the rules' history with who changed what."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from labelers.models import Labeler
from moderation.filters import int_or_none
from moderation.forms import QueueForm
from moderation.models import Bank, Queue, RoutingRule, Source
from moderation.permissions import staff_required
from moderation.routing import MEDIA_KINDS, ConditionError, conditions_clean
from moderation.selectors.routing import (
    PREVIEW_DAYS,
    PREVIEW_DAYS_MAX,
    routing_history,
    routing_preview,
    routing_queues,
    routing_rules,
)
from moderation.services.routing_rules import (
    queue_save,
    rule_delete,
    rule_enable,
    rule_move,
    rule_save,
)


@require_http_methods(["GET", "POST"])
@staff_required
def routing(request: HttpRequest) -> HttpResponse:
    """The rules in order and their actions (each a POST naming the rule)."""
    if request.method == "POST":
        rule = get_object_or_404(RoutingRule, pk=int_or_none(request.POST.get("rule")) or 0)
        act = request.POST.get("act", "")
        if act in ("up", "down"):
            rule_move(actor=request.user, rule=rule, up=act == "up")
        elif act in ("enable", "disable"):
            rule_enable(actor=request.user, rule=rule, enabled=act == "enable")
        elif act == "delete":
            rule_delete(actor=request.user, rule=rule)
            messages.success(request, f"Deleted the rule “{rule.name}”.")
        else:
            messages.error(request, "act: choose up, down, enable, disable or delete.")
            return redirect("routing", permanent=False)
        return redirect("routing")
    return render(
        request,
        "moderation/routing.html",
        {
            "rules": routing_rules(),
            "queues": routing_queues(),
            "history": routing_history(),
        },
    )


def _ids(request: HttpRequest, name: str) -> list[int]:
    values = request.POST.getlist(name)
    ids = [int_or_none(value) for value in values if value]
    if any(value is None for value in ids):
        raise ConditionError(name, f"{name} must be ids from the list")
    return [value for value in ids if value is not None]


def _words(request: HttpRequest, name: str) -> list[str]:
    return [word.strip() for word in request.POST.get(name, "").split(",") if word.strip()]


def _number(request: HttpRequest, name: str) -> float | None:
    raw = request.POST.get(name, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConditionError(name, f"{name} must be a number from 0 to 1") from None


def _conditions_from_post(request: HttpRequest) -> dict[str, Any]:
    """The form's fields as a rule's conditions (checked: ConditionError names the field)."""
    raw: dict[str, Any] = {}
    for name in ("sources", "labelers", "banks"):
        if ids := _ids(request, name):
            raw[name] = ids
    for name in ("score_min", "score_max"):
        if (value := _number(request, name)) is not None:
            raw[name] = value
    if media := request.POST.getlist("formats"):
        raw["formats"] = media
    for name in ("languages", "report_reasons"):
        if words := _words(request, name):
            raw[name] = words
    strikes = request.POST.get("strikes_min", "").strip()
    if strikes:
        value = int_or_none(strikes)
        if value is None:
            raise ConditionError("strikes_min", "strikes_min must be a whole number from 1")
        raw["strikes_min"] = value
    return conditions_clean(raw)


@require_http_methods(["GET", "POST"])
@staff_required
def rule_edit(request: HttpRequest, rule_id: int | None = None) -> HttpResponse:
    """A rule's form. "Preview" shows, for the items of the last days, how many would move
    from which queue to which under the rules as they would be; "Save" saves."""
    rule = (
        get_object_or_404(RoutingRule.objects.select_related("queue"), pk=rule_id)
        if rule_id
        else None
    )
    context: dict[str, Any] = {"rule": rule, "problems": {}, "preview": None}
    values: dict[str, Any] = {
        "name": rule.name if rule else "",
        "queue": rule.queue_id if rule else None,
        "enabled": rule.enabled if rule else True,
        "conditions": dict(rule.conditions) if rule else {},
        "days": PREVIEW_DAYS,
    }
    status = 200
    if request.method == "POST":
        problems: dict[str, str] = {}
        name = request.POST.get("name", "").strip()
        if not name or len(name) > 100:
            problems["name"] = "Give the rule a name (up to 100 characters)."
        queue = Queue.objects.filter(pk=int_or_none(request.POST.get("queue")) or 0).first()
        if queue is None:
            problems["queue"] = "Choose the queue the rule sends items to."
        days = int_or_none(request.POST.get("days")) or PREVIEW_DAYS
        if not 1 <= days <= PREVIEW_DAYS_MAX:
            problems["days"] = f"Preview over 1 to {PREVIEW_DAYS_MAX} days."
            days = PREVIEW_DAYS
        conditions: dict[str, Any] = {}
        try:
            conditions = _conditions_from_post(request)
        except ConditionError as exc:
            problems[exc.field] = str(exc)
        enabled = request.POST.get("enabled") == "on"
        values.update(
            name=name,
            queue=queue.pk if queue else None,
            enabled=enabled,
            days=days,
            conditions=conditions or _raw_conditions(request),
        )
        if problems:
            context["problems"] = problems
            status = 400
        elif "save" in request.POST:
            assert queue is not None
            saved = rule_save(
                actor=request.user,
                rule=rule,
                name=name,
                queue=queue,
                conditions=conditions,
                enabled=enabled,
            )
            messages.success(request, f"Saved the rule “{saved.name}”.")
            return redirect("routing")
        else:
            assert queue is not None
            context["preview"] = routing_preview(
                proposed=_proposed(
                    rule, name=name, queue=queue, conditions=conditions, enabled=enabled
                ),
                days=days,
            )
    context.update(
        values=values,
        queues=routing_queues(),
        sources=Source.objects.order_by("name"),
        labelers=Labeler.objects.order_by("name"),
        banks=Bank.objects.order_by("name"),
        media_kinds=MEDIA_KINDS,
        max_days=PREVIEW_DAYS_MAX,
    )
    return render(request, "moderation/routing_rule.html", context, status=status)


def _raw_conditions(request: HttpRequest) -> dict[str, Any]:
    """What the admin typed, to show again beside the problem (never saved)."""
    return {
        "sources": [int_or_none(value) for value in request.POST.getlist("sources")],
        "labelers": [int_or_none(value) for value in request.POST.getlist("labelers")],
        "banks": [int_or_none(value) for value in request.POST.getlist("banks")],
        "formats": request.POST.getlist("formats"),
        "score_min": request.POST.get("score_min", "")[:20],
        "score_max": request.POST.get("score_max", "")[:20],
        "languages": _words(request, "languages"),
        "report_reasons": _words(request, "report_reasons"),
        "strikes_min": request.POST.get("strikes_min", "")[:20],
    }


def _proposed(
    rule: RoutingRule | None, *, name: str, queue: Queue, conditions: dict, enabled: bool
) -> list[RoutingRule]:
    """The rules in order as they would be after this change (unsaved)."""
    changed = RoutingRule(
        pk=rule.pk if rule else None, name=name, queue=queue, conditions=conditions, enabled=enabled
    )
    rules = [changed if rule and other.pk == rule.pk else other for other in routing_rules()]
    if rule is None:
        rules.append(changed)
    return rules


@require_http_methods(["GET", "POST"])
@staff_required
def queue_edit(request: HttpRequest, queue_id: int | None = None) -> HttpResponse:
    queue = get_object_or_404(Queue, pk=queue_id) if queue_id else None
    form = QueueForm(request.POST or None, instance=queue)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        saved = queue_save(
            actor=request.user,
            queue=queue,
            name=data["name"],
            team_id=data["team"].pk if data["team"] else None,
            sla_minutes=data["sla_minutes"],
            allowed_actions=list(data["allowed_actions"]),
            always_grayscale=data["always_grayscale"],
            always_blur=data["always_blur"],
            exposure_budget_reveals=data["exposure_budget_reveals"],
            audit_share=data["audit_share"],
            golden_share=data["golden_share"],
        )
        messages.success(request, f"Saved the queue “{saved.name}”.")
        return redirect(reverse("routing") + "#queues")
    return render(
        request,
        "moderation/routing_queue.html",
        {"form": form, "queue": queue},
        status=400 if request.method == "POST" else 200,
    )

"""The statement of reasons sent with every removal (decision.created) and every account
action (account.action.created): what the product shows its user, as the EU's DSA asks.
One shape for both: the reason and the policy behind it, the facts relied on, whether
detection and decision were automatic, and how to appeal until when."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from moderation.models import BankMatch, Decision, Item, Report, Source


def appeal_until(source: Source, decided_at: datetime) -> datetime:
    """The last moment a removal or account action of this source may be appealed."""
    return decided_at + timedelta(days=source.appeal_window_days)


def statement_of_reasons(
    *,
    reason: str,
    policy: str,
    action: str,
    facts: list[dict[str, Any]],
    automated_detection: bool,
    automated_decision: bool,
    appeal_until: datetime,
    appeal_how: str,
) -> dict[str, Any]:
    """The statement's shape, the same for every event that carries one."""
    return {
        "reason": reason,
        "policy": policy,
        "action": action,
        "facts": facts,
        "automated_detection": automated_detection,
        "automated_decision": automated_decision,
        "appeal": {"until": appeal_until.isoformat(), "how": appeal_how},
    }


def flagged_by(decisions: Iterable[Decision]) -> dict[int, list[dict[str, Any]]]:
    """Per decision, the labelers that flagged the revision it decided ("1"), with their
    version and confidence: one query for any number of decisions."""
    decisions = list(decisions)
    found: dict[int, list[dict[str, Any]]] = {d.pk: [] for d in decisions}
    if not decisions:
        return found
    by_item: dict[int, list[Decision]] = {}
    for decision in decisions:
        by_item.setdefault(decision.item_id, []).append(decision)
    rows = (
        Item.objects.filter(pk__in=by_item, labels__label="1")
        .order_by("pk", "labels__id")
        .values_list(
            "pk",
            "labels__revision",
            "labels__labeler_version__labeler__slug",
            "labels__labeler_version__number",
            "labels__confidence",
        )
    )
    for item_id, revision, labeler, version, confidence in rows:
        for decision in by_item[item_id]:
            if decision.revision == revision:
                found[decision.pk].append(
                    {"labeler": labeler, "labeler_version": version, "confidence": confidence}
                )
    return found


def reports_relied_on(decisions: Iterable[Decision]) -> dict[int, list[dict[str, Any]]]:
    """Per decision, the users' reports it answers (its `report_ids`, as sent), as facts
    relied on: each report's id, reason and when it came; never the reporter or comment.
    One query for all the decisions."""
    decisions = list(decisions)
    wanted = {(d.item_id, rid) for d in decisions for rid in d.report_ids or ()}
    found: dict[tuple[int, str], dict[str, Any]] = {}
    if wanted:
        rows = Report.objects.filter(
            item_id__in={item_id for item_id, _ in wanted},
            report_id__in={rid for _, rid in wanted},
        ).values_list("item_id", "report_id", "reason", "created_at")
        for item_id, report_id, reason, created_at in rows:
            found[(item_id, report_id)] = {
                "report_id": report_id,
                "reason": reason,
                "reported_at": created_at.isoformat(),
            }
    return {
        d.pk: [found[(d.item_id, rid)] for rid in d.report_ids or () if (d.item_id, rid) in found]
        for d in decisions
    }


def banks_matched(decisions: Iterable[Decision]) -> dict[int, list[dict[str, Any]]]:
    """Per decision, the hash bank matches of the revision it decided (issue 28): bank,
    hash type and distance; one query for any number of decisions."""
    decisions = list(decisions)
    found: dict[int, list[dict[str, Any]]] = {d.pk: [] for d in decisions}
    by_revision: dict[tuple[int, int], list[int]] = {}
    for decision in decisions:
        by_revision.setdefault((decision.item_id, decision.revision), []).append(decision.pk)
    rows = (
        BankMatch.objects.filter(item__in={item for item, _ in by_revision})
        .order_by("item", "distance", "id")
        .values_list("item_id", "revision", "bank__name", "type", "distance")
    )
    for item_id, revision, bank, kind, distance in rows:
        for pk in by_revision.get((item_id, revision), []):
            found[pk].append({"bank": bank, "hash_type": kind, "distance": distance})
    return found


def decision_facts(decisions: Iterable[Decision]) -> dict[int, dict[str, Any]]:
    """Per decision, the facts a statement relies on: what flagged the item (labelers and
    their confidence) and the reports it answers."""
    decisions = list(decisions)
    labels = flagged_by(decisions)
    reports = reports_relied_on(decisions)
    matched = banks_matched(decisions)
    return {
        d.pk: {
            "decision_id": d.pk,
            "external_id": d.item.external_id,
            "reason": d.reason,
            "decided_at": d.created_at.isoformat(),
            "flagged_by": labels[d.pk],
            "reports": reports[d.pk],
            "bank_matches": matched[d.pk],
        }
        for d in decisions
    }


def removal_statements(decisions: Iterable[Decision], *, source: Source) -> dict[int, dict]:
    """The statement of reasons of each removal among `decisions` (of one source), in a
    fixed number of queries (the decisions feed builds a page of them at once). Decisions
    need item and reason_choice loaded (select_related) to stay in those queries."""
    removals = [d for d in decisions if d.action == Decision.Action.REMOVE]
    facts = decision_facts(removals)
    statements = {}
    for decision in removals:
        fact = facts[decision.pk]
        policy = decision.reason_choice.policy_text if decision.reason_choice else ""
        statements[decision.pk] = statement_of_reasons(
            reason=decision.reason,
            policy=policy,
            action="Removal of the content",
            facts=[fact],
            # Flagged by a labeler or matched by a hash bank; reported by users only is a
            # human detection.
            automated_detection=bool(fact["flagged_by"] or fact["bank_matches"]),
            automated_decision=decision.reviewer_id is None,
            appeal_until=appeal_until(source, decision.created_at),
            appeal_how=(
                f"appeal with the external_id (POST /webhooks/{source.slug}/appeals/), "
                f"within {source.appeal_window_days} days of the removal"
            ),
        )
    return statements

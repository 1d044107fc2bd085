"""Moderation's routes: reviewer pages (one views module per page family) and the machine
endpoints (webhook, item API, decisions feed, OpenAPI document)."""

from django.urls import path

from moderation.views import api, appeals, authors, banks, golden, item, me, queue, routing, team

urlpatterns = [
    path("", queue.queue, name="queue"),
    path("queue/next/", queue.queue_next_view, name="queue_next"),
    path("escalated/", queue.escalated_queue, name="escalated"),
    path("escalated/next/", queue.escalated_next, name="escalated_next"),
    path("items/<int:item_id>/", item.item_detail, name="item"),
    path("items/<int:item_id>/release/", item.item_release_view, name="item_release"),
    path("items/<int:item_id>/skip/", item.item_skip, name="item_skip"),
    path("items/<int:item_id>/reveal/", item.item_reveal, name="item_reveal"),
    path("items/<int:item_id>/golden/", golden.item_golden, name="item_golden"),
    path("decisions/<int:decision_id>/undo/", item.decision_undo_view, name="decision_undo"),
    path("me/decisions/", me.my_decisions, name="my_decisions"),
    path("me/settings/", me.my_settings, name="my_settings"),
    path("me/password/", me.my_password, name="my_password"),
    path("team/", team.team, name="team"),
    path("routing/", routing.routing, name="routing"),
    path("routing/rules/new/", routing.rule_edit, name="routing_rule_new"),
    path("routing/rules/<int:rule_id>/", routing.rule_edit, name="routing_rule"),
    path("routing/queues/new/", routing.queue_edit, name="routing_queue_new"),
    path("routing/queues/<int:queue_id>/", routing.queue_edit, name="routing_queue"),
    path("team/<int:user_id>/golden-wrong/", team.team_golden_wrong, name="team_golden_wrong"),
    path("items/<int:item_id>/bank/", banks.item_bank, name="item_bank"),
    path("items/<int:item_id>/legal-hold/", item.item_legal_hold, name="item_legal_hold"),
    path("items/<int:item_id>/<str:kind>/", item.item_media, name="item_media"),
    path("authors/", authors.authors_list, name="authors"),
    path("authors/<int:author_id>/", authors.author_page, name="author"),
    path(
        "authors/<int:author_id>/remove-open/",
        authors.author_remove_open,
        name="author_remove_open",
    ),
    path("account-actions/", authors.accounts, name="accounts"),
    path("account-actions/<int:proposal_id>/", authors.proposal_decide, name="proposal_decide"),
    path("appeals/", appeals.appeals_list, name="appeals"),
    path("appeals/<int:appeal_id>/", appeals.appeal_detail, name="appeal"),
    path("webhooks/<slug:slug>/", api.webhook, name="webhook"),
    path("webhooks/<slug:slug>/appeals/", api.appeals_webhook, name="webhook_appeals"),
    path("webhooks/<slug:slug>/reports/", api.report_webhook, name="report_webhook"),
    path("api/items/", api.api_items, name="api_items"),
    path("api/items/<int:item_id>/", api.api_item, name="api_item"),
    path("api/decisions/", api.api_decisions, name="api_decisions"),
    # An author id is the product's: any characters, slashes included.
    path("api/authors/<path:author_id>/", api.api_author, name="api_author"),
    path("api/erasures/", api.api_erasures, name="api_erasures"),
    path("api/erasures/<path:erasure_id>/", api.api_erasure, name="api_erasure"),
    path("api/openapi.yaml", api.openapi_document, name="openapi"),
]

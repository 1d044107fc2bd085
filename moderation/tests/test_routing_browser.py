"""Team queues in a real browser (issue 29): an admin adds a rule sending a source's image
items scoring 0.9 or more to the "Graphic" queue, sees the preview's count, saves; a member
of the Graphic team gets those items by "next"; a reviewer outside the team never does.
Setup: testkit/browser.py."""

from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from moderation.models import Item, RoutingRule
from moderation.services.routing_rules import queue_save
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory
from moderation.tests.media import png_bytes
from testkit.browser import BROWSER_TEST_MARKS, accessibility_problems, keys, open_page, shot

pytestmark = BROWSER_TEST_MARKS


def test_an_admins_rule_sends_graphic_images_to_the_graphic_team_only(browser, live_server):
    image = default_storage.save("images/routing-test.png", ContentFile(png_bytes()))
    admin = UserFactory(username="ada", is_staff=True)
    team = Group.objects.create(name="Graphic team")
    graphic = queue_save(actor=admin, queue=None, name="Graphic", team_id=team.pk)
    forum, shop = SourceFactory(name="Forum"), SourceFactory(name="Shop")
    graphic_items = {
        ItemFactory(source=forum, violation_score=score, content_image=image).pk
        for score in (0.92, 0.97)
    }
    ItemFactory(source=forum, violation_score=0.5, content_image=image)  # score too low
    ItemFactory(source=forum, violation_score=0.99)  # text only
    ItemFactory(source=shop, violation_score=0.99, content_image=image)  # another source

    page = open_page(browser, live_server, admin)
    page.goto(f"{live_server.url}/routing/")
    page.click("#new-rule")
    page.fill("#rule-name", "Graphic images from the forum")
    page.select_option("#rule-queue", str(graphic.pk))
    page.select_option("#rule-sources", str(forum.pk))
    page.check("input[name=formats][value=image]")
    page.fill("#rule-score-min", "0.9")
    page.click("#rule-preview")
    page.wait_for_selector("#routing-preview")
    assert page.inner_text("#preview-moved") == "2"
    assert "Graphic" in page.inner_text("#preview-moves")
    assert accessibility_problems(page) == []
    shot(page, "routing-preview")
    assert not RoutingRule.objects.exists()  # a preview saves nothing
    page.click("#rule-save")
    page.wait_for_selector("#routing-rules")
    assert "Graphic images from the forum" in page.inner_text("#routing-rules")
    assert "ada" in page.inner_text("#routing-history")
    assert accessibility_problems(page) == []
    assert set(Item.objects.filter(queue=graphic).values_list("pk", flat=True)) == graphic_items

    member = UserFactory(username="gina")
    member.groups.add(team)
    page = open_page(browser, live_server, member)
    assert "Graphic" in page.inner_text("#queue-tabs")
    assert accessibility_problems(page) == []
    # The Graphic tab, then "n" serves its top item; "s" skips it and serves the next.
    page.click(f"#queue-tabs a[data-queue='{graphic.pk}']")
    page.wait_for_url(f"**/?queue={graphic.pk}")
    keys(page, "n")
    page.wait_for_url("**/items/*/**")
    served = {_item_on(page)}
    keys(page, "s")
    page.wait_for_url(lambda url: "/items/" in url and _id_in(url) not in served)
    served.add(_item_on(page))
    assert served == graphic_items

    outsider = UserFactory(username="otto")
    page = open_page(browser, live_server, outsider)
    listed = {
        int(row)
        for row in page.locator("tr.queue-row").evaluate_all(
            "rows => rows.map(row => row.dataset.item)"
        )
    }
    assert listed and not listed & graphic_items
    keys(page, "n")
    page.wait_for_url("**/items/*/**")
    assert _item_on(page) not in graphic_items
    response = page.goto(f"{live_server.url}/items/{min(graphic_items)}/")
    assert response.status == 404
    response = page.goto(f"{live_server.url}/?queue={graphic.pk}")
    assert response.status == 404


def _id_in(url: str) -> int:
    return int(url.split("/items/")[1].split("/")[0])


def _item_on(page) -> int:
    return _id_in(page.url)

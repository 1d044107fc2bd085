"""The dashboard's 30-day charts per source in a real browser (testkit/browser.py): drawn
under the site's strict CSP with no violation, no serious or critical axe-core problem with
the tables closed or open, nothing wider than a phone's screen."""

from datetime import UTC, timedelta

from django.utils import timezone

from labelers.dashboard_rollups import dashboard_rollups_refresh
from labelers.tests.test_dashboard_rollups import constructed
from moderation.models import QueueSnapshot
from moderation.tests.factories import UserFactory
from testkit.browser import BROWSER_TEST_MARKS, accessibility_problems, open_page, shot

pytestmark = BROWSER_TEST_MARKS


def test_the_dashboards_charts_pass_axe_under_the_csp_on_a_wide_and_a_narrow_screen(
    browser, live_server
):
    sources, _ = constructed(4)
    dashboard_rollups_refresh()
    midnight = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for source in sources:
        for hours in range(1, 48, 5):
            at = midnight - timedelta(hours=hours)
            QueueSnapshot.objects.create(
                hour=at, source=source, waiting=hours, oldest_wait=hours * 600, taken_at=at
            )
    admin = UserFactory(is_staff=True)
    for width in (1280, 390):
        page = open_page(browser, live_server, admin, width=width, height=900)
        page.goto(f"{live_server.url}/manage/")
        assert page.locator(".source-trends svg[role=img]").count() == 3 * len(sources)
        assert page.locator(".source-trends svg rect").count() > 0
        assert page.locator(".source-trends svg polyline").count() >= len(sources)
        assert accessibility_problems(page) == []
        for summary in page.locator(".chart-table summary").all():
            summary.click()
        assert page.locator(".trend-table tbody tr").first.is_visible()
        assert page.locator(".trend-table tbody tr").count() == 30 * len(sources)
        assert accessibility_problems(page) == []
        overflow = page.evaluate("() => document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 0, f"{overflow} px wider than the {width} px screen"
        shot(page, f"dashboard-charts-{width}")
        assert page.problems == []

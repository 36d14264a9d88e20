"""The supervisor dashboard: KPI charts drawn from the data, filters, the evaluation queue, and who may see it."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model

from quality import services
from quality.models import InteractionFact
from routing.models import Team
from tests.quality.test_kpis import T0, handled_day, project
from tests.routing.factories import make_agent

pytestmark = pytest.mark.django_db(transaction=True)
QUERY = "start=2026-11-01&end=2026-11-03&group=agent&bucket=day"


def data():
    handled_day()
    project()
    services.sample_for_review(now=T0 + dt.timedelta(days=1))


def test_the_dashboard_draws_the_figures_and_answers_bad_filters_with_400(client):
    data()
    boss = get_user_model().objects.create_user(username="boss", password="boss")
    Team.objects.create(name="billing").supervisors.add(boss)
    ann = make_agent("ann")
    client.force_login(ann.user)
    assert client.get("/quality/").status_code == 403
    client.force_login(boss)
    page = client.get(f"/quality/?metric=aht&{QUERY}").content.decode()
    assert 'class="chart chart-line"' in page and 'data-value="90.0"' in page and 'data-label="ann"' in page
    bad = client.get("/quality/?tz=Mars/Olympus&start=2026-11-05&end=2026-11-01")
    assert bad.status_code == 400 and "unknown time zone" in bad.content.decode()
    queue_page = client.get(f"/quality/?metric=occupancy&{QUERY}&group=queue").content.decode()
    assert "cannot be grouped by queue" in queue_page


def test_a_supervisor_reads_the_charts_in_a_browser(web, browser):
    data()
    assert InteractionFact.objects.count() == 4
    get_user_model().objects.create_user(username="boss", password="boss", is_staff=True)
    page = browser.new_context().new_page()
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda e: print("page error", e))
    page.goto(f"{web}/accounts/login/?next=/quality/")
    page.get_by_test_id("username").fill("boss")
    page.get_by_test_id("password").fill("boss")
    page.get_by_test_id("sign-in").click()
    page.wait_for_url(f"{web}/quality/")
    page.goto(f"{web}/quality/?metric=aht&{QUERY}")
    line = page.locator("[data-testid=over-time] svg.chart-line")
    assert line.is_visible()
    points = line.locator("circle.point")
    assert points.count() == 1 and points.first.get_attribute("data-value") == "90.0"
    box = line.bounding_box()
    assert box["width"] > 200 and box["height"] > 50  # drawn, not an empty box
    bars = page.locator("[data-testid=per-group] rect.bar")
    assert bars.count() == 1 and bars.first.get_attribute("data-label") == "ann"
    assert page.get_by_test_id("tile-aht").inner_text().endswith("90 s")
    page.get_by_test_id("tile-asa").locator("a").click()  # another metric, the same filters
    page.wait_for_url("**metric=asa**")
    assert page.locator("[data-testid=over-time] circle.point").first.get_attribute("data-value") == "20.0"
    page.select_option("select[name=group]", "queue")
    page.get_by_test_id("apply").click()
    page.wait_for_url("**group=queue**")
    assert page.locator("[data-testid=per-group] rect.bar").first.get_attribute("data-label") == "billing"
    assert page.get_by_test_id("review-queue").locator("tbody tr").count() == 2  # ann's and bob's picks

from tests.routing.conftest import web  # noqa: F401  (daphne on the test's database)
from tests.routing.test_pages import browser  # noqa: F401  (headless Chromium)

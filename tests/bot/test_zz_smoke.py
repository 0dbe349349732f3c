import pytest
import bot.app
@pytest.fixture(autouse=True)
def _only_mine(monkeypatch):
    import bot.links, bot.pages
    monkeypatch.setattr(bot.app, "_feature_setups", lambda: [bot.links.setup, bot.pages.setup])
from tests.bot.test_links import *  # noqa

"""Chat commands received from the vendors (the two-way bot).

One module per vendor checks authenticity, decrypts and parses (``telegram``, ``feishu``,
``dingtalk``, ``wecom``, ``slack``); ``commands`` parses what was typed; ``handle`` decides the
answer and enqueues it; ``replies`` builds its content from the summaries' data; ``senders`` are
the outbox adapters that deliver it. Routes exist only for the vendors configured in
``Settings.inbound``.
"""

from __future__ import annotations

from aiohttp import web

from bot import keys


def setup(app: web.Application, *, start_workers: bool) -> None:
    """Mount the webhook routes and register the reply adapters (kept if a test passed its own)."""
    del start_workers  # requests are answered inline; the delivery worker sends the replies
    from bot.inbound import dingtalk, feishu, slack, telegram, wecom
    from bot.inbound.handle import KNOWN_ENDPOINTS, REPLY_CACHE, ReplyCache
    from bot.inbound.senders import reply_adapters

    app[REPLY_CACHE] = ReplyCache()
    app[KNOWN_ENDPOINTS] = {}
    settings = app[keys.SETTINGS]
    channels = app[keys.CHANNELS]
    for kind, adapter in reply_adapters(settings.channel_base_urls).items():
        channels.setdefault(kind, adapter)
    app.router.add_post("/bot/telegram", telegram.webhook)
    app.router.add_post("/bot/feishu", feishu.webhook)
    app.router.add_post("/bot/dingtalk", dingtalk.webhook)
    app.router.add_get("/bot/wecom", wecom.verify_url)
    app.router.add_post("/bot/wecom", wecom.webhook)
    app.router.add_post("/bot/slack", slack.webhook)

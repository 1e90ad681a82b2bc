"""The status pages (issue 16): the overview at ``/``, one page per provider, SVG badges.

- :mod:`bot.pages.views`: what a page shows, worked out from :mod:`bot.history.queries`
  (bounded, clipped, every link checked by :func:`bot.outside.safe_url`);
- :mod:`bot.pages.render`: the Jinja2 templates (``bot/pages/templates``) that turn views into
  HTML and SVG, escaping by default;
- :mod:`bot.pages.badges`: the shields.io-style two-part badges.

The HTTP routes are :mod:`bot.history_api`. Import from the modules (this init imports nothing).
"""

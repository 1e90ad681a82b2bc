"""History that lasts (issue 16): how each provider did, day by day, for over a year.

- :mod:`bot.history.model`: what is kept: per provider and UTC day, seconds spent in each
  status (and which statuses it saw); per outage episode its start, end, worst state and when
  our probes suspected it versus when the status page confirmed it; latency samples.
- :mod:`bot.history.recorder`: one decider (by lease) reads the event stream in its own
  consumer group and folds each event into those records, replay-safe.
- :mod:`bot.history.queries`: the 90-day bars, uptime percentages, episodes with detection
  lead and page lag, and the monthly report, for the pages, the API and ``tocsin report``.

Import from the modules (this init imports nothing).
"""

"""Running incidents from the chat (issue 15): acknowledge, silence, subscribe, reminders.

What a person does from Slack or Discord (a button on a notice, ``/tocsin subscribe``) is
decided here once for every platform, so a platform only turns its payload into a call:

- :mod:`bot.chatops.records`: what is kept in the store's tables (acks, silences,
  subscriptions), read back defensively;
- :mod:`bot.chatops.actions`: :class:`ChatOps`, the verbs: who may, state changed once
  (a double click, or two replicas receiving one click, change it once), an event in the
  stream for each change;
- :mod:`bot.chatops.controls`: what the dispatcher asks of that state: is this muted here,
  what the root says and which buttons it shows, which channels subscribed from the chat;
- :mod:`bot.chatops.reminders`: "still down after 30 min" and silences that end by
  themselves, once per interval across replicas.

Import from the modules: this package's init imports nothing (:mod:`bot.compose` uses the
records' :class:`~bot.chatops.records.Button`).
"""

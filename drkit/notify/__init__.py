"""Notifications: Jinja2 templates sent to the environment's channels.

- ``templates``: the seeds' templates, strict rendering, what each one means
  (open, update or resolve an incident).
- ``channels``: file, stdout, generic webhook, Slack, PagerDuty Events v2,
  a Statuspage-style incident API, email over SMTP; each in its API's shape.
- ``settings``: ``drkit.notify`` and ``drkit.severities`` validated with dotted paths.
- ``notifier``: one run's notifications: the severity's audience, delivery that
  never blocks or fails the recovery (timeouts, retries, reported), the cadence.
"""

from drkit.notify.channels import Message, dedup_key
from drkit.notify.notifier import DeliveryRecord, Notifier
from drkit.notify.settings import SEVERITIES, normalize_severity
from drkit.notify.templates import event_of, known_templates, render_template, template_dirs

__all__ = [
    "SEVERITIES", "DeliveryRecord", "Message", "Notifier", "dedup_key", "event_of",
    "known_templates", "normalize_severity", "render_template", "template_dirs",
]

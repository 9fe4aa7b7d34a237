"""systemd integration: sd_notify (READY/STATUS/RELOADING/STOPPING) and a progress-fed watchdog."""

from device.service.notify import Notifier, watchdog_interval
from device.service.watchdog import StartupPinger, Watchdog

__all__ = ["Notifier", "StartupPinger", "Watchdog", "watchdog_interval"]

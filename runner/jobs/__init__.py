"""The scheduled jobs (expire, remind, cleanup, ...), their e-mail, their schedules."""

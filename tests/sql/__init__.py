"""Tests of the SQL project itself: functions, rules, access."""

"""Reports, doctor, alerts, metrics and the dashboard: reading the data back."""

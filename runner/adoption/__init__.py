"""`runner adopt`: take over a database built from the reference's scripts, in place, losing nothing.

`inspect` reads the live catalogue and data and builds the plan (read-only), `rules` names the dirty-data
rules and their resolutions, `execute` carries the plan out under short lock timeouts, then records the
database as `runner apply` would have. docs/adopting.md is the reader's guide.
"""

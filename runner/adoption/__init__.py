"""`runner adopt`: take over a database built from the reference's scripts, in place, losing nothing.

`inspect` reads the live catalogue and data and builds the plan (read-only): `target` learns what a fresh
apply builds, `diff` the steps that bring each live table to it, `plan` holds and prints them. `rules` names
the dirty-data rules and their resolutions, `execute` carries the plan out under short lock timeouts (`online`
splits the later files that touch adopted tables), then records the database as `runner apply` would have.
docs/adopting.md is the reader's guide.
"""

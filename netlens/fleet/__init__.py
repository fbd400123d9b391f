"""``netlens fleet``: many servers over SSH, merged into one fleet document.

Each server runs ``netlens agent`` (netlens/commands/agent.py), which speaks the
line protocol of :mod:`netlens.fleet.protocol` on its stdout; the client
(:mod:`netlens.fleet.client`) reads it over asyncssh and :mod:`netlens.fleet.merge`
turns the per-server dumps and samples into the fleet document
(:mod:`netlens.fleet.schema` / fleet_schema.json). Headless: no textual, no rich,
so a cron job or the exporter's host can run it without the dashboard's libraries.
"""

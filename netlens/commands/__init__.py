"""CLI command modules: each imports only argparse at module level (fast start)."""

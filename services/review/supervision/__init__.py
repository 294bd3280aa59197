"""Supervision (督办): cases opened by hand or by the rules, escalated, answered and closed."""

"""Sampling and inspections (抽查、检查): whom to inspect, recording and scoring a check."""

"""Circulars (通报): frozen assessment snapshots for a period, their .docx/.xlsx files, and publishing."""

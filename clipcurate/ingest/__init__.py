"""clipcurate.ingest"""

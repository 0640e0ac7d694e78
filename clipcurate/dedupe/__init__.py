"""clipcurate.dedupe"""

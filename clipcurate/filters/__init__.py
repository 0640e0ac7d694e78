"""clipcurate.filters"""

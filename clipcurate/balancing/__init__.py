"""clipcurate.balancing"""

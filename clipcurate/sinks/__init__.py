"""clipcurate.sinks"""

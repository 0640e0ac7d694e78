"""clipcurate.trainer"""
